"""The scene stage on photos as people take them: paper on a desk, notebook rulings, pages without a digit.

Pictures are drawn here from MNIST *test* digits with plain Pillow, independently of the
rendered evaluation sets, so these tests check the cases by name: ink that crosses a printed
line must survive, the paper must be found on a desk, a light digit on a dark board must
still read, and a picture without a digit must get a message rather than a guess.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from digit_classifier import data, realinputs
from digit_classifier.decode import open_reduced, working_arrays
from digit_classifier.digit import frame_digit
from digit_classifier.errors import NoDigitFoundError, TooMuchWritingError
from digit_classifier.predict import read_image
from digit_classifier.preprocess import preprocess, preprocess_steps
from digit_classifier.scene import find_scene, locate_digits

PAPER = (238, 236, 228)
BLUE_LINE = (150, 180, 225)
GREY_LINE = (150, 150, 150)


@pytest.fixture(scope="module")
def test_digits() -> data.Split:
    return data.load_split("test")


def first_of(split: data.Split, label: int) -> np.ndarray:
    return np.array(split.images[int(np.flatnonzero(split.labels == label)[0])])


def ink_of(digit: np.ndarray, height: int) -> np.ndarray:
    """A 28x28 MNIST digit enlarged so its 20x20 box is about `height` pixels: ink in [0, 1]."""
    side = round(height * 28 / 20)
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return np.clip((big - 0.2) / 0.5, 0, 1)


def write(page: np.ndarray, ink: np.ndarray, top: int, left: int, pen: tuple[int, int, int]) -> None:
    """Ink darkens the page multiplicatively, as pen on paper does (and crossing a printed line keeps both)."""
    region = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    pen_share = np.asarray(pen, np.float32) / 255
    region *= 1 - ink[..., None] * (1 - pen_share)


def ruled(size=(900, 700), spacing=60, first=40, vertical_spacing=None, colour=BLUE_LINE, width=3, tilt=0.0):
    """A page of ruled (or, with vertical_spacing, squared) paper as float RGB, lines drawn with Pillow."""
    picture = Image.new("RGB", size, PAPER)
    pen = ImageDraw.Draw(picture)
    slope = np.tan(np.deg2rad(tilt))
    for y in range(first, size[1] + size[0], spacing):
        pen.line([(0, y), (size[0], y + slope * size[0])], fill=colour, width=width)
    if vertical_spacing:
        for x in range(first, size[0], vertical_spacing):
            pen.line([(x, 0), (x - slope * size[1], size[1])], fill=colour, width=width)
    return np.asarray(picture, dtype=np.float32) / 255


def jpeg(page: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(page * 255, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def darkest_row(ink: np.ndarray, rows: slice) -> int:
    return rows.start + int(np.argmax(ink[rows].sum(1)))


def test_a_seven_whose_bar_lies_on_a_ruled_line(classifier, test_digits):
    seven = ink_of(first_of(test_digits, 7), 150)
    bar = darkest_row(seven, slice(0, seven.shape[0] // 3))
    page = ruled(spacing=70, first=40)
    top = 40 + 3 * 70 - bar + 1  # the bar's darkest row on the fourth line (lines are 3 px wide)
    write(page, seven, top, 300, pen=(20, 20, 30))
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.1, "the ruled lines are found and removed"
    assert classifier.probabilities(steps.image[None])[0].argmax() == 7
    # The bar keeps its ink where it lies on the line: the line's own darkness there is read from a longer
    # stretch of the line than the bar covers.
    row = top + bar
    written = seven[bar - 2 : bar + 3].max(0)
    kept = steps.ink[row - 2 : row + 3, 300 : 300 + seven.shape[1]].max(0)
    assert kept[written > 0.5].mean() > 0.8


def test_a_line_is_followed_past_a_dark_digit_lying_on_it(classifier, test_digits):
    """A line is followed from where it is darkest, which is inside a dark digit lying on it: the line is still
    removed from edge to edge, and the digit kept."""
    four = ink_of(first_of(test_digits, 4), 220)
    bar = darkest_row(four, slice(four.shape[0] // 3, 2 * four.shape[0] // 3))
    page = ruled(size=(1000, 660), spacing=80, first=40, colour=(120, 120, 125), width=3, tilt=1.5)
    left = 420
    top = round(40 + 3 * 80 + np.tan(np.deg2rad(1.5)) * (left + four.shape[1] / 2)) - bar
    write(page, four, top, left, pen=(25, 45, 150))
    steps = preprocess_steps(jpeg(page))
    line_row = lambda x: round(40 + 3 * 80 + np.tan(np.deg2rad(1.5)) * x)  # noqa: E731
    for x in (60, 250, 800, 950):  # on both sides of the digit
        assert steps.rulings[line_row(x) - 3 : line_row(x) + 4, x].max() > 0.1, f"the line is removed at x={x}"
    assert read_image(classifier, jpeg(page)).text == "4"


def test_a_one_drawn_along_a_grid_line(classifier, test_digits):
    one = ink_of(first_of(test_digits, 1), 170)
    column = int(np.argmax(one.sum(0)))
    page = ruled(spacing=60, first=30, vertical_spacing=60, colour=GREY_LINE, width=2)
    write(page, one, 200, 30 + 5 * 60 - column, pen=(40, 40, 150))  # blue pen along a grey line
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.1
    assert classifier.probabilities(steps.image[None])[0].argmax() == 1


def test_a_zero_cut_by_two_lines_in_pencil(classifier, test_digits):
    zero = ink_of(first_of(test_digits, 0), 150) * 0.55  # pencil: grey and lighter than the pen
    page = ruled(spacing=55, first=20, colour=GREY_LINE, width=2, tilt=4.0)
    write(page, zero, 230, 280, pen=(90, 90, 90))
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.1
    assert classifier.probabilities(steps.image[None])[0].argmax() == 0


def test_a_pencil_seven_cut_by_a_darker_line_stays_one_digit(classifier, test_digits):
    """Where the line is darker than the pencil, removing it leaves a gap across the stroke; the two parts are
    still one digit (not "77")."""
    seven = ink_of(first_of(test_digits, 7), 200) * 0.5
    page = ruled(spacing=70, first=40, colour=(60, 60, 60), width=5)
    write(page, seven, 150, 300, pen=(90, 90, 90))
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.1
    reading = read_image(classifier, jpeg(page))
    assert reading.text == "7"


def test_a_faint_pencil_one_across_a_black_line_is_bridged(classifier, test_digits):
    """A pencil stroke a fifth as dark as the line it crosses: nothing of it is left inside the line's band, so
    the band is bridged from the ink just above and below it, however much darker the line is."""
    one = ink_of(first_of(test_digits, 1), 260) * 0.35
    page = ruled(size=(600, 1000), spacing=300, first=140, colour=(25, 25, 25), width=7)
    write(page, one, 300, 120, pen=(120, 120, 120))
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.5, "the black lines are found and removed"
    column = steps.ink[:, 120 : 120 + one.shape[1]].max(1)
    assert column[430:450].min() > 0.1, "the stroke runs on through the line's band"
    assert read_image(classifier, jpeg(page)).text == "1"


@pytest.mark.parametrize(("label", "tilt"), [(2, 14.5), (4, -14.5)])
def test_squared_paper_turned_by_nearly_fifteen_degrees(classifier, test_digits, label, tilt):
    """A page (or a note on a desk) turned more than the ten degrees a notebook photo usually is: its lines are
    still found and removed."""
    page = ruled(spacing=60, vertical_spacing=60, colour=(150, 150, 150), width=2, tilt=tilt)
    assert ink_left_beside(page, ink_of(first_of(test_digits, label), 150) * 0.6, 300, 300) < 0.01, "the lines are removed"
    assert read_image(classifier, jpeg(page)).text == str(label)


def ink_left_beside(page: np.ndarray, digit: np.ndarray, top: int, left: int) -> float:
    """Writes `digit` in pencil on `page` (in place), then gives the share of the ink map, away from the digit,
    that is still ink once the printed lines are removed."""
    write(page, digit, top, left, pen=(70, 70, 70))
    ink = preprocess_steps(jpeg(page)).ink.copy()
    ink[top : top + digit.shape[0], left : left + digit.shape[1]] = 0
    return float(np.mean(ink > 0.15))


def fanned_grid(size=(1000, 700), spacing=70, across=7.0, columns=(11.0, 1.0)) -> np.ndarray:
    """Squared paper photographed off-axis: the rows tilted by `across` degrees, the columns converging, tilted
    from columns[0] degrees at the left edge to columns[1] at the right."""
    picture = Image.new("RGB", size, PAPER)
    pen = ImageDraw.Draw(picture)
    width, height = size
    for y in range(-200, height + 200, spacing):
        pen.line([(0, y), (width, y + np.tan(np.deg2rad(across)) * width)], fill=(110, 110, 110), width=3)
    for x in range(20, width + 100, spacing):
        tilt = np.deg2rad(columns[0] + (columns[1] - columns[0]) * x / width)
        pen.line([(x, 0), (x - np.tan(tilt) * height, height)], fill=(110, 110, 110), width=3)
    return np.asarray(picture, dtype=np.float32) / 255


@pytest.mark.parametrize("label", [3, 7])
def test_converging_columns_on_both_sides_of_the_first_found_are_removed(classifier, test_digits, label):
    """Each round looks for lines near the angle the last one found, so rounds walk one way from the first angle;
    the columns on its other side are looked for there once the walk finds nothing more."""
    page = fanned_grid()
    assert ink_left_beside(page, ink_of(first_of(test_digits, label), 150) * 0.6, 250, 150) < 0.005, "every column is removed"
    assert read_image(classifier, jpeg(page)).text == str(label)


def fanned_rules(size=(800, 1000), spacing=40, spread=5.0) -> np.ndarray:
    """Ruled paper photographed steeply off-axis: the lines turn from -`spread` degrees at the top of the page
    to +`spread` at the bottom, a fraction of a degree from one line to the next."""
    picture = Image.new("RGB", size, PAPER)
    pen = ImageDraw.Draw(picture)
    starts = range(30, size[1], spacing)
    for k, y in enumerate(starts):
        slope = np.tan(np.deg2rad(spread * (2 * k / (len(starts) - 1) - 1)))
        pen.line([(0, y), (size[0], y + slope * size[0])], fill=(130, 130, 130), width=3)
    return np.asarray(picture, dtype=np.float32) / 255


@pytest.mark.parametrize("label", [3, 7])
def test_lines_turning_by_ten_degrees_down_the_page_are_removed(classifier, test_digits, label):
    """Each round of the search removes the lines near one angle: lines that turn this far down the page take
    more rounds than lines that only converge a little (four left 1.1-1.2 % of the page as ink, six 0.5 %)."""
    page = fanned_rules()
    assert ink_left_beside(page, ink_of(first_of(test_digits, label), 110) * 0.8, 450, 300) < 0.008
    assert read_image(classifier, jpeg(page)).text == str(label)


def test_faint_pencil_between_the_lines_of_a_dense_grid_keeps_its_ink(classifier, test_digits):
    """On small squares the lines' bands cover most of the paper, and pencil lighter than the lines runs beside
    them everywhere: only the line's own darkness, row by row across it, is removed, so a stroke a few pixels
    off a line keeps its ink."""
    two = ink_of(first_of(test_digits, 2), 48) * 0.45
    page = ruled(size=(420, 420), spacing=16, first=6, vertical_spacing=16, colour=(165, 150, 215), width=3)
    write(page, two, 170, 180, pen=(110, 110, 110))
    steps = preprocess_steps(jpeg(page))
    assert steps.rulings.max() > 0.1, "the grid is found and removed"
    strokes = np.zeros(steps.ink.shape, bool)
    strokes[170 : 170 + two.shape[0], 180 : 180 + two.shape[1]] = two > 0.3
    assert np.median(steps.ink[strokes]) > 0.15, "the pencil is still ink"
    assert read_image(classifier, jpeg(page)).text == "2"


def test_the_end_of_a_line_that_the_frame_cuts_is_not_a_digit(classifier, test_digits):
    """A line the rulings step did not follow to the edge of the picture leaves a thin dark stroke that the frame
    cuts, beside the writing: it is not a 1."""
    page = ruled(spacing=60, first=30, vertical_spacing=60, colour=GREY_LINE, width=2)
    write(page, ink_of(first_of(test_digits, 3), 160), 230, 400, pen=(30, 30, 40))
    page[260:420, 0:9] *= 0.25
    reading = read_image(classifier, jpeg(page))
    assert reading.text == "3"


def desk(size=(1000, 750), colour=(95, 70, 50), seed=0) -> Image.Image:
    """A wooden desk: a brown ground with a grain of dark streaks."""
    rng = np.random.default_rng(seed)
    ys = np.arange(size[1], dtype=np.float32)[:, None]
    xs = np.arange(size[0], dtype=np.float32)[None, :]
    grain = 0.5 + 0.5 * np.sin(ys / 6.0 + 3 * np.sin(xs / 90.0)) + 0.15 * rng.standard_normal((size[1], size[0]))
    wood = np.asarray(colour, np.float32) * (0.85 + 0.15 * grain[..., None])
    return Image.fromarray(np.clip(wood, 0, 255).astype(np.uint8))


def note_on_desk(digit_ink: np.ndarray | None, angle: float = 8.0, note: np.ndarray | None = None) -> bytes:
    """`digit_ink` written on a note (plain, or the float RGB page `note`, 360x420), turned by `angle`, on a desk."""
    note = np.ones((420, 360, 3), np.float32) * np.asarray(PAPER, np.float32) / 255 if note is None else note.copy()
    if digit_ink is not None:
        write(note, digit_ink, 110, 100, pen=(25, 25, 40))
    paper = Image.fromarray((note * 255).astype(np.uint8)).convert("RGBA").rotate(angle, expand=True)
    picture = desk()
    picture.paste(paper, (330, 170), paper)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def test_a_note_on_a_desk_is_read_inside_the_paper(classifier, test_digits):
    steps = preprocess_steps(note_on_desk(ink_of(first_of(test_digits, 4), 160)))
    assert steps.surface_kind == "paper on a surface"
    assert 0.1 < steps.surface.mean() < 0.4, "the surface is the note, not the picture"
    assert classifier.probabilities(steps.image[None])[0].argmax() == 4


@pytest.mark.parametrize("label", [0, 3, 5, 6, 7, 8])
def test_the_rulings_of_a_squared_note_on_a_desk_leave_no_stubs_at_its_edges(classifier, test_digits, label):
    """A line's darkness is read on the paper only: counted with the desk around it (no ink there), the last
    stretch of each line before the note's edge stayed as a stub of ink, and stubs read as digits. Each of these
    digits was read wrong so. (On this note the first 4's bar lies along a line, which is then not found: the
    stroke is a large share of so short a line.)"""
    grid = ruled(size=(360, 420), spacing=70, first=35, vertical_spacing=70, colour=(90, 90, 90), width=4)
    reading = read_image(classifier, note_on_desk(ink_of(first_of(test_digits, label), 170), angle=12.0, note=grid))
    assert reading.text == str(label)


def test_a_sliver_of_desk_between_the_frame_and_the_note_is_not_a_digit(classifier, test_digits):
    """A note that nearly touches the frame can leave a strip of desk too thin to be seen as desk: the surface
    takes it in, and dark against the paper it is ink, once read as a 1 beside the digit (a 5 as 15). A thin
    stroke along the frame is not a digit when the paper lies on a surface, as it is not on a ruled page."""
    ink = np.zeros((428, 760), np.float32)
    digit = ink_of(first_of(test_digits, 5), 200)
    ink[110 : 110 + digit.shape[0], 150 : 150 + digit.shape[1]] = digit
    ink[115:365, 0:9] = 1.0  # the strip of desk, dark against the paper, along part of the note's side
    surface = np.ones(ink.shape, dtype=bool)
    surface[:, 600:] = False  # the rest of the desk, found
    regions = locate_digits(ink, surface)
    assert len(regions) == 1 and regions[0].bbox[1] >= 150
    image = frame_digit(ink, regions[0].mask, regions[0].bbox, regions[0].stroke_level).image
    assert classifier.probabilities(image[None])[0].argmax() == 5


def test_a_faint_mark_off_the_line_is_not_a_second_line_of_writing(classifier, test_digits):
    """The soft edge of a shadow leaves a long, faint ridge of ink: more ink in all than a small digit has, but
    its strokes are a fraction as dark. Off the digit's line it is dropped, not taken for a second line of
    writing; the same ridge as dark as the digit is one, and gets that message."""
    ink = np.zeros((700, 600), np.float32)
    five = ink_of(first_of(test_digits, 5), 150)
    ink[60 : 60 + five.shape[0], 360 : 360 + five.shape[1]] = 0.6 * five
    ridge = np.zeros_like(ink)
    cv2.ellipse(ridge, (260, 300), (200, 170), 0, 90, 180, 1.0, 50)  # a curve below and beside the digit
    ridge = cv2.GaussianBlur(ridge, (0, 0), 6)
    regions = locate_digits(ink + 0.12 * ridge)
    assert len(regions) == 1 and regions[0].bbox[1] >= 360
    image = frame_digit(ink, regions[0].mask, regions[0].bbox, regions[0].stroke_level).image
    assert classifier.probabilities(image[None])[0].argmax() == 5
    with pytest.raises(TooMuchWritingError, match="several lines"):
        locate_digits(ink + 0.6 * ridge)


def test_under_a_shadow_a_faint_piece_on_the_line_is_not_a_digit(classifier, test_digits):
    """Beside a digit on its line, a piece a fifth as dark is a digit written lightly on a page without shadows,
    and what a shadow left on a page with one."""
    ink = np.zeros((500, 800), np.float32)
    seven = ink_of(first_of(test_digits, 7), 150)
    ink[150 : 150 + seven.shape[0], 150 : 150 + seven.shape[1]] = 0.6 * seven
    ink[170:370, 450:490] = 0.12  # a bar as tall as the digit, a fifth as dark
    assert len(locate_digits(ink)) == 2
    regions = locate_digits(ink, shadowed=True)
    assert len(regions) == 1 and regions[0].bbox[3] < 450
    image = frame_digit(ink, regions[0].mask, regions[0].bbox, regions[0].stroke_level).image
    assert classifier.probabilities(image[None])[0].argmax() == 7


def test_a_light_digit_on_a_dark_board_still_reads(classifier, test_digits):
    chalk = ink_of(first_of(test_digits, 3), 220)
    board = np.ones((700, 900, 3), np.float32) * np.array([0.16, 0.24, 0.2], np.float32)
    region = board[200 : 200 + chalk.shape[0], 300 : 300 + chalk.shape[1]]
    region += chalk[..., None] * (0.9 - region)
    steps = preprocess_steps(jpeg(board))
    assert steps.ink_source == "light ink on dark background"
    assert classifier.probabilities(steps.image[None])[0].argmax() == 3


def shaded_page(shade: Image.Image, blur: float, depth: float, digit_ink: np.ndarray, at: tuple[int, int],
                pen: tuple[int, int, int], seed: int) -> bytes:
    """Plain paper the size of `shade` with `digit_ink` written at `at` (top, left), under the shadow drawn in
    `shade` (white where it falls), softened by a Gaussian blur of `blur` pixels and taking `depth` of the light."""
    soft = np.asarray(shade.filter(ImageFilter.GaussianBlur(blur)), np.float32)[..., None] / 255
    page = np.ones((shade.size[1], shade.size[0], 3), np.float32) * np.asarray(PAPER, np.float32) / 255
    write(page, digit_ink, at[0], at[1], pen=pen)
    page *= 1 - depth * soft
    page += np.random.default_rng(seed).normal(0, 0.01, page.shape).astype(np.float32)
    return jpeg(page)


def hand_shade(rows: tuple[int, ...], tip: int, stagger: int, drop: int, width: int) -> Image.Image:
    """The shadow of a hand reaching in from the right of a 1000x750 page: a palm and a finger from each of `rows`,
    `width` pixels wide, ending at `tip` (every other one `stagger` shorter) and `drop` lower."""
    shade = Image.new("L", (1000, 750), 0)
    draw = ImageDraw.Draw(shade)
    draw.ellipse((760, 150, 1160, 550), fill=255)
    for k, y in enumerate(rows):
        draw.line([(800, y), (tip - stagger * (k % 2), y + drop)], fill=255, width=width)
    return shade


def shadowed_page(digit_ink: np.ndarray, seed: int = 0) -> bytes:
    """Plain paper with the sharp shadow of an arm over its left side (half the light gone), the digit written
    inside the shadow: the lit part is a bright quadrilateral with a sharp edge, as a note on a desk would be."""
    shade = Image.new("L", (1000, 750), 0)
    ImageDraw.Draw(shade).polygon([(0, 0), (560, 0), (500, 750), (0, 750)], fill=255)
    return shaded_page(shade, 3, 0.5, digit_ink, (280, 200), (25, 25, 40), seed)


def test_a_sharp_shadow_across_the_page_is_not_the_edge_of_a_note(classifier, test_digits):
    steps = preprocess_steps(shadowed_page(ink_of(first_of(test_digits, 5), 150)))
    assert steps.surface_kind == "whole picture", "the page in the shadow is the same paper, not a desk"
    assert classifier.probabilities(steps.image[None])[0].argmax() == 5


def page_under_a_wide_shadow(digit_ink: np.ndarray, seed: int = 0) -> bytes:
    """Plain paper under the shadow of a phone held over it (30 % of the light gone): a slanted band over most
    of the page, lit only in a strip at each side, the digit written inside the band near its top-left edge."""
    shade = Image.new("L", (1024, 576), 0)
    ImageDraw.Draw(shade).polygon([(40, 0), (760, 0), (960, 576), (250, 576)], fill=255)
    return shaded_page(shade, 4, 0.3, digit_ink, (60, 120), (80, 80, 90), seed)


@pytest.mark.parametrize("label", [2, 5, 7])
def test_a_shadow_over_most_of_the_page_is_seen_against_the_lit_paper(classifier, test_digits, label):
    """The lighting fit follows a shadow that covers most of the page, so the shadow hardly departs from it,
    and the two lit strips were read as two 1s. The shadow is measured against the lit paper instead."""
    reading = read_image(classifier, page_under_a_wide_shadow(ink_of(first_of(test_digits, label), 100)))
    assert reading.text == str(label)


def test_a_shadow_is_looked_for_on_the_paper_only():
    """A note on a desk casts its own soft shadow on the desk beside it, and none on itself. Off the paper, the
    lit paper's level is only an extrapolation: measured against it, the desk took the place of a shadow, and
    thick strokes on the note were then closed away as part of one."""
    sources, _ = realinputs.make_set("desk", 40, split="train", seed=31)
    for source in sources:
        image, size = open_reduced(source)
        assert not find_scene(working_arrays(image, size)).shadowed


def hand_shadow_page(digit_ink: np.ndarray, pen: tuple[int, int, int], seed: int = 0) -> bytes:
    """Plain paper with the soft shadow of a hand reaching in from the right (a palm and four fingers, 40 % of the
    light gone), a fingertip ending just beside the digit."""
    return shaded_page(hand_shade((170, 290, 410, 530), 470, 40, 20, 72), 12, 0.4, digit_ink, (240, 250), pen, seed)


@pytest.mark.parametrize(
    ("label", "height", "pen"),
    [(4, 170, (30, 40, 140)), (7, 200, (20, 20, 30)), (0, 330, (15, 15, 20))],  # the 0's strokes: a thick marker's
)
def test_the_shadows_of_fingers_beside_a_digit_are_not_ink(classifier, test_digits, label, height, pen):
    """A finger's shadow is a few strokes wide: the closing wide enough for thick strokes keeps part of it as
    ink (a 1 beside the digit, or a bar through it); a narrower one follows it, except over dark thick strokes."""
    reading = read_image(classifier, hand_shadow_page(ink_of(first_of(test_digits, label), height), pen))
    assert reading.text == str(label)


def thin_finger_shadows_page(digit_ink: np.ndarray, seed: int = 0) -> bytes:
    """Plain paper under the soft shadow of a hand whose fingers are thinner than the closings that follow shadows
    (24 pixels wide, 40 % of the light gone): four faint bars ending beside the digit."""
    return shaded_page(hand_shade((200, 290, 380, 470), 420, 30, 15, 24), 6, 0.4, digit_ink, (230, 180), (40, 40, 60), seed)


@pytest.mark.parametrize("label", [1, 4, 7])
def test_what_thin_finger_shadows_leave_beside_a_digit_is_not_writing(classifier, test_digits, label):
    """The closings cannot follow shadows as thin as strokes, so faint bars of ink are left where the fingers lie:
    on the digit's line they were read as more digits, and near it as part of it. Under a shadow, a piece or a
    stroke far fainter than the digit's own is not writing."""
    reading = read_image(classifier, thin_finger_shadows_page(ink_of(first_of(test_digits, label), 170)))
    assert reading.text == str(label)


def test_a_thick_marker_stroke_beside_the_shadow_of_a_hand_keeps_its_ink(classifier, test_digits):
    """Where a stroke too thick for the closings meets a shadow, they took it for part of the shadow and left a
    hole in it (this 3 read as 9). Nothing on paper is darker than the deepest shadow: that is ink."""
    three = ink_of(first_of(test_digits, 3), 220)
    three = cv2.dilate(three, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21)))
    picture = hand_shadow_page(three, pen=(15, 15, 20))
    steps = preprocess_steps(picture)
    strokes = np.zeros(steps.ink.shape, bool)
    strokes[240 : 240 + three.shape[0], 250 : 250 + three.shape[1]] = three > 0.8
    assert np.percentile(steps.ink[strokes], 1) > 0.5, "no hole in the strokes"
    assert read_image(classifier, picture).text == "3"


def test_a_blank_note_on_a_desk_is_no_digit():
    with pytest.raises(NoDigitFoundError):
        preprocess(note_on_desk(None))


def test_a_bare_desk_is_no_digit():
    buffer = io.BytesIO()
    desk(seed=3).save(buffer, format="JPEG", quality=88)
    with pytest.raises(NoDigitFoundError):
        preprocess(buffer.getvalue())


@pytest.mark.parametrize("grid", [None, 60])
def test_paper_with_only_its_printed_lines_is_no_digit(grid):
    with pytest.raises(NoDigitFoundError):
        preprocess(jpeg(ruled(spacing=60, vertical_spacing=grid, tilt=3.0)))


def test_a_page_full_of_writing_gets_its_own_message(test_digits):
    page = ruled(size=(1000, 1300), spacing=80, first=60)
    rng = np.random.default_rng(5)
    for row in range(14):
        for column in range(9):
            digit = ink_of(test_digits.images[int(rng.integers(len(test_digits.labels)))], 45)
            write(page, digit, 30 + row * 80, 20 + column * 105, pen=(30, 30, 60))
    with pytest.raises(NoDigitFoundError, match="a lot of writing"):
        preprocess(jpeg(page))


@pytest.mark.parametrize("kind", ["notebook", "desk", "shadow"])
def test_steps_show_the_surface_and_the_lines_removed(kind):
    sources, _ = realinputs.make_set(kind, 3)
    for source in sources:
        steps = preprocess_steps(source)
        assert steps.surface.shape == steps.ink.shape == steps.rulings.shape == steps.picture.shape
        assert steps.surface.dtype == bool and steps.surface.any()
        assert (steps.ink[~steps.surface] == 0).all(), "no ink is read outside the surface"
        assert steps.image.shape == (28, 28)

"""The app in a real browser: `streamlit run app.py` driven by Playwright in Debian's Chromium.

Digits are drawn with mouse strokes at different places and sizes, near every edge of the canvas,
with and without the pointer resting on the canvas first; corrections land in a temporary store.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tools.app_harness import (
    CANVAS,
    CANVAS_HEIGHT,
    CANVAS_WIDTH,
    CHROMIUM,
    NUMBER_DRAWING,
    REPO_ROOT,
    digit_png,
    draw,
    draw_digit,
    launch_chromium,
    open_app,
    server_run,
    streamlit_server,
)
from digit_classifier import feedback

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
PREDICTION_TIMEOUT = 20_000  # ms; a stroke normally takes well under a second on two cores
NOT_A_DIGIT_MESSAGE = "This doesn't look like a digit"
# Any answer the app gives a drawing: a digit or number, two digits it hesitates between, or not a digit at all.
ANY_PREDICTION = re.compile(rf"^(Prediction: \d+|Unsure: \d or \d\?|{NOT_A_DIGIT_MESSAGE}|None of these \d+ marks looks like a digit)$")


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    store = tmp_path_factory.mktemp("e2e") / "wrong_predictions"
    env = {"DIGIT_FEEDBACK_DIR": str(store), "DIGIT_MODEL_DIR": str(trained_model.parent)}
    with streamlit_server(env=env) as url:
        yield url, store


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = open_app(browser, server[0])
    yield page
    page.context.close()


def expect_prediction(page, digit: int) -> None:
    expect(page.get_by_text(f"Prediction: {digit}", exact=True)).to_be_visible(timeout=PREDICTION_TIMEOUT)


def expect_no_prediction(page) -> None:
    expect(page.get_by_text("Draw a digit")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    expect(page.get_by_text(ANY_PREDICTION)).to_have_count(0)


def clear(page) -> None:
    page.get_by_role("button", name="Clear").click()
    expect_no_prediction(page)


def stroke_width_on_canvas(page) -> int:
    """Width in pixels of the white stroke crossing the canvas' middle row."""
    pixels = np.asarray(Image.open(io.BytesIO(page.locator(CANVAS).screenshot())).convert("L"))
    return int((pixels[pixels.shape[0] // 2] > 128).sum())


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name)


def test_blank_canvas_gives_no_prediction(page):
    expect_no_prediction(page)
    expect(page.locator(CANVAS)).to_have_count(1)


DRAWINGS = [  # digit, box (left, top, width, height) in canvas pixels
    (1, (110, 30, 60, 220)),  # large, centred
    (7, (140, 3, 130, 170)),  # along the top edge, where the canvas toolbar used to swallow strokes
    (0, (8, 186, 62, 86)),  # small, in the bottom-left corner
    (4, (170, 150, 100, 126)),  # middle, low
    (7, (440, 150, 110, 126)),  # bottom right of the wide canvas
    (1, (536, 20, 20, 240)),  # along the right edge
]


def test_drawn_digits_are_recognised_at_different_places_and_sizes(page):
    misread = []
    for digit, box in DRAWINGS:
        draw_digit(page, digit, box)
        try:
            expect_prediction(page, digit)
        except AssertionError:
            misread.append((digit, box, page.get_by_text(ANY_PREDICTION).all_inner_texts()))
        screenshot(page, f"draw-{digit}.png")
        clear(page)
    assert misread == []


@pytest.mark.parametrize(("key", "width"), [("Home", 4), ("End", 40)])
def test_stroke_width_slider_sets_the_pen(page, key, width):
    with server_run(page):
        page.get_by_role("slider", name="Stroke width").press(key)
    draw(page, [[(140, 20), (140, 260)]])
    expect(page.get_by_text(ANY_PREDICTION)).to_be_visible(timeout=PREDICTION_TIMEOUT)
    assert abs(stroke_width_on_canvas(page) - width) <= 3


EDGE = 4  # px from the canvas border where a stroke starts
W, H = CANVAS_WIDTH, CANVAS_HEIGHT
EDGE_STROKES = {  # short strokes from each edge inwards, none overlapping another
    "top-left": [(EDGE, EDGE), (EDGE + 4, 64)],
    "top-centre": [(W / 2, EDGE), (W / 2 - 4, 64)],
    "top-right": [(W - EDGE, EDGE), (W - 4 - EDGE, 64)],
    "right-middle": [(W - EDGE, 110), (W - 4 - EDGE, 170)],
    "bottom-right": [(W - EDGE, H - EDGE), (W - 4 - EDGE, H - 64)],
    "bottom-centre": [(W / 2, H - EDGE), (W / 2 + 4, H - 64)],
    "bottom-left": [(EDGE, H - EDGE), (EDGE + 4, H - 64)],
    "left-middle": [(EDGE, 110), (EDGE + 4, 170)],
}


def ink_at(page, x: float, y: float) -> int:
    """Brightness (0-255) of the drawing at canvas pixel (x, y), read two frames on, once Fabric has rendered."""
    return page.locator("canvas.dc-canvas.lower-canvas").evaluate(
        """(canvas, [x, y]) => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(
             () => resolve(canvas.getContext("2d").getImageData(x, y, 1, 1).data[0]))))""",
        [int(x), int(y)],
    )


@pytest.mark.parametrize("hover", [0.0, 0.6], ids=["pressed-on-arrival", "after-resting-on-canvas"])
def test_strokes_starting_near_every_edge_are_taken(page, hover):
    expect(page.locator(".dc-toolbar")).to_be_hidden()
    missed = []
    for place, stroke in EDGE_STROKES.items():
        assert ink_at(page, *stroke[0]) < 64
        draw(page, [stroke], hover=hover)
        if ink_at(page, *stroke[0]) < 192:
            missed.append(place)
    assert missed == [], f"strokes starting at {missed} were not taken"
    expect(page.get_by_text(ANY_PREDICTION)).to_be_visible(timeout=PREDICTION_TIMEOUT)
    expect(page.locator(".dc-toolbar")).to_be_hidden()


def test_clear_really_clears_and_undo_removes_the_last_stroke(page):
    draw_digit(page, 0, (70, 40, 140, 200))
    expect_prediction(page, 0)
    clear(page)
    draw_digit(page, 1, (110, 30, 60, 220))
    expect_prediction(page, 1)
    draw(page, [[(60, 32), (168, 30)]])  # a bar to the left of the 1's top turns it into a 7 (across it, into a T)
    expect_prediction(page, 7)
    page.get_by_role("button", name="Undo stroke").click()
    expect_prediction(page, 1)


def test_marking_a_drawing_wrong_saves_it_under_the_true_label(page, server):
    store: Path = server[1]
    draw_digit(page, 7, (60, 30, 160, 220))
    expect_prediction(page, 7)
    page.get_by_role("button", name="Wrong").click()
    page.get_by_role("radiogroup", name="Which digit is it?").get_by_role("radio", name="1", exact=True).click()
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_text("Saved as a 1")).to_be_visible(timeout=PREDICTION_TIMEOUT)

    images = list((store / "1").glob("*.png"))
    assert len(images) == 1
    metadata = json.loads(images[0].with_suffix(".json").read_text())
    assert (metadata["true_label"], metadata["predicted_label"], metadata["source"]) == (1, 7, "draw")
    assert metadata["original_filename"] is None
    with Image.open(images[0]) as saved:
        assert (saved.mode, saved.size) == ("RGBA", (CANVAS_WIDTH, CANVAS_HEIGHT))  # the canvas drawing itself

    page.get_by_role("button", name="Undo save").click()
    expect(page.get_by_text("Undone")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    assert list((store / "1").glob("*")) == []


BIG_X = [[(170, 25), (390, 255)], [(390, 25), (170, 255)]]  # two crossing strokes, most of the canvas' height


def test_a_drawn_x_is_not_a_digit_and_is_saved_as_not_a_digit(page, server):
    store: Path = server[1]
    draw(page, BIG_X[:1])
    # The first stroke alone (a line) gets its own answer first, so that the one awaited next is the whole X's.
    expect(page.get_by_text(ANY_PREDICTION)).to_be_visible(timeout=PREDICTION_TIMEOUT)
    with server_run(page):
        draw(page, BIG_X[1:])
    expect(page.get_by_text(NOT_A_DIGIT_MESSAGE, exact=True)).to_be_visible(timeout=PREDICTION_TIMEOUT)
    expect(page.get_by_text(re.compile(r"^Closest digits: \d \(\d+%\), \d \(\d+%\)$"))).to_be_visible()
    screenshot(page, "draw-x.png")

    page.get_by_role("button", name="Wrong").click()
    page.get_by_role("radiogroup", name="Which digit is it?").get_by_role("radio", name="Not a digit", exact=True).click()
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_text("Saved as not a digit")).to_be_visible(timeout=PREDICTION_TIMEOUT)

    [image] = (store / "not_a_digit").glob("*.png")
    assert {path.name for path in (store / "not_a_digit").iterdir()} == {image.name, image.with_suffix(".json").name}
    metadata = json.loads(image.with_suffix(".json").read_text())
    assert (metadata["true_label"], metadata["predicted_status"], metadata["source"]) == ("not_a_digit", "not_a_digit", "draw")
    with Image.open(image) as saved:  # both strokes: ink on both diagonals, near the four corners of the X
        ink = np.asarray(saved.convert("L")) > 128
    for x, y in (point for stroke in BIG_X for point in stroke):
        assert ink[y - 10 : y + 10, x - 10 : x + 10].any(), (x, y)


def upload(page, name: str, data: bytes, mime: str) -> None:
    page.get_by_role("tab", name="Upload").click()
    page.locator('input[type="file"]').set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_uploaded_png_gets_a_prediction(page):
    upload(page, "seven.png", digit_png(7), "image/png")
    expect_prediction(page, 7)
    expect(page.get_by_text("What the model saw")).to_have_count(1)
    screenshot(page, "upload-7.png")


def test_uploaded_non_image_gets_a_clear_message_and_no_prediction(page, server):
    before = sorted(server[1].rglob("*"))
    upload(page, "notes.txt", b"shopping list: milk, eggs", "text/plain")
    expect(page.get_by_text("is not an image that can be read")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    expect(page.get_by_text(ANY_PREDICTION)).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)
    assert sorted(server[1].rglob("*")) == before


def test_review_page_lists_and_deletes_a_correction(page, server):
    saved = feedback.save_correction(
        digit_png(7), 2, predicted_label=7, confidence=0.9, probabilities=[0.01] * 9 + [0.91],
        source="upload", root=server[1],
    ).item
    page.get_by_role("link", name="Review corrections").click()
    card = page.get_by_test_id("stColumn").filter(has_text="true 2 · model said 7")
    expect(card).to_be_visible(timeout=PREDICTION_TIMEOUT)
    expect(card.get_by_role("img")).to_be_visible()
    card.get_by_role("button", name="Delete").click()
    expect(page.get_by_text(f"Deleted {saved.id}")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    assert not saved.path.exists()


# Numbers ----------------------------------------------------------------------------------------

def test_a_drawn_three_digit_number_is_read_whole(page):
    for digit, box in NUMBER_DRAWING:
        draw_digit(page, digit, box)
    expect_prediction(page, 714)
    expect(page.get_by_text(re.compile(r"^\d · \d+%"))).to_have_count(3)  # one card per digit
    screenshot(page, "draw-714.png")


def files_in(store: Path) -> set[str]:
    return {str(path.relative_to(store)) for path in store.rglob("*") if path.is_file()} if store.exists() else set()


def upload_number(page, number_photo) -> str:
    picture, text = number_photo
    upload(page, "number.jpg", picture, "image/jpeg" if picture[:2] == b"\xff\xd8" else "image/png")
    expect_prediction(page, text)
    return text


def type_number(page, typed: str) -> None:
    page.get_by_role("button", name="Wrong").click()
    field = page.get_by_role("textbox", name="What is the number?")
    expect(field).to_be_visible(timeout=PREDICTION_TIMEOUT)
    with server_run(page):
        field.fill(typed)
        field.press("Enter")


def test_an_uploaded_photo_of_a_number_is_read_and_one_digit_corrected_then_undone(page, server, number_photo):
    store: Path = server[1]
    text = upload_number(page, number_photo)
    screenshot(page, "upload-number.png")
    before = files_in(store)
    typed = text[0] + "1" + text[2]
    type_number(page, typed)
    expect(page.get_by_text(f"digit 2: {text[1]} → 1")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_text("Saved 1 digit: a 1")).to_be_visible(timeout=PREDICTION_TIMEOUT)

    added = files_in(store) - before
    crops = [name for name in added if name.startswith("1/") and name.endswith(".png")]
    assert len(crops) == 1, added
    assert {name for name in added if not name.startswith("sources/")} == {crops[0], crops[0][:-4] + ".json"}
    sidecar = json.loads((store / crops[0]).with_suffix(".json").read_text())
    assert (sidecar["true_label"], sidecar["position"], sidecar["reading"], sidecar["typed"]) == (1, 1, text, typed)
    assert (store / "sources" / f"{sidecar['source_sha256']}.png").is_file()

    page.get_by_role("button", name="Undo save").click()
    expect(page.get_by_text("Undone:")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    assert files_in(store) == before


def test_a_number_typed_with_another_length_is_said_and_the_picture_kept(page, server, number_photo):
    store: Path = server[1]
    text = upload_number(page, number_photo)
    before = files_in(store)
    type_number(page, text + "5")
    expect(page.get_by_text("I found 3 digits, you typed 4.")).to_be_visible(timeout=PREDICTION_TIMEOUT)
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_text("are kept in wrong_predictions/unmatched/")).to_be_visible(timeout=PREDICTION_TIMEOUT)

    added = sorted(files_in(store) - before)
    assert len(added) == 2 and all(name.startswith("unmatched/") for name in added)
    sidecar = json.loads((store / added[0]).with_suffix(".json").read_text())
    assert (sidecar["reading"], sidecar["typed"]) == (text, text + "5")
    page.get_by_role("link", name="Review corrections").click()
    expect(page.get_by_text("1 number not split into digits")).to_be_visible(timeout=PREDICTION_TIMEOUT)

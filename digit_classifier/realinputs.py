"""Evaluation sets of the kinds people give, rendered from MNIST digits.

MNIST's test set says how well the model reads MNIST. People send something
else: a phone photo of ink on paper, a transparent PNG, a drawing on the app's
280x280 canvas, a tiny low-resolution digit. Each generator below renders one
MNIST digit (28x28, white on black) the way such an input looks, with its own
random size, position, colours, lighting and damage. Sets are deterministic
(seeded) and built from the *test* split by default, so they measure the model
on digits it never saw; anything trained on them (fine-tuning demos) must use
`split="train"`.

Three sets are phone photos of paper, as people take them where they wrote:
`notebook_photo` (a ruled, squared or dotted notebook page, pen or pencil,
the camera turned, off-axis or over a bowed page), `desk_note` (a note
covering 25-70 % of the picture on a wood, cloth or plain desk) and
`shadow_photo` (plain paper under the shadow of a hand or phone, sometimes a
glare). Each is drawn at a working resolution and enlarged to 400-1600 px a
side, then JPEG-compressed. `blank_surface`, `ruled_page_without_writing` and
`page_full_of_writing` render the inputs of that world that hold no single
digit, for the preprocessing's refusals.

`optdigits_set()` adds real digits from other writers: the UCI optical
recognition set of 8x8 digits (1,797 images) that ships inside scikit-learn.

`numbers_set()` renders numbers: 2-6 MNIST digits (lengths uniform, leading
zeros allowed, no digit image used twice in a set) written left to right on
one line, with the true text ("2026") beside each picture; 400 take 27-34 s
here. `render_number()` draws one number from given digits, for tests
and demos; `number_specs()` says which digits, style and `NumberLayout` each
number of the set has. Each digit keeps its MNIST shape, and the digits of a
number share a height within +-8 %.

Between neighbours, where their ink comes closest on a same row: 70 % a
writer's usual gap (15-45 % of the height, a quarter to three quarters of a
digit's width, varying +-30 % along the number), 20 % close (3-10 %), 10 %
touching or overlapping by up to 2 pixels, so 30 % of the numbers hold a
touching pair (119 of the first 400): people's spacing is mostly regular,
and touching pairs, rare in careful writing, are too common in quick writing
to leave out. Each digit sits up to 6 % of the height off the line; a
quarter of the lines are wavy (3-8 %) and 40 % are turned by up to 4
degrees. Renderings: 40 % `paper` (a cropped photo as `photo_like` takes,
the number 45-87 % of the picture's width), 20 % `notebook` (written with a
pen or pencil in a photographed notebook, as `notebook_photo`), 20 % `dark`
(white on black as MNIST, a grey PNG or the 8-bit array itself) and 20 %
`canvas` (one round pen on a 560x280 RGBA canvas, wide enough for a
number): pictures of paper are what people send most, white on black is
what the canvas and MNIST-style tools give. Desk notes are left out: their
note is sized for one digit, and a line of them would need a second copy of
that scene. Number i of a set depends only on (seed, split, i), drawn from a
stream of its own rather than a KINDS position, so the single-digit sets
keep their bytes and a small set is the start of a larger one.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from . import config, data

# New kinds are appended: make_set seeds each set with its kind's position here, so existing sets keep their bytes.
KINDS = ("photo", "transparent", "canvas", "lowres", "notebook", "desk", "shadow")
TARGETS = {
    "photo": 0.985, "transparent": 0.985, "canvas": 0.98, "lowres": 0.95, "optdigits": 0.93,
    "notebook": 0.98, "desk": 0.98, "shadow": 0.98,
}
DEFAULT_SIZE = 1000


def _upscaled_ink(digit: np.ndarray, height: int) -> np.ndarray:
    """28x28 uint8 digit -> float ink map whose 20-pixel digit box is about `height` pixels, pen-sharp."""
    field = max(28, round(height * 28 / 20))
    big = np.asarray(Image.fromarray(digit).resize((field, field), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return np.clip((big - 0.25) / 0.45, 0, 1)


def _paste(ink: np.ndarray, frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Place `ink` at a random position inside a frame of (height, width)."""
    out = np.zeros(frame, dtype=np.float32)
    top = int(rng.integers(0, frame[0] - ink.shape[0] + 1))
    left = int(rng.integers(0, frame[1] - ink.shape[1] + 1))
    out[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return out


def _rotate(ink: np.ndarray, degrees: float) -> np.ndarray:
    return np.asarray(Image.fromarray(ink, mode="F").rotate(degrees, Image.Resampling.BILINEAR, expand=True))


def photo_like(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on tinted paper, off-centre, rotated, unevenly lit, noisy, blurred, JPEG-compressed."""
    ink = _rotate(_upscaled_ink(digit, int(rng.integers(80, 401))), rng.uniform(-8, 8))
    frame = tuple(int(side * rng.uniform(1.3, 3.0)) for side in ink.shape)
    return _ink_on_paper(ink, frame, rng)


def _ink_on_paper(ink: np.ndarray, frame: tuple[int, int], rng: np.random.Generator) -> bytes:
    """`ink` placed anywhere in a frame of (height, width) as dark ink on tinted paper, unevenly lit, noisy, blurred,
    JPEG-compressed."""
    ink = _paste(ink, frame, rng)[..., None]
    paper = (rng.uniform(185, 250) + rng.uniform(-15, 15, size=3)).astype(np.float32)
    pen = (rng.uniform(10, 90) + rng.uniform(-25, 25, size=3)).astype(np.float32)
    image = paper * (1 - ink) + pen * ink
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0 : frame[0], 0 : frame[1]].astype(np.float32)
    ramp = (xs * math.cos(angle) + ys * math.sin(angle)) / max(frame)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    image *= (1 - np.float32(rng.uniform(0.0, 0.45)) * ramp)[..., None]
    image += np.float32(rng.uniform(1, 8)) * rng.standard_normal(image.shape, dtype=np.float32)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="RGB")
    picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(rng.integers(40, 91)))
    return buffer.getvalue()


def transparent_png(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Ink in the alpha channel on a transparent frame whose RGB is black, as image editors export it."""
    ink = _upscaled_ink(digit, int(rng.integers(40, 301)))
    frame = tuple(int(side * rng.uniform(1.1, 2.5)) for side in ink.shape)
    alpha = _paste(ink, frame, rng)
    colour = rng.choice([np.array([0, 0, 0]), np.array([255, 255, 255]), rng.integers(0, 256, size=3)])
    rgba = np.zeros(frame + (4,), dtype=np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, colour, 0).astype(np.uint8)
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: a one-pixel-wide skeleton of a binary shape."""
    image = mask.astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            p = np.pad(image, 1)
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            neighbours = sum(n)
            transitions = sum((n[i] == 0) & (n[(i + 1) % 8] == 1) for i in range(8))
            north, east, south, west = n[0], n[2], n[4], n[6]
            if step == 0:
                side = (north * east * south == 0) & (east * south * west == 0)
            else:
                side = (north * east * west == 0) & (north * south * west == 0)
            remove = (image == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                image[remove] = 0
                changed = True
        if not changed:
            return image.astype(bool)


def _restroked(digit: np.ndarray, height: float, width: float, supersample: int = 2, skeleton_height: int = 80) -> np.ndarray:
    """The digit's skeleton (found at `skeleton_height`) redrawn with a round pen `width` pixels wide, its 20-pixel
    box `height` high -> float ink."""
    skeleton = _thin(_upscaled_ink(digit, skeleton_height) > 0.5)
    scale = supersample * height / skeleton_height
    side = int(np.ceil(skeleton.shape[0] * scale))
    drawing = Image.new("L", (side, side), 0)
    pen = ImageDraw.Draw(drawing)
    radius = supersample * width / 2
    for y, x in zip(*np.nonzero(skeleton)):
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    stroke = drawing.resize((side // supersample, side // supersample), Image.Resampling.BOX)
    return np.asarray(stroke, dtype=np.float32) / 255


def canvas_like(digit: np.ndarray, rng: np.random.Generator, canvas: int = 280) -> np.ndarray:
    """Uniform thick round strokes, any size, anywhere on a 280x280 RGBA canvas (white on transparent or black).

    The MNIST digit is thinned to its skeleton, which is redrawn with a round
    pen of one width, as a mouse or finger on the app's canvas draws.
    """
    supersample = 2
    height = int(rng.integers(50, 241))
    width = rng.uniform(max(4.0, 0.06 * height), max(6.0, 0.16 * height))
    ink = _restroked(digit, height, width, supersample)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1][:canvas, :canvas]
    return _canvas_rgba(_paste(ink, (canvas, canvas), rng), rng)


def _canvas_rgba(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A drawing's coverage as the app's canvas returns it: white on transparent, or composited on its black."""
    rgba = np.zeros(alpha.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    if rng.random() < 0.5:  # the same drawing composited on the canvas' black background
        rgba[..., :3] = rgba[..., 3:4]
        rgba[..., 3] = 255
    return rgba


def low_resolution(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The digit shrunk to 8-16 px, then enlarged and blurred, as a thumbnail or old scan looks."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    crop = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    side = int(rng.integers(8, 17))
    scale = side / max(crop.size)
    small = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.BOX)
    margin = int(rng.integers(0, 3))
    framed = Image.new("L", (small.width + 2 * margin, small.height + 2 * margin))
    framed.paste(small, (margin, margin))
    factor = int(rng.integers(2, 9))
    big = framed.resize((framed.width * factor, framed.height * factor), Image.Resampling.BILINEAR)
    big = big.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.4 * factor)))
    if rng.random() < 0.5:  # dark on light as often as light on dark
        big = Image.eval(big, lambda value: 255 - value)
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


# --- Photos of paper as people take them: a notebook page, a note on a desk, a shadow over the page. ---
#
# Each scene is drawn at a working resolution (at most WORKING_PIXELS), then enlarged to the picture's size: the
# enlargement is the camera's softness, and it keeps a render at about 40-65 ms of CPU on this machine, where PIL's
# bilinear warp alone costs about 50 ns a pixel (measured: 125 ms for a 1600x1200 warp, 38 ms for 1000x750).

WORKING_PIXELS = 400_000
PICTURE_SIDES = (400, 1600)
RULINGS = ("ruled", "squared", "dotted")


@dataclass(frozen=True)
class Pen:
    """How a digit is written: ink colour (RGB), opacity, stroke width as a share of the digit's height (None keeps
    MNIST's own, felt-tip-like strokes) and whether it is graphite (grainy, low contrast)."""

    colour: tuple[float, float, float]
    opacity: float
    width: float | None
    pencil: bool


@dataclass(frozen=True)
class Ruling:
    """The printed lines of a page: style (one of RULINGS, or None for plain paper), spacing in working pixels,
    colour, opacity (how dark against the paper), width in working pixels and whether a margin line is drawn."""

    style: str | None
    spacing: float
    colour: tuple[float, float, float]
    opacity: float
    width: int
    margin: bool


def _picture_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of a phone photo resized for upload: 400-1600 px a side, portrait more often than landscape."""
    long_side = int(rng.integers(PICTURE_SIDES[0], PICTURE_SIDES[1] + 1))
    short_side = max(PICTURE_SIDES[0], round(long_side / rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0])))
    return (short_side, long_side) if rng.random() < 0.65 else (long_side, short_side)


def _working_size(size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """A smaller canvas to draw on (a random share of the picture's resolution): its enlargement is the blur."""
    scale = min(rng.uniform(0.5, 1.0), math.sqrt(WORKING_PIXELS / (size[0] * size[1])))
    return max(64, round(size[0] * scale)), max(64, round(size[1] * scale))


def _choose_pen(rng: np.random.Generator, pencil_share: float) -> Pen:
    if rng.random() < pencil_share:
        grey = rng.uniform(60, 130)  # faint but legible: at the faintest, strokes on average about 13 % darker than the paper
        colour = (grey, grey + rng.uniform(-4, 4), grey + rng.uniform(0, 12))
        return Pen(colour, rng.uniform(0.5, 0.9), rng.uniform(0.05, 0.09), True)
    if rng.random() < 0.55:  # blue ballpoint or gel pen
        colour = (rng.uniform(10, 60), rng.uniform(25, 80), rng.uniform(95, 190))
    else:
        dark = rng.uniform(10, 55)
        colour = (dark, dark + rng.uniform(-5, 5), dark + rng.uniform(-5, 10))
    width = None if rng.random() < 0.25 else rng.uniform(0.05, 0.13)
    return Pen(colour, rng.uniform(0.85, 1.0), width, False)


def _written(digit: np.ndarray, height: float, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage (0-1 float) of the digit written `height` pixels high with `pen`, slightly slanted."""
    if pen.width is None:
        ink = _upscaled_ink(digit, max(8, round(height)))
    else:
        # the skeleton at 56 px rather than 80 takes a redrawn digit from 7.6 to 5.5 ms; pens are at least 5 % of the
        # height wide, more than the 2 % that keeps the redrawn dots overlapping at that spacing
        stroke = max(2.0, pen.width * height)  # thinner strokes vanish once enlarged and compressed
        ink = _restroked(digit, height, stroke, skeleton_height=56)
        # a blur and a steep threshold round off the beads of the redrawn dots, as a pen's smooth edge
        blurred = Image.fromarray(np.round(ink * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.3 * stroke))
        ink = np.clip((np.asarray(blurred, np.float32) / 255 - 0.4) / 0.2, 0, 1)
    ink = _rotate(ink, rng.uniform(-6, 6))
    if pen.pencil:  # graphite: pressure varies along the stroke and the paper's tooth leaves light specks
        pressure = Image.fromarray(rng.uniform(0.6, 1.0, (4, 4)).astype(np.float32), mode="F")
        pressure = np.asarray(pressure.resize(ink.shape[::-1], Image.Resampling.BICUBIC))
        grain = 1 - rng.uniform(0.3, 0.7) * rng.random(ink.shape, dtype=np.float32)
        ink = ink * np.clip(pressure, 0, 1) * grain
    else:
        ink = ink * rng.uniform(0.9, 1.0, ink.shape).astype(np.float32)
    return np.clip(ink * pen.opacity, 0, 1)


def _write(page: np.ndarray, ink: np.ndarray, top: int, left: int, colour: tuple[float, float, float]) -> None:
    """Ink darkens what is under it (paper and printed lines alike), as ink and graphite do: multiply in place."""
    bottom, right = min(page.shape[0], top + ink.shape[0]), min(page.shape[1], left + ink.shape[1])
    top_clip, left_clip = max(0, top), max(0, left)
    if bottom <= top_clip or right <= left_clip:
        return
    cover = ink[top_clip - top : bottom - top, left_clip - left : right - left, None]
    region = page[top_clip:bottom, left_clip:right].astype(np.float32)
    region *= 1 - cover * (1 - np.asarray(colour, np.float32) / 255)
    page[top_clip:bottom, left_clip:right] = np.clip(region, 0, 255).astype(np.uint8)


def _ink_rows(ink: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(ink.max(1) > 0.2)
    return (int(rows[0]), int(rows[-1])) if len(rows) else (0, ink.shape[0] - 1)


def _paper_colour(rng: np.random.Generator, sticky: bool = False) -> tuple[float, float, float]:
    if sticky:  # yellow, pink, green or blue sticky notes
        return tuple(rng.choice([[250, 235, 120], [250, 200, 210], [200, 240, 170], [185, 225, 245]]) + rng.uniform(-12, 5, 3))
    white = rng.uniform(215, 252)
    cream = rng.uniform(0, 18) if rng.random() < 0.4 else 0.0
    return (white, white - cream * 0.4 + rng.uniform(-4, 4), white - cream + rng.uniform(-4, 4))


def _choose_ruling(rng: np.random.Generator, spacing: float, styles: tuple = RULINGS, faint: bool = False) -> Ruling:
    style = str(rng.choice(styles))
    palette = rng.integers(3)
    if palette == 0:  # light blue, the most common print colour
        colour = (rng.uniform(90, 170), rng.uniform(150, 200), rng.uniform(215, 250))
    elif palette == 1:
        grey = rng.uniform(110, 180)
        colour = (grey, grey, grey + rng.uniform(0, 10))
    else:  # near-black, as some squared pads and photocopies print them
        dark = rng.uniform(25, 80)
        colour = (dark, dark, dark + rng.uniform(0, 15))
    opacity = rng.uniform(0.25, 0.6) if faint else rng.uniform(0.3, 1.0)
    width = max(1, round(spacing * rng.uniform(0.015, 0.05)))  # 0.1-0.25 mm lines, 5-8 mm apart
    return Ruling(style, spacing, colour, opacity, width, style == "ruled" and rng.random() < 0.45)


def _draw_ruling(page: Image.Image, ruling: Ruling, paper: tuple, margin_at: float, rng: np.random.Generator) -> np.ndarray:
    """Printed lines across the whole page, at a random phase; -> the rows of the horizontal lines."""
    if ruling.style is None:
        return np.zeros(0)
    draw = ImageDraw.Draw(page)
    colour = tuple(int(round(p * (1 - ruling.opacity) + c * ruling.opacity)) for p, c in zip(paper, ruling.colour))
    width, height = page.size
    step = ruling.spacing
    rows = np.arange(rng.uniform(0, step), height, step)
    cols = np.arange(rng.uniform(0, step), width, step)
    if ruling.style == "dotted":
        radius = max(0.8, ruling.width * rng.uniform(0.6, 1.1))
        for y in rows:
            for x in cols:
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        return rows
    for y in rows:
        draw.line((0, y, width, y), fill=colour, width=ruling.width)
    if ruling.style == "squared":
        for x in cols:
            draw.line((x, 0, x, height), fill=colour, width=ruling.width)
    if ruling.margin:  # a red or pink margin line, sometimes doubled
        red = (rng.uniform(200, 245), rng.uniform(60, 150), rng.uniform(80, 160))
        strength = rng.uniform(0.5, 1.0)
        margin_colour = tuple(int(round(p * (1 - strength) + c * strength)) for p, c in zip(paper, red))
        lines = [margin_at] + ([margin_at + rng.uniform(3, 6) * ruling.width] if rng.random() < 0.3 else [])
        for x in lines:
            draw.line((x, 0, x, height), fill=margin_colour, width=max(1, ruling.width + int(rng.integers(0, 2))))
    return rows


def _homography(points: list, targets: list) -> np.ndarray:
    """The 8 coefficients of the projective map sending each of 4 `points` to its `target`."""
    rows, values = [], []
    for (x, y), (u, v) in zip(points, targets):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        values += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(values, float))


def _project(coefficients: np.ndarray, x, y):
    a, b, c, d, e, f, g, h = coefficients
    w = g * x + h * y + 1
    return (a * x + b * y + c) / w, (d * x + e * y + f) / w


@dataclass(frozen=True)
class _Camera:
    """Where each picture pixel looks on the page: a projective map plus a page bend, as a PIL mesh."""

    coefficients: np.ndarray
    bend: float  # the page's bow, in pixels of vertical displacement at the picture's left and right edges
    size: tuple[int, int]
    origin: tuple[float, float] = (0.0, 0.0)

    def to_page(self, x, y):
        u, v = _project(self.coefficients, x, y)
        middle, _ = _project(self.coefficients, self.size[0] / 2, self.size[1] / 2)
        return u - self.origin[0], v + self.bend * ((u - middle) / (self.size[0] / 2)) ** 2 - self.origin[1]


def _camera(size: tuple[int, int], rng: np.random.Generator, max_tilt: float, max_keystone: float, bend_share: float) -> _Camera:
    """A phone held over a page: turned by up to `max_tilt` degrees, off-axis by up to `max_keystone` (the far side of
    the page looks that much smaller), the page bowed (lines curving by up to 2 % of the height) in `bend_share` of
    the pictures."""
    width, height = size
    angle = math.radians(rng.uniform(-max_tilt, max_tilt))
    towards = rng.uniform(0, 2 * math.pi)
    keystone = rng.uniform(0, max_keystone) if rng.random() < 0.6 else 0.0
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    targets = []
    for x, y in corners:
        dx, dy = x - width / 2, y - height / 2
        stretch = 1 + keystone * (dx * math.cos(towards) + dy * math.sin(towards)) / math.hypot(dx, dy)
        turned = (dx * math.cos(angle) - dy * math.sin(angle), dx * math.sin(angle) + dy * math.cos(angle))
        targets.append((width / 2 + stretch * turned[0], height / 2 + stretch * turned[1]))
    bend = rng.uniform(-0.02, 0.02) * height if rng.random() < bend_share else 0.0
    camera = _Camera(_homography(corners, targets), bend, size)
    xs, ys = np.meshgrid(np.linspace(0, width, 9), np.linspace(0, height, 9))
    us, vs = camera.to_page(xs, ys)
    return _Camera(camera.coefficients, bend, size, (float(us.min()) - 4, float(vs.min()) - 4))


def _page_size(camera: _Camera) -> tuple[int, int]:
    xs, ys = np.meshgrid(np.linspace(0, camera.size[0], 9), np.linspace(0, camera.size[1], 9))
    us, vs = camera.to_page(xs, ys)
    return int(math.ceil(us.max())) + 5, int(math.ceil(vs.max())) + 5


def _photograph(page: Image.Image, camera: _Camera) -> Image.Image:
    """The page as the camera sees it: an 8x8 mesh of quads, each mapped bilinearly (a projective map, bent)."""
    width, height = camera.size
    xs, ys = np.linspace(0, width, 9), np.linspace(0, height, 9)
    us, vs = camera.to_page(*np.meshgrid(xs, ys))
    mesh = []
    for i in range(8):
        for j in range(8):
            box = (round(xs[j]), round(ys[i]), round(xs[j + 1]), round(ys[i + 1]))
            quad = (us[i, j], vs[i, j], us[i + 1, j], vs[i + 1, j], us[i + 1, j + 1], vs[i + 1, j + 1], us[i, j + 1], vs[i, j + 1])
            mesh.append((box, tuple(float(q) for q in quad)))
    return page.transform(camera.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)


def _light_field(size: tuple[int, int], rng: np.random.Generator, strength: float, cells: int = 16) -> np.ndarray:
    """Uneven light at low resolution (`cells` on the long side): a gradient, a vignette and a soft bright spot."""
    width, height = size
    cells = (cells, max(2, round(cells * height / width))) if width >= height else (max(2, round(cells * width / height)), cells)
    ys, xs = np.mgrid[0 : cells[1], 0 : cells[0]].astype(np.float32)
    xs, ys = xs / max(cells[0] - 1, 1) - 0.5, ys / max(cells[1] - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    light = 1 - strength * rng.uniform(0.2, 1.0) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light *= 1 - rng.uniform(0, 0.15) * (xs**2 + ys**2) * 2
    cx, cy = rng.uniform(-0.5, 0.5, 2)
    light *= 1 + rng.uniform(0, 0.1) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.1)
    # the phone's exposure puts the brightest paper near white (a little blown out at times), whatever the desk
    return light * (rng.uniform(0.92, 1.1) / float(light.max()))


def _cast_shadow(light: np.ndarray, rng: np.random.Generator, coverage: float, darkness: float) -> np.ndarray:
    """The shadow of a hand, a phone or the photographer's arm entering from one edge, grown or shrunk until it
    covers `coverage` of the picture, with a soft edge (penumbra) 2-12 % of the picture wide."""
    from scipy import ndimage  # here, not at the top: importing it takes about 2 s here and only this set needs it

    rows, cols = light.shape
    mask = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(mask)
    edge = rng.uniform(0, 2 * math.pi)
    inward = (-math.cos(edge), -math.sin(edge))
    across = (-inward[1], inward[0])
    reach = max(rows, cols)
    ex, ey = cols / 2 - inward[0] * 0.6 * reach, rows / 2 - inward[1] * 0.6 * reach  # a point just outside that edge

    def towards(length: float, side: float, origin: tuple[float, float] = (ex, ey)) -> tuple[float, float]:
        return origin[0] + inward[0] * length + across[0] * side, origin[1] + inward[1] * length + across[1] * side

    shape = rng.choice(["arm", "phone", "hand"])
    if shape == "arm":  # a broad band with a bulging end
        width = rng.uniform(0.3, 0.7) * reach
        tip = towards(rng.uniform(0.5, 0.9) * reach, rng.uniform(-0.2, 0.2) * reach)
        draw.polygon([towards(-reach, -width / 2), towards(-reach, width / 2), towards(0, width / 2, tip), towards(0, -width / 2, tip)], fill=255)
        draw.ellipse((tip[0] - width / 2, tip[1] - width / 2, tip[0] + width / 2, tip[1] + width / 2), fill=255)
    elif shape == "phone":  # a long rectangle, slightly askew
        tilt = rng.uniform(-0.5, 0.5)
        direction = np.array([inward[0] * math.cos(tilt) - inward[1] * math.sin(tilt), inward[0] * math.sin(tilt) + inward[1] * math.cos(tilt)])
        normal = np.array([-direction[1], direction[0]]) * rng.uniform(0.15, 0.3) * reach
        start = np.array(towards(0, rng.uniform(-0.2, 0.2) * reach))
        end = start + direction * rng.uniform(0.6, 1.1) * reach
        draw.polygon([tuple(start + normal), tuple(end + normal), tuple(end - normal), tuple(start - normal)], fill=255)
    else:  # a palm and four fingers reaching in
        palm = rng.uniform(0.25, 0.4) * reach
        centre = towards(rng.uniform(0.2, 0.45) * reach, rng.uniform(-0.2, 0.2) * reach)
        draw.ellipse((centre[0] - palm, centre[1] - palm, centre[0] + palm, centre[1] + palm), fill=255)
        spread = rng.uniform(0.12, 0.2) * reach
        for k in range(4):
            side = (k - 1.5) * spread * 0.7
            length = palm + rng.uniform(0.15, 0.35) * reach
            base = (centre[0] + across[0] * side, centre[1] + across[1] * side)
            tip = (base[0] + inward[0] * length, base[1] + inward[1] * length)
            draw.line([base, tip], fill=255, width=max(2, round(spread * 0.55)))
            draw.ellipse((tip[0] - spread * 0.27, tip[1] - spread * 0.27, tip[0] + spread * 0.27, tip[1] + spread * 0.27), fill=255)
    inside = np.asarray(mask) > 127
    # smoothed, or the staircase of the 128-cell raster shows along the shadow's edge once enlarged
    signed = ndimage.gaussian_filter(ndimage.distance_transform_edt(inside) - ndimage.distance_transform_edt(~inside), 1.5)
    threshold = np.quantile(signed, 1 - coverage)
    penumbra = rng.uniform(0.02, 0.12) * reach
    shade = np.clip((signed - threshold) / penumbra + 0.5, 0, 1)
    shade = shade * shade * (3 - 2 * shade)  # smoothstep: a penumbra has no corner where it meets full shadow
    return light * (1 - darkness * shade)


def _enlarged(field: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(np.clip(field * 255, 0, 255).astype(np.uint8), mode="L").resize(size, Image.Resampling.BILINEAR)


def _light(picture: Image.Image, field: np.ndarray) -> Image.Image:
    layer = _enlarged(field, picture.size)
    return ImageChops.multiply(picture, Image.merge("RGB", (layer, layer, layer)))


def _glare(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A specular reflection: a soft patch that brightens towards white but leaves the ink darker than the paper."""
    width, height = picture.size
    cells = (48, max(2, round(48 * height / width)))
    ys, xs = np.mgrid[0 : cells[1], 0 : cells[0]].astype(np.float32)
    xs, ys = xs / (cells[0] - 1), ys / (cells[1] - 1)
    cx, cy = rng.uniform(0.15, 0.85, 2)
    rx, ry = rng.uniform(0.06, 0.25, 2)
    blob = rng.uniform(0.5, 0.8) * np.exp(-(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2))
    layer = _enlarged(blob, picture.size)
    return ImageChops.screen(picture, Image.merge("RGB", (layer, layer, layer)))


def _sensor(picture: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> bytes:
    """Colour cast, sensor noise, the camera's softness (enlargement from the working size), JPEG."""
    warmth, tint = rng.uniform(-0.05, 0.05), rng.uniform(-0.015, 0.015)  # white balance: warm or cool, barely green
    gains = (1 + warmth, 1 + tint, 1 - warmth)
    levels = np.arange(256, dtype=np.float32)
    picture = picture.point(np.concatenate([np.minimum(255, np.round(levels * gain)) for gain in gains]).astype(int).tolist())
    sigma = rng.uniform(1.5, 7.0)
    noise = np.clip(128 + sigma * rng.standard_normal(picture.size[::-1], dtype=np.float32), 0, 255).astype(np.uint8)
    grain = Image.fromarray(noise, mode="L")
    picture = ImageChops.add(picture, Image.merge("RGB", (grain, grain, grain)), 1.0, -128)
    if rng.random() < 0.3:
        picture = picture.filter(ImageFilter.BoxBlur(1))
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(rng.integers(55, 96)))
    return buffer.getvalue()


def _page_photo(rng: np.random.Generator, style: str | None, spacing_share: float, write, shadow: bool) -> bytes:
    """A page filling the picture, photographed: printed lines of `style` (None: plain paper) `spacing_share` of the
    picture's height apart, what `write(page, camera, rows, spacing)` puts on it, uneven light (and a shadow)."""
    size = _picture_size(rng)
    work = _working_size(size, rng)
    camera = _camera(work, rng, max_tilt=10, max_keystone=0.12, bend_share=0.3)
    paper = _paper_colour(rng)
    spacing = spacing_share * work[1]
    ruling = Ruling(None, spacing, paper, 0.0, 1, False) if style is None else _choose_ruling(rng, spacing, (style,))
    page = Image.new("RGB", _page_size(camera), tuple(int(round(c)) for c in paper))
    margin_x, _ = camera.to_page(rng.uniform(0.05, 0.4) * work[0], work[1] / 2)
    rows = _draw_ruling(page, ruling, paper, float(margin_x), rng)
    if write is not None:
        canvas = np.array(page)
        write(canvas, camera, rows, spacing)
        page = Image.fromarray(canvas, mode="RGB")
    picture = _photograph(page, camera)
    light = _light_field(work, rng, strength=rng.uniform(0.05, 0.35), cells=128 if shadow else 16)
    if shadow:
        light = _cast_shadow(light, rng, coverage=rng.uniform(0.2, 0.7), darkness=rng.uniform(0.2, 0.6))
    picture = _light(picture, light)
    if shadow and rng.random() < 0.4:
        picture = _glare(picture, rng)
    return _sensor(picture, size, rng)


def _one_digit(digit: np.ndarray, height_share: float, pencil_share: float, on_line: bool, rng: np.random.Generator):
    """A writer for `_page_photo`: the digit `height_share` of the picture's height, anywhere in view; when
    `on_line`, its foot on (or just off) the nearest ruled line, as people write on ruled paper."""

    def write(page: np.ndarray, camera: _Camera, rows: np.ndarray, spacing: float) -> None:
        work = camera.size
        height = height_share * work[1]
        pen = _choose_pen(rng, pencil_share)
        ink = _written(digit, height, pen, rng)
        top_row, bottom_row = _ink_rows(ink)
        x_margin = 0.6 * height + 2
        y_margin = 0.6 * height + 2 + (0.7 * spacing if on_line else 0)
        cx, cy = camera.to_page(rng.uniform(x_margin, work[0] - x_margin), rng.uniform(y_margin, max(y_margin, work[1] - y_margin)))
        top = float(cy) - (top_row + bottom_row) / 2
        if on_line and len(rows):
            foot = rows[np.argmin(np.abs(rows - (top + bottom_row)))] + rng.uniform(-0.15, 0.1) * spacing
            top = float(foot) - bottom_row
        _write(page, ink, round(top), round(float(cx) - ink.shape[1] / 2), pen.colour)

    return write


def _rows_of_digits(images: np.ndarray, rng: np.random.Generator):
    """A writer for `_page_photo`: small digits drawn from `images`, side by side on every line of the page."""

    def write(page: np.ndarray, camera: _Camera, rows: np.ndarray, spacing: float) -> None:
        pen = _choose_pen(rng, pencil_share=0.4)
        height = spacing * rng.uniform(0.55, 0.85)
        pitch = height * rng.uniform(0.75, 1.05)
        for row in rows if len(rows) else np.arange(spacing, page.shape[0], spacing):
            x = rng.uniform(0, pitch)
            while x < page.shape[1]:
                ink = _upscaled_ink(images[int(rng.integers(len(images)))], max(6, round(height * rng.uniform(0.85, 1.1))))
                _, bottom_row = _ink_rows(ink)
                _write(page, ink * pen.opacity, round(row - bottom_row - rng.uniform(0.05, 0.2) * spacing), round(x), pen.colour)
                x += pitch * rng.uniform(0.8, 1.25)

    return write


def _notebook_style(rng: np.random.Generator) -> str:
    return str(rng.choice(RULINGS, p=[0.45, 0.4, 0.15]))


def _smooth_noise(length: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """1-D noise with features about `scale` samples long, unit spread."""
    cells = max(2, int(length / max(scale, 1.0)) + 2)
    values = np.interp(np.arange(length) / max(scale, 1.0), np.arange(cells), rng.standard_normal(cells))
    return (values / max(float(values.std()), 1e-6)).astype(np.float32)


def _sine_of_sum(row: np.ndarray, column: np.ndarray) -> np.ndarray:
    """sin(row + column) for a (1, w) and an (h, 1) array: four 1-D sines instead of a 2-D one (a 2-D sine is the
    slowest step of a texture, about 10 ns a pixel)."""
    return np.sin(row) * np.cos(column) + np.cos(row) * np.sin(column)


def _wood(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Procedural wood: a profile across the grain (fine lines, wider bands, plank-to-plank shade) drawn along a
    gently wavering grain direction, in a brown from light oak to walnut."""
    width, height = size
    xs, ys = np.arange(width, dtype=np.float32)[None, :], np.arange(height, dtype=np.float32)[:, None]
    angle = rng.uniform(0, math.pi)
    across = ys * math.cos(angle) - xs * math.sin(angle)
    span = max(size)
    frequency, phase = 2 * math.pi / (rng.uniform(0.6, 2.0) * span), rng.uniform(0, 6.3)
    across = across + rng.uniform(0.005, 0.03) * span * _sine_of_sum(xs * (math.cos(angle) * frequency) + phase, ys * (math.sin(angle) * frequency))
    offset = across - float(across.min())
    length = int(float(offset.max())) + 2
    fine = _smooth_noise(length, rng.uniform(1.5, 3.0), rng)
    bands = _smooth_noise(length, rng.uniform(0.01, 0.04) * span, rng)
    plank = max(8, int(rng.uniform(0.15, 0.5) * span))
    planks = np.repeat(rng.standard_normal(length // plank + 2), plank)
    profile = 1 + rng.uniform(0.03, 0.08) * fine + rng.uniform(0.05, 0.14) * bands + rng.uniform(0.0, 0.08) * planks[:length].astype(np.float32)
    shade = profile[offset.astype(np.int32)]
    base = np.array([rng.uniform(110, 210), 0, 0], np.float32)
    base[1] = base[0] * rng.uniform(0.62, 0.75)
    base[2] = base[0] * rng.uniform(0.38, 0.55)
    return shade[..., None] * base


def _cloth(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A plain weave: threads a few pixels wide going over and under, each thread a slightly different shade."""
    width, height = size
    xs, ys = np.arange(width, dtype=np.float32)[None, :], np.arange(height, dtype=np.float32)[:, None]
    angle = rng.uniform(-0.5, 0.5)
    thread = rng.uniform(2.5, 7.0)
    warp = _sine_of_sum(xs * (math.cos(angle) * math.pi / thread), ys * (math.sin(angle) * math.pi / thread))
    weft = _sine_of_sum(ys * (math.cos(angle) * math.pi / thread), -xs * (math.sin(angle) * math.pi / thread))
    over = (warp * weft) > 0
    shade = np.where(over, np.abs(warp), np.abs(weft))
    shade = 1 - rng.uniform(0.15, 0.35) * (1 - shade)
    base = np.array(rng.choice([[60, 80, 130], [130, 130, 135], [150, 60, 60], [70, 110, 70], [190, 175, 150], [45, 45, 50]]), np.float32)
    return shade[..., None] * (base + rng.uniform(-15, 15, 3).astype(np.float32))


def _plain_desk(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A laminate or painted desk: grey, black, green, blue, with a little mottling."""
    base = np.array(rng.choice([[100, 100, 105], [35, 35, 38], [60, 100, 70], [60, 80, 120], [150, 150, 145], [20, 40, 35]]), np.float32)
    mottle = np.asarray(Image.fromarray(rng.uniform(0.9, 1.1, (6, 6)).astype(np.float32), mode="F").resize(size, Image.Resampling.BICUBIC))
    return mottle[..., None] * (base + rng.uniform(-15, 15, 3).astype(np.float32))


SURFACES = (_wood, _cloth, _plain_desk)


def _surface(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    texture = SURFACES[int(rng.integers(len(SURFACES)))](size, rng)
    return Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8), mode="RGB")


def _paper_outline(work: tuple[int, int], rng: np.random.Generator) -> list[tuple[float, float]]:
    """Corners (clockwise from the top left of the note) of a note covering 25-70 % of the picture, turned by up to
    15 degrees, mildly foreshortened, inside the picture or now and then across one of its edges."""
    width, height = work
    aspect = 1.0 if rng.random() < 0.4 else rng.uniform(1.25, 1.45)
    if rng.random() < 0.5:
        aspect = 1 / aspect
    angle = math.radians(rng.uniform(-15, 15))
    coverage = rng.uniform(0.25, 0.7)
    for _ in range(20):  # shrink until the turned note fits (a wide note in a tall picture cannot cover 70 %)
        note_w = math.sqrt(coverage * width * height * aspect)
        note_h = note_w / aspect
        span_x = abs(note_w * math.cos(angle)) + abs(note_h * math.sin(angle))
        span_y = abs(note_w * math.sin(angle)) + abs(note_h * math.cos(angle))
        if span_x <= 0.96 * width and span_y <= 0.96 * height:
            break
        coverage *= 0.95
    overhang = rng.uniform(0.0, 0.12) if rng.random() < 0.25 else 0.0
    cx = rng.uniform(span_x / 2, width - span_x / 2) if span_x < width else width / 2
    cy = rng.uniform(span_y / 2, height - span_y / 2) if span_y < height else height / 2
    side = int(rng.integers(4))
    cx += overhang * span_x * (1 if side == 0 else -1 if side == 1 else 0)
    cy += overhang * span_y * (1 if side == 2 else -1 if side == 3 else 0)
    keystone = rng.uniform(0, 0.08) if rng.random() < 0.5 else 0.0
    towards = rng.uniform(0, 2 * math.pi)
    corners = []
    for dx, dy in ((-note_w / 2, -note_h / 2), (note_w / 2, -note_h / 2), (note_w / 2, note_h / 2), (-note_w / 2, note_h / 2)):
        stretch = 1 - keystone * (dx * math.cos(towards) + dy * math.sin(towards)) / math.hypot(dx, dy)
        corners.append((cx + stretch * (dx * math.cos(angle) - dy * math.sin(angle)), cy + stretch * (dx * math.sin(angle) + dy * math.cos(angle))))
    return corners


def _note(
    digit: np.ndarray | None, note_size: tuple[int, int], picture_height: int, rng: np.random.Generator, in_view: Callable
) -> tuple[Image.Image, tuple[float, float, float] | None]:
    """The note itself, flat: paper (sometimes a sticky note, sometimes lightly ruled) and the digit written on it,
    where `in_view(x, y)` (note pixels) says the picture shows it; -> (note, (x, y, radius) of the writing, or None)."""
    paper = _paper_colour(rng, sticky=rng.random() < 0.35)
    note = Image.new("RGBA", note_size, tuple(int(round(c)) for c in paper) + (255,))
    short = min(note_size)
    digit_height = float(np.clip(rng.uniform(0.3, 0.7) * short, 0.08 * picture_height, min(0.45 * picture_height, 0.8 * short)))
    if rng.random() < 0.3:
        spacing = digit_height / rng.uniform(1.0, 2.5)
        ruling = _choose_ruling(rng, spacing, ("ruled", "squared"), faint=True)
        _draw_ruling(note, ruling, paper, rng.uniform(0.1, 0.2) * note_size[0], rng)
    if digit is None:
        return note, None
    pen = _choose_pen(rng, pencil_share=0.35)
    ink = _written(digit, digit_height, pen, rng)
    # placed by the digit's nominal box (its 20-px MNIST box, turned a little: 1.2 heights square around the patch's
    # centre, where MNIST puts the centre of mass), so the scene does not depend on the digit's shape
    half = 0.6 * digit_height
    centre_x, centre_y = ink.shape[1] / 2, ink.shape[0] / 2
    room_x, room_y = (max(0.0, side - 2 * half - 0.1 * short) for side in note_size)
    for _ in range(20):  # a note across the picture's edge: write on the part in view
        x = 0.05 * short + half + rng.uniform(0, room_x)
        y = 0.05 * short + half + rng.uniform(0, room_y)
        if all(in_view(x + dx, y + dy) for dx in (-half, half) for dy in (-half, half)):
            break
    canvas = np.array(note)
    rgb = canvas[..., :3].copy()
    _write(rgb, ink, round(y - centre_y), round(x - centre_x), pen.colour)
    canvas[..., :3] = rgb
    return Image.fromarray(canvas, mode="RGBA"), (x, y, half)


def _distance_to_border(point: np.ndarray, direction: np.ndarray, size: tuple[int, int]) -> float:
    """How far from `point` (inside the picture or not) along the unit `direction` the picture's border is."""
    distances = [
        ((size[axis] if direction[axis] > 0 else 0) - point[axis]) / direction[axis] for axis in (0, 1) if abs(direction[axis]) > 1e-9
    ]
    return max(0.0, min(distances)) if distances else 0.0


def _thumb(picture: Image.Image, corners: list, writing: tuple[float, float, float] | None, rng: np.random.Generator) -> None:
    """A thumb holding the note down at the edge farthest from the writing, the hand coming in from the picture's
    border (skipped when that edge is far from the border or near the writing)."""
    middle = np.mean(corners, axis=0)
    width = rng.uniform(0.09, 0.14) * min(picture.size)
    edges = [(np.asarray(corners[i]), np.asarray(corners[(i + 1) % 4])) for i in range(4)]
    if writing is not None:
        edges.sort(key=lambda edge: -np.linalg.norm((edge[0] + edge[1]) / 2 - writing[:2]))
    start, end = edges[0]
    point = start + rng.uniform(0.3, 0.7) * (end - start)
    outward = point - middle
    outward /= max(float(np.linalg.norm(outward)), 1e-6)
    if writing is not None and np.linalg.norm(point - writing[:2]) < writing[2] + 2.2 * width:
        return  # the writing reaches this edge: a thumb there would hide part of it
    reach = _distance_to_border(point, outward, picture.size)
    if reach > 0.35 * min(picture.size):
        return  # the hand would have to cross a wide stretch of desk
    across = np.array([-outward[1], outward[0]])
    tip, knuckle = point - outward * 0.6 * width, point + outward * 1.6 * width
    far = point + outward * (reach + 2 * width)
    outline = [tip + across * width / 2, knuckle + across * width * 0.6, far + across * width * 1.8,
               far - across * width * 1.8, knuckle - across * width * 0.6, tip - across * width / 2]
    xs, ys = [p[0] for p in outline], [p[1] for p in outline]
    left, top = max(0, int(min(xs) - width)), max(0, int(min(ys) - width))
    right, bottom = min(picture.size[0], int(max(xs) + width) + 1), min(picture.size[1], int(max(ys) + width) + 1)
    if right <= left or bottom <= top:
        return
    mask = Image.new("L", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(mask)
    draw.polygon([(x - left, y - top) for x, y in outline], fill=255)
    draw.ellipse((tip[0] - left - width / 2, tip[1] - top - width / 2, tip[0] - left + width / 2, tip[1] - top + width / 2), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(0.6, 0.02 * width)))
    small = mask.resize((max(1, mask.width // 4), max(1, mask.height // 4)), Image.Resampling.BILINEAR)
    rounded = np.asarray(small.filter(ImageFilter.GaussianBlur(0.06 * width)).resize(mask.size, Image.Resampling.BILINEAR), np.float32) / 255
    skin = np.array([rng.uniform(150, 235), 0, 0], np.float32)
    skin[1], skin[2] = skin[0] * rng.uniform(0.68, 0.8), skin[0] * rng.uniform(0.52, 0.68)
    shaded = (0.65 + 0.35 * rounded)[..., None] * skin  # darker towards its sides, as a rounded finger is lit
    picture.paste(Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8), mode="RGB"), (left, top), mask)


def _desk_photo(digit: np.ndarray | None, rng: np.random.Generator, with_paper: bool = True) -> bytes:
    """A note lying on a desk (or the bare desk), photographed from above with uneven light."""
    size = _picture_size(rng)
    work = _working_size(size, rng)
    picture = _surface(work, rng)
    light = _light_field(work, rng, strength=rng.uniform(0.05, 0.35), cells=64)
    if with_paper:
        corners = _paper_outline(work, rng)
        note_w = round(math.dist(corners[0], corners[1]))
        note_h = round(math.dist(corners[1], corners[2]))
        note_size = (max(8, note_w), max(8, note_h))
        flat_corners = [(0, 0), (note_size[0], 0), (note_size[0], note_size[1]), (0, note_size[1])]
        to_picture = _homography(flat_corners, corners)

        def in_view(x: float, y: float, margin: float = 0.02 * min(work)) -> bool:
            px, py = _project(to_picture, x, y)
            return margin <= px <= work[0] - margin and margin <= py <= work[1] - margin

        note, writing = _note(digit, note_size, work[1], rng, in_view)
        left, top = max(0, math.floor(min(x for x, _ in corners)) - 2), max(0, math.floor(min(y for _, y in corners)) - 2)
        right, bottom = min(work[0], math.ceil(max(x for x, _ in corners)) + 2), min(work[1], math.ceil(max(y for _, y in corners)) + 2)
        local = [(x - left, y - top) for x, y in corners]
        # a transparent border, so the bilinear warp blends the note's edge into the desk instead of cutting steps
        framed = Image.new("RGBA", (note.width + 4, note.height + 4), note.getpixel((0, 0))[:3] + (0,))  # no dark fringe
        framed.paste(note, (2, 2))
        flat = [(2, 2), (note.width + 2, 2), (note.width + 2, note.height + 2), (2, note.height + 2)]
        coefficients = tuple(_homography(local, flat))
        seen = framed.transform((right - left, bottom - top), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR)
        if rng.random() < 0.6:  # the note's soft shadow on the desk, falling to one side
            light = _paper_shadow(light, corners, work, rng)
        picture.paste(seen, (left, top), seen)
        if rng.random() < 0.2:
            if writing is not None:  # where the writing is in the picture
                x, y = _project(to_picture, writing[0], writing[1])
                writing = (float(x), float(y), writing[2])
            _thumb(picture, corners, writing, rng)
    picture = _light(picture, light)
    return _sensor(picture, size, rng)


def _paper_shadow(light: np.ndarray, corners: list, work: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The note's soft shadow on the desk beside it (the note lies a little above the desk, lit from one side)."""
    rows, cols = light.shape
    scale = cols / work[0]
    offset = rng.uniform(-0.012, 0.012, 2) * max(work) * scale
    cast, paper = Image.new("L", (cols, rows), 0), Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(cast).polygon([(x * scale + offset[0], y * scale + offset[1]) for x, y in corners], fill=255)
    ImageDraw.Draw(paper).polygon([(x * scale, y * scale) for x, y in corners], fill=255)
    soft = np.asarray(cast.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))), np.float32) / 255
    on_desk = 1 - np.asarray(paper.filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255  # not on the note itself
    return light * (1 - rng.uniform(0.15, 0.45) * soft * on_desk)


def notebook_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A digit in a school notebook (ruled, squared or dotted; pen or pencil), photographed with a phone.

    Lines light blue, grey or near-black, fainter or stronger than the ink, across the whole picture; the digit
    8-35 % of the picture's height and 1-2.5 line spacings (ruled) or 1-3 squares high, wherever it falls, so
    strokes cross lines; the page turned by up to 10 degrees, sometimes seen off-axis or bowed; uneven light,
    noise, softness, JPEG.
    """
    style = _notebook_style(rng)
    height_share = rng.uniform(0.08, 0.35)
    spacing_share = height_share / (rng.uniform(1.0, 2.5) if style == "ruled" else rng.uniform(1.0, 3.0))
    writer = _one_digit(digit, height_share, pencil_share=0.45, on_line=style == "ruled" and rng.random() < 0.6, rng=rng)
    return _page_photo(rng, style, spacing_share, writer, shadow=False)


def desk_note(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A note with the digit on it lying on a desk: wood, cloth or a plain dark or coloured surface around it.

    The note (white, cream or a sticky note, sometimes lightly ruled) covers 25-70 % of the picture, turned by up
    to 15 degrees, sometimes foreshortened, sometimes across one edge; a soft shadow beside it now and then.
    """
    return _desk_photo(digit, rng)


def shadow_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A digit on plain paper with the shadow of a hand or phone over 20-70 % of the picture (20-60 % darker),
    sometimes a glare that whitens part of the page, sometimes faint pencil; the digit 12-40 % of the picture's height."""
    height_share = rng.uniform(0.12, 0.4)
    return _page_photo(rng, None, height_share, _one_digit(digit, height_share, 0.35, False, rng), shadow=True)


def blank_surface(rng: np.random.Generator) -> bytes:
    """Bad input: a bare desk, or a sheet with nothing written on it lying on a desk."""
    return _desk_photo(None, rng, with_paper=rng.random() < 0.5)


def ruled_page_without_writing(rng: np.random.Generator) -> bytes:
    """Bad input: a ruled, squared or dotted page photographed with only its printed lines."""
    return _page_photo(rng, _notebook_style(rng), rng.uniform(0.03, 0.12), None, shadow=rng.random() < 0.3)


def page_full_of_writing(rng: np.random.Generator) -> bytes:
    """Bad input: a notebook page with small handwritten digits (MNIST *train*) on every line, none standing out."""
    writer = _rows_of_digits(data.load_split("train").images, rng)
    return _page_photo(rng, _notebook_style(rng), 1 / rng.uniform(8, 16), writer, shadow=False)


GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], object]] = {
    "photo": photo_like,
    "transparent": transparent_png,
    "canvas": canvas_like,
    "lowres": low_resolution,
    "notebook": notebook_photo,
    "desk": desk_note,
    "shadow": shadow_photo,
}


def make_set(kind: str, n: int = DEFAULT_SIZE, split: str = "test", seed: int = config.SEED) -> tuple[list, np.ndarray]:
    """`n` inputs of one kind rendered from MNIST `split` digits (same seed, same set)."""
    if kind not in GENERATORS:
        raise ValueError(f"kind must be one of {', '.join(GENERATORS)}, not {kind!r}")
    mnist = data.load_split(split)
    rng = np.random.default_rng([seed, KINDS.index(kind), 0 if split == "test" else 1])
    indices = rng.choice(len(mnist.labels), size=n, replace=False)
    sources = [GENERATORS[kind](mnist.images[i], rng) for i in indices]
    return sources, mnist.labels[indices].astype(int)


def optdigits_set() -> tuple[list, np.ndarray]:
    """The 1,797 8x8 digits of UCI optdigits as scikit-learn ships them, as 8-bit images: the UCI test split,
    written by 13 people (UCI's 43 writers are split 30 for training, a different 13 for test), none from MNIST."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    images = [np.round(image * 255 / 16).astype(np.uint8) for image in digits.images]
    return images, digits.target.astype(int)


# --- Numbers: 2-6 MNIST digits side by side on one line of writing. ---

NUMBER_LENGTHS = (2, 6)
# photos of paper are what people send most; white on black is what the canvas and MNIST-style tools give
NUMBER_STYLE_SHARES = {"paper": 0.4, "notebook": 0.2, "dark": 0.2, "canvas": 0.2}
NUMBER_STYLES = tuple(NUMBER_STYLE_SHARES)
TOUCHING_SHARE, CLOSE_SHARE = 0.1, 0.2  # of the gaps between neighbours; the rest are a writer's usual gap
# numbers_set seeds its generators with this in place of a KINDS position (outside their range), so appending a
# kind moves neither the single-digit sets nor this one
_NUMBERS_STREAM = 1000


@dataclass(frozen=True)
class NumberLayout:
    """Where the digits of one number sit on their line, in shares of the number's digit height (so one layout
    renders at any size). `scales`: each digit's height against the number's. `gaps`: the whitespace from each
    digit to the next where their ink comes closest on a same row, or None where the two touch; `overlaps`: for
    touching neighbours, the pixels by which their ink overlaps (0: side by side, no gap). `rises`: each digit
    lowered (positive) or raised from the line: jitter plus, for some numbers, a wave. `tilt`: degrees the whole
    line is turned, counterclockwise."""

    scales: tuple[float, ...]
    gaps: tuple[float | None, ...]
    overlaps: tuple[int, ...]
    rises: tuple[float, ...]
    tilt: float

    def __post_init__(self) -> None:
        count = len(self.scales)
        if count < 1 or len(self.rises) != count or len(self.gaps) != count - 1 or len(self.overlaps) != count - 1:
            raise ValueError(f"a layout of {count} digits needs {count} rises and {count - 1} gaps and overlaps")


@dataclass(frozen=True)
class NumberSpec:
    """One number of `numbers_set`: the MNIST indices of its digits (left to right), how it is rendered, where its
    digits sit, and the seed of the generator that renders it."""

    indices: tuple[int, ...]
    style: str
    layout: NumberLayout
    entropy: tuple[int, ...]


def number_layout(count: int, rng: np.random.Generator) -> NumberLayout:
    """A realistic line of `count` digits.

    Gaps: a writer's usual gap (15-45 % of the height, about a quarter to three quarters of a digit's width,
    +-30 % from gap to gap) for 70 % of the neighbours, a close one (3-10 %) for 20 %, touching or overlapping
    by up to 2 pixels for 10 %. Heights within +-8 % of each other; each digit 3 % of the height up or down
    (at most 6 %); a wavy line (3-8 % of the height) in a quarter of the numbers and a line turned by up to 4
    degrees in 40 % of them.
    """
    habit = rng.uniform(0.15, 0.45)
    gaps: list[float | None] = []
    overlaps: list[int] = []
    for _ in range(count - 1):
        draw = rng.random()
        if draw < TOUCHING_SHARE:
            gaps.append(None)
            overlaps.append(int(rng.integers(0, 3)))
        else:
            gaps.append(rng.uniform(0.03, 0.1) if draw < TOUCHING_SHARE + CLOSE_SHARE else habit * rng.uniform(0.7, 1.3))
            overlaps.append(0)
    scales = rng.uniform(0.92, 1.08, count)
    rises = np.clip(rng.normal(0, 0.03, count), -0.06, 0.06)
    if rng.random() < 0.25:
        rises = rises + rng.uniform(0.03, 0.08) * np.sin(2 * math.pi * np.arange(count) / rng.uniform(3, 6) + rng.uniform(0, 2 * math.pi))
    tilt = rng.uniform(-4, 4) if rng.random() < 0.4 else 0.0
    return NumberLayout(tuple(map(float, scales)), tuple(gaps), tuple(overlaps), tuple(map(float, rises)), float(tilt))


def _estimated_width(layout: NumberLayout) -> float:
    """The number's width in digit heights, for sizing: a digit's 20-px MNIST box is taken 15 px wide whatever its
    shape (a 1 is narrower, a 0 a little wider), so the scene around a number does not depend on its digits."""
    width = 0.75 * sum(layout.scales) + sum(gap or 0.0 for gap in layout.gaps)
    # a turned line is a little wider; a Python float, as PIL's blur compares a numpy radius to a tuple and fails
    return float(width + math.sin(math.radians(abs(layout.tilt))) * 1.2)


def _cropped(ink: np.ndarray, height: float) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.max(1) > 0.05), np.flatnonzero(ink.max(0) > 0.05)
    if not len(rows):  # a blank digit still takes its place on the line
        return np.zeros((max(1, round(height)), max(1, round(0.5 * height))), np.float32)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _number_ink(digits: list[np.ndarray], layout: NumberLayout, height: float, make_ink: Callable) -> np.ndarray:
    """The digits written `height` pixels high by `make_ink(digit, height)`, placed as `layout` says -> one float ink
    map, cropped to the ink.

    Each gap is measured where the new digit's solid ink (over half its strongest coverage) comes closest to any
    digit before it on a same row, so a touching pair really touches. A digit's centre never lies left of its left
    neighbour's right edge, which keeps the reading order whatever the shapes (measured on the 77 white-on-black
    numbers among the first 400: this moved 2 of 243 digits, 1 of them from a touching pair).
    """
    pieces = [_cropped(make_ink(digit, height * scale), height * scale) for digit, scale in zip(digits, layout.scales)]
    tops = [round(rise * height - piece.shape[0] / 2) for rise, piece in zip(layout.rises, pieces)]
    tops = [top - min(tops) for top in tops]
    rows_total = max(top + piece.shape[0] for top, piece in zip(tops, pieces))
    reach = np.full(rows_total, -np.inf)  # rightmost solid ink column so far, per row
    lefts: list[int] = []
    for i, (top, piece) in enumerate(zip(tops, pieces)):
        solid = piece > 0.5 * max(float(piece.max()), 1e-6)  # pencil at its faintest never reaches 0.5
        if i == 0:
            left = 0
        else:
            separation = -layout.overlaps[i - 1] if layout.gaps[i - 1] is None else max(1, round(layout.gaps[i - 1] * height))
            inked = np.flatnonzero(solid.any(1))
            first = solid[inked].argmax(1)
            before = reach[top + inked]
            shared = np.isfinite(before)
            previous_right = lefts[-1] + pieces[i - 1].shape[1]
            if shared.any():
                left = int(np.max(before[shared] - first[shared])) + 1 + separation
            else:  # no row in common (or a blank digit): by the boxes
                left = previous_right + separation
            left = max(left, previous_right - piece.shape[1] // 2)
        inked = np.flatnonzero(solid.any(1))
        last = solid.shape[1] - 1 - solid[inked, ::-1].argmax(1)
        reach[top + inked] = np.maximum(reach[top + inked], left + last)
        lefts.append(left)
    canvas = np.zeros((rows_total, max(left + piece.shape[1] for left, piece in zip(lefts, pieces))), np.float32)
    for top, left, piece in zip(tops, lefts, pieces):
        region = canvas[top : top + piece.shape[0], left : left + piece.shape[1]]
        np.maximum(region, piece, out=region)
    if layout.tilt:
        canvas = _cropped(_rotate(canvas, layout.tilt), height)
    return canvas


def _with_margin(ink: np.ndarray, height: float) -> np.ndarray:
    """A border of 6 % of the digit height around the ink: a digit touching the picture's edge reads as cut off."""
    return np.pad(ink, max(2, round(0.06 * height)))


def _number_on_paper(digits: list[np.ndarray], layout: NumberLayout, rng: np.random.Generator) -> bytes:
    """A cropped photo of the number on paper, as `photo_like` renders one digit: digits 40-220 px high (at most
    1,400 px for the whole number), each turned by up to 4 degrees, the number 45-87 % of the picture's width."""
    height = min(rng.uniform(40, 220), 1400 / _estimated_width(layout))
    ink = _number_ink(digits, layout, height, lambda digit, size: _rotate(_upscaled_ink(digit, max(8, round(size))), rng.uniform(-4, 4)))
    ink = _with_margin(ink, height)
    frame_width = int(ink.shape[1] * rng.uniform(1.15, 2.2))
    frame_height = int(max(ink.shape[0] * rng.uniform(1.3, 3.0), frame_width * rng.uniform(0.25, 0.75)))
    return _ink_on_paper(ink, (frame_height, frame_width), rng)


def _number_in_notebook(digits: list[np.ndarray], layout: NumberLayout, rng: np.random.Generator) -> bytes:
    """The number written with a pen or pencil in a notebook (as `notebook_photo`): its digits 8-30 % of the
    picture's height, the number at most about 60 % of the picture's width (80 % with the widest digits), on a
    ruled line in 60 % of the ruled pages."""
    style = _notebook_style(rng)
    height_share = rng.uniform(0.08, 0.3)
    spacing_share = height_share / (rng.uniform(1.0, 2.5) if style == "ruled" else rng.uniform(1.0, 3.0))
    on_line = style == "ruled" and rng.random() < 0.6
    pen = _choose_pen(rng, pencil_share=0.45)
    width_in_heights = _estimated_width(layout)

    def write(page: np.ndarray, camera: _Camera, rows: np.ndarray, spacing: float) -> None:
        work = camera.size
        height = min(height_share * work[1], 0.6 * work[0] / width_in_heights)  # at most 80 % with the widest digits
        ink = _number_ink(digits, layout, height, lambda digit, size: _written(digit, size, pen, rng))
        top_row, bottom_row = _ink_rows(ink)
        # room for the camera's turn (10 degrees), off-axis view and bend around the line
        x_margin = 0.58 * ink.shape[1] + 0.03 * work[0]
        y_margin = 0.5 * ink.shape[0] + 0.1 * ink.shape[1] + 0.03 * work[1] + (0.7 * spacing if on_line else 0)
        # one draw each whatever the room, so the rest of the scene does not depend on the digits' shapes
        x, y = (margin + share * max(0.0, side - 2 * margin) if 2 * margin < side else side / 2
                for margin, side, share in zip((x_margin, y_margin), work, rng.random(2)))
        cx, cy = camera.to_page(x, y)
        top = float(cy) - (top_row + bottom_row) / 2
        if on_line and len(rows):
            foot = rows[np.argmin(np.abs(rows - (top + bottom_row)))] + rng.uniform(-0.15, 0.1) * spacing
            top = float(foot) - bottom_row
        _write(page, ink, round(top), round(float(cx) - ink.shape[1] / 2), pen.colour)

    return _page_photo(rng, style, spacing_share, write, shadow=False)


def _number_dark(digits: list[np.ndarray], layout: NumberLayout, rng: np.random.Generator) -> bytes | np.ndarray:
    """White digits on black as MNIST draws them: 20-120 px high (at most 1,000 px for the number), softened by a
    blur of up to 1.5 % of the height, a grey PNG or (40 %) the 8-bit array itself."""
    height = min(rng.uniform(20, 120), 1000 / _estimated_width(layout))
    ink = _with_margin(_number_ink(digits, layout, height, lambda digit, size: _upscaled_ink(digit, max(8, round(size)))), height)
    frame = (int(ink.shape[0] * rng.uniform(1.2, 2.0)), int(ink.shape[1] * rng.uniform(1.1, 1.6)))
    image = Image.fromarray(np.round(_paste(ink, frame, rng) * 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.015 * height)))
    if rng.random() < 0.4:
        return np.asarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _number_on_canvas(digits: list[np.ndarray], layout: NumberLayout, rng: np.random.Generator, size: tuple[int, int] = (280, 560)) -> np.ndarray:
    """The number drawn with one round pen (as `canvas_like`) on a 560x280 RGBA canvas, white on transparent or
    black: digits 50-200 px high, the number at most 90 % of the canvas' width."""
    widest = 0.9 * size[1] / _estimated_width(layout)
    height = rng.uniform(min(50.0, widest), min(200.0, widest, 0.8 * size[0]))
    pen = rng.uniform(max(4.0, 0.06 * height), max(6.0, 0.16 * height))
    ink = _with_margin(_number_ink(digits, layout, height, lambda digit, size: _restroked(digit, size, pen)), height)
    shrink = min(1.0, size[0] / ink.shape[0], size[1] / ink.shape[1])
    if shrink < 1:  # wider digits than the estimate: the drawing is made to fit, as a person would have written smaller
        shape = (max(1, int(ink.shape[1] * shrink)), max(1, int(ink.shape[0] * shrink)))
        ink = np.asarray(Image.fromarray(ink, mode="F").resize(shape, Image.Resampling.BILINEAR))
    return _canvas_rgba(_paste(ink, size, rng), rng)


NUMBER_RENDERERS: dict[str, Callable] = {
    "paper": _number_on_paper,
    "notebook": _number_in_notebook,
    "dark": _number_dark,
    "canvas": _number_on_canvas,
}


def render_number(
    digits: list[np.ndarray], rng: np.random.Generator, style: str = "paper", layout: NumberLayout | None = None
) -> bytes | np.ndarray:
    """One picture of the 28x28 MNIST `digits` written left to right, in `style` (one of NUMBER_STYLES), placed as
    `layout` says (None: a realistic layout drawn from `rng`)."""
    if style not in NUMBER_RENDERERS:
        raise ValueError(f"style must be one of {', '.join(NUMBER_STYLES)}, not {style!r}")
    if not digits or any(np.shape(digit) != (28, 28) for digit in digits):
        raise ValueError("digits must be a non-empty list of 28x28 images")
    if layout is None:
        layout = number_layout(len(digits), rng)
    elif len(layout.scales) != len(digits):
        raise ValueError(f"the layout places {len(layout.scales)} digits, not {len(digits)}")
    return NUMBER_RENDERERS[style]([np.asarray(digit, np.uint8) for digit in digits], layout, rng)


def number_specs(n: int = 400, split: str = "test", seed: int = config.SEED) -> list[NumberSpec]:
    """What `numbers_set` renders: each number's length (2-6, uniform), digits (MNIST `split` images, none used
    twice), style and layout. Number i depends only on (seed, split, i): a smaller set is the start of a larger one."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    split_id = 0 if split == "test" else 1
    order = np.random.default_rng([seed, _NUMBERS_STREAM, split_id]).permutation(len(data.load_split(split).labels))
    specs, used = [], 0
    for i in range(n):
        entropy = (seed, _NUMBERS_STREAM, split_id, i)
        rng = np.random.default_rng(entropy)
        length = int(rng.integers(NUMBER_LENGTHS[0], NUMBER_LENGTHS[1] + 1))
        if used + length > len(order):
            raise ValueError(f"{n} numbers need more digits than the {split} split's {len(order)}")
        style = str(rng.choice(NUMBER_STYLES, p=list(NUMBER_STYLE_SHARES.values())))
        layout = number_layout(length, rng)
        specs.append(NumberSpec(tuple(int(index) for index in order[used : used + length]), style, layout, entropy + (1,)))
        used += length
    return specs


def numbers_set(n: int = 400, split: str = "test", seed: int = config.SEED) -> tuple[list, list[str]]:
    """`n` pictures of numbers of 2-6 MNIST `split` digits and their true texts (e.g. "2026"; a leading zero is a
    digit like any other). Same seed, same set; `split="train"` for anything that tunes on it."""
    specs = number_specs(n, split, seed)
    mnist = data.load_split(split)
    sources, texts = [], []
    for spec in specs:
        digits = [mnist.images[index] for index in spec.indices]
        sources.append(render_number(digits, np.random.default_rng(spec.entropy), spec.style, spec.layout))
        texts.append("".join(str(int(mnist.labels[index])) for index in spec.indices))
    return sources, texts

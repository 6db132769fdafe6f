"""Evaluation sets of the kinds people give, rendered from MNIST digits.

MNIST's test set says how well the model reads MNIST. People send something
else: a phone photo of ink on paper, a transparent PNG, a drawing on the app's
280x280 canvas, a tiny low-resolution digit. Each generator below renders one
MNIST digit (28x28, white on black) the way such an input looks, with its own
random size, position, colours, lighting and damage. Sets are deterministic
(seeded) and built from the *test* split by default, so they measure the model
on digits it never saw; anything trained on them (fine-tuning demos) must use
`split="train"`.

`optdigits_set()` adds real digits from other writers: the UCI optical
recognition set of 8x8 digits (1,797 images) that ships inside scikit-learn.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import config, data

KINDS = ("photo", "transparent", "canvas", "lowres")
TARGETS = {"photo": 0.985, "transparent": 0.985, "canvas": 0.98, "lowres": 0.95, "optdigits": 0.93}
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


def canvas_like(digit: np.ndarray, rng: np.random.Generator, canvas: int = 280) -> np.ndarray:
    """Uniform thick round strokes, any size, anywhere on a 280x280 RGBA canvas (white on transparent or black).

    The MNIST digit is thinned to its skeleton, which is redrawn with a round
    pen of one width, as a mouse or finger on the app's canvas draws.
    """
    supersample = 2
    height = int(rng.integers(50, 241))
    width = rng.uniform(max(4.0, 0.06 * height), max(6.0, 0.16 * height))
    skeleton = _thin(_upscaled_ink(digit, 80) > 0.5)
    scale = supersample * height / 80
    side = int(np.ceil(skeleton.shape[0] * scale))
    drawing = Image.new("L", (side, side), 0)
    pen = ImageDraw.Draw(drawing)
    radius = supersample * width / 2
    for y, x in zip(*np.nonzero(skeleton)):
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    stroke = drawing.resize((side // supersample, side // supersample), Image.Resampling.BOX)
    ink = np.asarray(stroke, dtype=np.float32) / 255
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1][:canvas, :canvas]
    alpha = _paste(ink, (canvas, canvas), rng)
    rgba = np.zeros((canvas, canvas, 4), dtype=np.uint8)
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


GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], object]] = {
    "photo": photo_like,
    "transparent": transparent_png,
    "canvas": canvas_like,
    "lowres": low_resolution,
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
    """The 1,797 8x8 digits of UCI optdigits (43 writers, none from MNIST), as 8-bit images."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    images = [np.round(image * 255 / 16).astype(np.uint8) for image in digits.images]
    return images, digits.target.astype(int)

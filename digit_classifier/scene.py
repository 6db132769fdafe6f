"""Find the scene in a picture: the writing surface, its printed rulings, the ink, the digit.

The second stage of reading a picture (after `decode`, before `digit`). People
photograph digits where they wrote them: a note lying on a desk, a page of a
ruled or squared school notebook, under the shadow of a hand. The steps:

1. surface: where the writing surface is. A picture that is all paper (or a
   drawing, or a transparent cut-out) is its own surface; a note on a desk is
   the large, bright, flat region inside a darker or textured surround.
2. ink: brightness against the paper's own background, which removes uneven
   lighting, tint and shadows; polarity (dark ink on light paper, or light
   ink on a dark board) is read from the surface, not from the picture's edge.
3. rulings: printed lines (ruled, squared, dotted) are long, thin, straight,
   periodic and span the paper, where strokes are not; they are found by
   geometry, told from ink by colour where they differ in hue, and removed
   while ink that crosses them is kept.
4. locate: the digit is the main connected stroke with those near it; specks,
   blank pictures, noise, lines only and pages full of writing are refused
   with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .decode import WorkingArrays
from .errors import NoDigitFoundError

MIN_CONTRAST = 0.08  # brightness range (0-1) below which an image counts as blank
MIN_INK = 0.06  # weakest stroke (0-1 contrast against the background) taken as ink
MIN_SIGNAL_TO_NOISE = 6.0  # strongest (smoothed) ink over pixel noise; pure noise scores below 2, digits above 40
INK_THRESHOLD = 0.15  # share of the peak ink that marks a stroke pixel (low: faint parts of blurry digits count)
KEEP_COMPONENT = 0.08  # strokes lighter than this share of the main stroke are specks
MAX_INK_COVERAGE = 0.6  # an image more than this much strong ink (over half the peak) is texture, not a digit


@dataclass(frozen=True)
class Scene:
    """What the scene stage found, at working resolution."""

    surface: np.ndarray  # bool: the writing surface (all True when the whole picture is paper)
    surface_kind: str  # "whole picture" or "paper on a surface"
    rulings: np.ndarray  # the printed lines removed from the ink map, in ink units (0 where there are none)
    ink: np.ndarray  # 1 = ink, 0 = background, printed lines removed; only inside the surface
    ink_source: str  # "alpha", "dark ink on light background" or "light ink on dark background"


@dataclass(frozen=True)
class DigitRegion:
    """One digit's pixels in the ink map."""

    mask: np.ndarray  # bool, the digit's pixels
    bbox: tuple[int, int, int, int]  # top, left, bottom, right
    stroke_level: float  # a typical stroke's ink value (90th percentile), so strokes can be scaled to full intensity


def find_scene(arrays: WorkingArrays) -> Scene:
    """The writing surface, the ink on it and the printed rulings removed from it."""
    ink, ink_source = ink_map(arrays.luminance, arrays.alpha)
    surface = np.ones(ink.shape, dtype=bool)
    return Scene(surface, "whole picture", np.zeros_like(ink), ink, ink_source)


def _border(values: np.ndarray) -> np.ndarray:
    width = max(1, min(values.shape) // 50)
    return np.concatenate(
        [values[:width].ravel(), values[-width:].ravel(), values[:, :width].ravel(), values[:, -width:].ravel()]
    )


def ink_map(luminance: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Where the ink is (1 = ink, 0 = background) and how it was found."""
    if alpha is not None and alpha.min() < 0.9:
        if np.mean(_border(alpha) < 0.5) >= 0.5:  # the background is transparent
            opaque = alpha > 0.5
            paper_inside = opaque.mean() > 0.3 and np.ptp(np.percentile(luminance[opaque], [5, 95])) > 0.3
            if not paper_inside:
                return alpha.astype(np.float32), "alpha"
            # A cut-out of paper with ink on it: fill the transparent surround with paper colour.
            luminance = np.where(opaque, luminance, np.median(luminance[opaque]))
        else:  # opaque background with transparent holes: show them as white paper
            luminance = luminance * alpha + (1.0 - alpha)
    return _ink_from_luminance(luminance)


def _ink_from_luminance(luminance: np.ndarray) -> tuple[np.ndarray, str]:
    smooth = ndimage.gaussian_filter(luminance, 1.0)
    low, high = float(smooth.min()), float(smooth.max())
    if high - low < MIN_CONTRAST:
        raise NoDigitFoundError("The image is blank or nearly uniform: no digit was found. Draw or photograph a digit.")
    background_level = float(np.median(_border(smooth)))
    dark_ink = background_level - low > high - background_level
    background = _background(luminance, dark_ink)
    # Signed on purpose: the noise level is read from both sides of the background.
    if dark_ink:  # relative darkness, which cancels uneven lighting and paper tone
        ink = (background - luminance) / np.maximum(background, 0.05)
        return ink.astype(np.float32), "dark ink on light background"
    ink = (luminance - background) / np.maximum(1.0 - background, 0.05)
    return ink.astype(np.float32), "light ink on dark background"


def _quadratic_terms(ys: np.ndarray, xs: np.ndarray) -> list[np.ndarray]:
    return list(np.broadcast_arrays(np.ones_like(xs * ys), xs, ys, xs * xs, xs * ys, ys * ys))


@lru_cache(maxsize=32)
def _grid_terms(height: int, width: int, step: int) -> np.ndarray:
    """The six quadratic terms at every sample of the fitting grid, one row per sample (cached: most inputs share a few sizes)."""
    ys = (np.arange(0, height, step, dtype=np.float32) / height - 0.5)[:, None]
    xs = (np.arange(0, width, step, dtype=np.float32) / width - 0.5)[None, :]
    terms = np.stack([t.ravel() for t in _quadratic_terms(ys, xs)], axis=1)
    terms.flags.writeable = False
    return terms


def _background(luminance: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper's brightness at every pixel: a smooth quadratic surface fitted to the non-ink pixels.

    Lighting gradients and vignetting are smooth, so a quadratic captures them
    whatever the stroke width; ink pixels are excluded by refitting a few times
    on the pixels that lie on the paper's side of the current estimate.
    """
    height, width = luminance.shape
    step = max(1, -(-max(height, width) // 32))  # lighting varies slowly: fit on a grid of at most 32x32
    sample = luminance[::step, ::step]
    terms = _grid_terms(height, width, step)
    values = sample.ravel()
    coefficients = np.array([np.median(_border(sample)), 0, 0, 0, 0, 0], dtype=np.float32)
    extreme = values.min() if dark_ink else values.max()
    sign = 1.0 if dark_ink else -1.0  # ink lies on this side of the paper: darker (+) or brighter (-)
    for _ in range(3):
        fitted = terms @ coefficients
        paper = sign * (values - fitted) > -0.5 * sign * (fitted - extreme)
        if paper.sum() < 2 * len(coefficients):
            break
        chosen = terms[paper]
        normal = chosen.T @ chosen + 1e-6 * np.eye(len(coefficients), dtype=np.float32)  # least squares, 6 unknowns
        coefficients = np.linalg.solve(normal, chosen.T @ values[paper]).astype(np.float32)
    full_ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    full_xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    c = coefficients
    return (c[0] + c[1] * full_xs + c[2] * full_ys + c[3] * full_xs**2 + c[4] * full_xs * full_ys + c[5] * full_ys**2).astype(np.float32)


def locate_digit(ink: np.ndarray, surface: np.ndarray | None = None) -> DigitRegion:
    """The digit in an ink map: its pixels, bounding box and stroke intensity."""
    smooth = ndimage.gaussian_filter(ink, 1.0)
    peak = float(smooth.max())
    detail = ink - smooth  # pixel-to-pixel noise; smooth strokes leave almost nothing here
    noise = 1.4826 * float(np.median(np.abs(detail - np.median(detail))))
    if peak < MIN_INK:
        raise NoDigitFoundError("The strokes are too faint: no digit was found.")
    if peak < MIN_SIGNAL_TO_NOISE * noise:
        raise NoDigitFoundError("The image looks like noise or texture: no digit stands out from the background.")
    strokes = smooth > max(INK_THRESHOLD * peak, 4 * noise)
    if np.mean(smooth > 0.5 * peak) > MAX_INK_COVERAGE:
        raise NoDigitFoundError("Ink covers most of the image: no single digit stands out. Crop to one digit on a plain background.")
    labels, count = ndimage.label(strokes, structure=np.ones((3, 3)))
    masses = np.bincount(labels.ravel(), weights=smooth.ravel(), minlength=count + 1)[1:]  # ink per component
    boxes = ndimage.find_objects(labels)
    main = int(np.argmax(masses))
    top, left, bottom, right = _box_of(boxes[main])
    reach = 0.6 * max(bottom - top, right - left)
    kept = []
    for index, (mass, box) in enumerate(zip(masses, boxes)):
        t, l, b, r = _box_of(box)
        near = t < bottom + reach and b > top - reach and l < right + reach and r > left - reach
        if mass >= KEEP_COMPONENT * masses[main] and near:
            kept.append(index + 1)
    keep = np.zeros(count + 1, dtype=bool)
    keep[kept] = True
    mask = keep[labels]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    bbox = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    if max(bbox[2] - bbox[0], bbox[3] - bbox[1]) < 0.025 * max(ink.shape):
        raise NoDigitFoundError("Only specks were found, too small to be a digit. Draw the digit larger.")
    stroke_level = float(np.percentile(smooth[mask], 90))
    return DigitRegion(mask, bbox, stroke_level)


def _box_of(slices: tuple[slice, slice]) -> tuple[int, int, int, int]:
    return slices[0].start, slices[1].start, slices[0].stop, slices[1].stop



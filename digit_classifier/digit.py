"""Frame one digit as MNIST was made: the last stage of reading a picture.

MNIST's digits were cropped, scaled (aspect ratio kept) into a 20x20 box with
anti-aliasing, and pasted into a 28x28 field so that their centre of mass lands
in the middle. `frame_digit()` does exactly that to the ink of one digit found
by the scene stage, and gives white ink on black as float32 in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from . import config

BOX_SIZE = 20  # MNIST fits each digit into a 20x20 box ...
FIELD_SIZE = config.IMAGE_SIZE  # ... inside a 28x28 field
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices (measured on the training set)


@dataclass(frozen=True)
class Framed:
    crop: np.ndarray  # cleaned ink inside the digit's box, at working resolution
    box: np.ndarray  # fitted into 20x20 (aspect kept, so one side may be shorter)
    image: np.ndarray  # 28x28 float32 in [0, 1], white digit on black: the model's input


def frame_digit(ink: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int], stroke_level: float) -> Framed:
    """The ink of one digit (its pixels `mask`, box `bbox` = top, left, bottom, right) -> MNIST's 28x28 format."""
    crop = clean_crop(ink, mask, bbox, stroke_level)
    box = fit_into_box(crop)
    return Framed(crop, box, centre_by_mass(box))


def clean_crop(ink: np.ndarray, mask: np.ndarray, bbox: tuple[int, int, int, int], stroke_level: float) -> np.ndarray:
    """Ink inside the box, other specks removed, scaled so a typical stroke is at full intensity.

    Grey levels are kept rather than re-sharpened: in a small or blurry digit
    they say how much of a pixel the pen covered, which is what MNIST's own
    anti-aliased digits encode too.
    """
    top, left, bottom, right = bbox
    near_digit = _dilate(mask[top:bottom, left:right], 2)
    # The blur reaches 3 pixels (4 sigma), so blurring the box plus that margin equals blurring everything.
    margin = 3
    window_top, window_left = max(0, top - margin), max(0, left - margin)
    window = ink[window_top : bottom + margin, window_left : right + margin]
    smooth = ndimage.gaussian_filter(window, 0.7, truncate=4.0)
    smooth = smooth[top - window_top : bottom - window_top, left - window_left : right - window_left]
    return (np.clip(smooth / stroke_level, 0, 1) * near_digit).astype(np.float32)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Binary dilation by the 4-neighbour cross, `steps` times (same as ndimage.binary_dilation, far fewer calls)."""
    grown = mask.copy()
    for _ in range(steps):
        before = grown.copy()
        grown[1:] |= before[:-1]
        grown[:-1] |= before[1:]
        grown[:, 1:] |= before[:, :-1]
        grown[:, :-1] |= before[:, 1:]
    return grown


def fit_into_box(crop: np.ndarray, size: int = BOX_SIZE) -> np.ndarray:
    """Scale so the longer side is `size` pixels, keeping the aspect ratio (area-averaged, like MNIST)."""
    height, width = crop.shape
    scale = size / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    box = np.asarray(Image.fromarray(crop, mode="F").resize(new_size, method), dtype=np.float32)
    return box / box.max() if box.max() > 0 else box


def centre_by_mass(box: np.ndarray, field: int = FIELD_SIZE) -> np.ndarray:
    """Paste into a field x field black image so the centre of mass lands on MNIST's centre."""
    height, width = box.shape
    cy, cx = ndimage.center_of_mass(box)
    top = int(np.clip(round(CENTRE - cy), 0, field - height))
    left = int(np.clip(round(CENTRE - cx), 0, field - width))
    out = np.zeros((field, field), dtype=np.float32)
    out[top : top + height, left : left + width] = box
    return np.clip(out, 0.0, 1.0)

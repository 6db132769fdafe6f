"""Small non-UI helpers of the app: cache keys and images prepared for display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digit_classifier.decode import ImageSource, open_reduced

# The drawing canvas: wide enough to write a number; a digit 280 px high is ten canvas pixels per MNIST pixel, as the
# square canvas had. The scene stage frames a digit wherever it is and whatever the canvas' size.
CANVAS_WIDTH, CANVAS_HEIGHT = 560, 280


def file_stamp(*paths: Path) -> tuple[int, ...]:
    """Modification times (ns) of `paths`, 0 for a missing file: a cache key that changes when a file is replaced."""
    return tuple(path.stat().st_mtime_ns if path.is_file() else 0 for path in map(Path, paths))


def enlarge(image: np.ndarray, scale: int = 5) -> np.ndarray:
    """A 2-D float image in [0, 1] -> uint8, each pixel a `scale` x `scale` block (nearest neighbour)."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))


def thumbnail(source: ImageSource, max_side: int = 160) -> Image.Image:
    """Any image the app accepts -> a small RGB(A) copy for display. Raises PreprocessError when unreadable.

    Shrinks first and converts after, so a huge picture is never copied at full size.
    """
    image, _ = open_reduced(source)
    if image.mode == "F":
        image = Image.fromarray(np.round(np.asarray(image) * 255).astype(np.uint8), mode="L")
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return small.convert("RGBA" if "A" in small.getbands() else "RGB")


def with_box(data: bytes, box, source_size, max_side: int = 480) -> Image.Image:
    """A picture, shrunk for display, with `box` (x0, y0, x1, y1 in a picture of `source_size`) outlined in red."""
    picture = thumbnail(data, max_side).convert("RGB")
    if box and source_size:
        sx, sy = picture.width / source_size[0], picture.height / source_size[1]
        outline = [box[0] * sx, box[1] * sy, box[2] * sx - 1, box[3] * sy - 1]
        ImageDraw.Draw(picture).rectangle(outline, outline=(255, 75, 75), width=max(1, round(picture.width / 160)))
    return picture

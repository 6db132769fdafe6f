"""Small non-UI helpers for the app: cache keys and images prepared for display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .preprocess import ImageSource, open_image, standard_mode


def file_stamp(*paths: Path) -> tuple[int, ...]:
    """Modification times (ns) of `paths`, 0 for a missing file: a cache key that changes when a file is replaced."""
    return tuple(path.stat().st_mtime_ns if path.is_file() else 0 for path in map(Path, paths))


def enlarge(image: np.ndarray, scale: int = 5) -> np.ndarray:
    """A 2-D float image in [0, 1] -> uint8, each pixel a `scale` x `scale` block (nearest neighbour)."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))


def thumbnail(source: ImageSource, max_side: int = 160) -> Image.Image:
    """Any image the app accepts -> a small RGB(A) copy for display. Raises PreprocessError when unreadable."""
    image = standard_mode(open_image(source))
    if image.mode == "F":
        image = Image.fromarray(np.round(np.asarray(image) * 255).astype(np.uint8), mode="L")
    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image

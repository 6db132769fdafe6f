"""Open any image safely: the first stage of reading a picture.

What it guarantees: the pixel count is checked before anything is decoded
(decompression bombs are refused with the project's own limit), truncated or
corrupt files are errors rather than half-grey pictures, the first frame of an
animation is used, EXIF orientation is applied, every Pillow mode becomes one
of L, LA, RGB, RGBA or F, and the picture is reduced to at most WORK_MAX_SIDE
pixels a side. Encoded pictures over LARGE_PIXELS (JPEGs aside, which decode
scaled down) are decoded in a short-lived worker process, so a long-running
server never holds them.

`working_arrays()` then gives the arrays the scene stage reads: luminance,
alpha and colour, as float32 in [0, 1].
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from . import worker
from .errors import ImageTooLargeError, UnreadableImageError

MAX_PIXELS = 8000 * 8000  # larger images are refused before they are decoded
LARGE_PIXELS = 4000 * 4000  # larger ones (JPEG aside) are decoded in a short-lived worker process, see open_reduced
WORK_MAX_SIDE = 1024  # large images are analysed at this size (the digit stays well above 20 px)
WORK_MIN_SIDE = 112  # small images are enlarged to this size so the scene's filters behave the same

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey digit
# Pillow's own bomb check (179 MP by default) is set to the project's limit. Ours runs on the header,
# before anything is decoded, and both give a message that quotes MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True)
class WorkingArrays:
    """A decoded picture as the scene stage reads it, all float32 in [0, 1]."""

    luminance: np.ndarray  # (H, W)
    alpha: np.ndarray | None  # (H, W), None when the picture has no transparency
    rgb: np.ndarray | None  # (H, W, 3), None for greyscale pictures
    scale: float  # working pixels per pixel of the original picture


def open_image(source: ImageSource, hand_off_large: bool = False) -> Image.Image:
    """Decode `source` into a loaded PIL image: first frame, EXIF orientation applied.

    With `hand_off_large`, an encoded image over LARGE_PIXELS (JPEG aside) is not
    decoded: `_DecodeElsewhere` is raised instead (see `open_reduced`).
    """
    if isinstance(source, np.ndarray):
        return _check_size(_from_array(source))
    if isinstance(source, Image.Image):
        _check_size(source)
        image = source
    else:
        image = _decode(source, hand_off_large)
    try:
        image.seek(0)
    except (EOFError, AttributeError, ValueError):
        pass
    return _apply_exif_orientation(image)


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate or flip as the EXIF orientation says. Without one, the image itself: exif_transpose would
    copy it, a second full-size buffer (256 MB for an 8000x8000 RGB picture)."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) in (1, None):
            return image
        transposed = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block is no reason to refuse the picture
        return image
    return transposed if transposed is not None else image


def _decode(source, hand_off_large: bool = False) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = "The data", io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = f"{path.name!r}"
        if not path.is_file():
            raise UnreadableImageError(f"{name} does not exist or is not a file.")
        stream = path
    elif hasattr(source, "read"):
        name, stream = "The upload", io.BytesIO(source.read())
    else:
        raise UnreadableImageError(f"Cannot read an image from a {type(source).__name__}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(_too_many_pixels(name)) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"{name} is not an image that can be read (PNG, JPEG, BMP, GIF, WebP, TIFF).") from error
    _check_size(image, name)
    if hand_off_large and _too_large_to_decode_here(image):
        encoded = io.BytesIO(stream.getvalue()) if hasattr(source, "read") else source  # a stream: its content
        image.close()
        raise _DecodeElsewhere(encoded)
    _draft_large_jpeg(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(_too_many_pixels(name)) from error
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        raise UnreadableImageError(f"{name} is truncated or corrupt and cannot be decoded.") from error
    return image


def _too_large_to_decode_here(image: Image.Image) -> bool:
    """Over LARGE_PIXELS, not a JPEG (which decodes scaled down), and this is not already a worker."""
    return image.width * image.height > LARGE_PIXELS and image.format != "JPEG" and not worker.in_worker()


def _too_many_pixels(name: str, size: tuple[int, int] | None = None) -> str:
    pixels = f" has {size[0]}x{size[1]} pixels;" if size else " is far too large:"
    return f"{name}{pixels} the limit is {MAX_PIXELS // 1_000_000} megapixels. Please send a smaller picture."


def _check_size(image: Image.Image, name: str = "The image") -> Image.Image:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(_too_many_pixels(name, (width, height)))
    if min(width, height) < 1:
        raise UnreadableImageError(f"{name} has no pixels.")
    return image


def _draft_large_jpeg(image: Image.Image) -> None:
    """Let the JPEG decoder scale down by 2/4/8 while decoding: much faster for phone photos."""
    if image.format == "JPEG" and max(image.size) > 2 * WORK_MAX_SIDE:
        scale = WORK_MAX_SIDE / max(image.size)
        image.draft(image.mode, (max(1, int(image.width * scale)), max(1, int(image.height * scale))))


def _from_array(array: np.ndarray) -> Image.Image:
    """numpy (H, W), (H, W, 1|2|3|4), uint8 / uint16 / bool / float -> PIL image."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)) or array.size == 0:
        raise UnreadableImageError(f"An array of shape {array.shape} is not an image (expected HxW or HxWx1-4).")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind == "f":
        array = np.nan_to_num(array.astype(np.float32))
        array = np.clip(array * 255 if array.max() <= 1.0 else array, 0, 255).astype(np.uint8)
    elif array.dtype.kind in "iu" and array.dtype != np.uint8:
        if array.ndim == 2:
            return Image.fromarray(array.astype(np.float32), mode="F")
        array = np.clip(array, 0, 255).astype(np.uint8)
    mode = {2: "L", 3: ("LA", "RGB", "RGBA")}[array.ndim]
    if array.ndim == 3:
        mode = mode[array.shape[2] - 2]
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def standard_mode(image: Image.Image) -> Image.Image:
    """Every PIL mode -> one of L, LA, RGB, RGBA, F (F scaled to 0-1)."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image.convert("F") if mode != "F" else image, dtype=np.float32)
        values = np.nan_to_num(values)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.float32), mode="F")
    if mode in ("RGBa", "La"):
        return image.convert("RGBA" if mode == "RGBa" else "LA")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...


def open_reduced(source: ImageSource) -> tuple[Image.Image, tuple[int, int]]:
    """`open_image` in a standard mode, shrunk to at most WORK_MAX_SIDE pixels a side; and the original (width, height).

    A decoder holds every pixel at once: 256 MB for an 8000x8000 RGB PNG, and
    some (WebP, 16-bit PNG) briefly several times that. Encoded images over
    LARGE_PIXELS are therefore decoded and shrunk in a short-lived worker
    process, so that a long-running process (the app's server) never holds
    them and the memory goes back to the system when the worker exits. JPEGs
    stay here: their decoder scales them down while decoding.
    """
    try:
        image = open_image(source, hand_off_large=True)
    except _DecodeElsewhere as handed_off:
        try:
            return next(worker.Worker(_open_reduced_here, [handed_off.source]))
        except worker.WorkerFailed as error:
            raise ImageTooLargeError("The image is too large to decode with the memory available (the process decoding it stopped).") from error
    return _standard_and_reduced(image)


def _open_reduced_here(source: ImageSource) -> tuple[Image.Image, tuple[int, int]]:
    """What a worker runs for `open_reduced`."""
    return _standard_and_reduced(open_image(source))


def _standard_and_reduced(image: Image.Image) -> tuple[Image.Image, tuple[int, int]]:
    return _reduced(standard_mode(image)), image.size


class _DecodeElsewhere(Exception):
    """Raised by `_decode` before decoding an image too large for this process; carries the encoded source."""

    def __init__(self, source):
        super().__init__()
        self.source = source


def _reduced(image: Image.Image) -> Image.Image:
    """Scaled down so the longest side is at most WORK_MAX_SIDE (area-averaged)."""
    longest = max(image.size)
    if longest <= WORK_MAX_SIDE:
        return image
    scale = WORK_MAX_SIDE / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def working_arrays(image: Image.Image, original_size: tuple[int, int]) -> WorkingArrays:
    """An `open_reduced` picture -> the arrays the scene stage reads (small pictures enlarged to WORK_MIN_SIDE)."""
    work = _working_size(image)
    scale = work.width / max(1, original_size[0])
    if work.mode == "F":
        return WorkingArrays(np.asarray(work, dtype=np.float32), None, None, scale)
    values = np.asarray(work, dtype=np.float32) / 255.0
    if work.mode == "L":
        return WorkingArrays(values, None, None, scale)
    if work.mode == "LA":
        return WorkingArrays(values[..., 0], values[..., 1], None, scale)
    rgb = values[..., :3]
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return WorkingArrays(luminance, values[..., 3] if work.mode == "RGBA" else None, rgb, scale)


def _working_size(image: Image.Image) -> Image.Image:
    """An `open_reduced` image, enlarged when small so the longest side is at least WORK_MIN_SIDE."""
    longest = max(image.size)
    if longest < WORK_MIN_SIDE:
        factor = -(-WORK_MIN_SIDE // longest)
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.BILINEAR)
    return image

"""Any image a person gives -> an MNIST-like 28x28 input. The only preprocessing path.

MNIST digits are white on black, fitted into a 20x20 box (aspect ratio kept)
and centred by centre of mass in a 28x28 field. People's images are not: they
are dark ink on light paper, unevenly lit, tinted, noisy, transparent, tiny or
huge, with the digit anywhere. The steps below turn them into that format:

1. open: decode safely (size checked before decoding), first frame, EXIF orientation,
   reduce to at most 1024 pixels a side (huge pictures in a worker process, see `open_reduced`);
2. ink map: where the ink is, from alpha when the background is transparent,
   otherwise from brightness against a local background estimate whose
   polarity is read from the border;
3. locate: threshold the ink, keep the main connected strokes, drop specks;
4. crop and clean: scale the ink so strokes reach full intensity, specks removed;
5. fit into 20x20 keeping the aspect ratio, then centre by mass in 28x28.

The app, the CLI, fine-tuning and the notebooks all call `preprocess()` (or
`preprocess_steps()` to see the intermediate images). Nothing here writes files.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError
from scipy import ndimage

from . import worker

PREPROCESSING_VERSION = "1"

MAX_PIXELS = 8000 * 8000  # larger images are refused before they are decoded
LARGE_PIXELS = 4000 * 4000  # larger ones (JPEG aside) are decoded in a short-lived worker process, see open_reduced
WORK_MAX_SIDE = 1024  # large images are analysed at this size (the digit stays well above 20 px)
WORK_MIN_SIDE = 112  # small images are enlarged to this size so the filters below behave the same
BOX_SIZE = 20  # MNIST fits each digit into a 20x20 box ...
FIELD_SIZE = 28  # ... inside a 28x28 field
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices (measured on the training set)

MIN_CONTRAST = 0.08  # brightness range (0-1) below which an image counts as blank
MIN_INK = 0.06  # weakest stroke (0-1 contrast against the background) taken as ink
MIN_SIGNAL_TO_NOISE = 6.0  # strongest (smoothed) ink over pixel noise; pure noise scores below 2, digits above 40
INK_THRESHOLD = 0.15  # share of the peak ink that marks a stroke pixel (low: faint parts of blurry digits count)
KEEP_COMPONENT = 0.08  # strokes lighter than this share of the main stroke are specks
MAX_INK_COVERAGE = 0.6  # an image more than this much strong ink (over half the peak) is texture, not a digit

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a half-grey digit


class PreprocessError(ValueError):
    """An image that cannot become a digit; the message is meant for a person."""


class UnreadableImageError(PreprocessError):
    """Not an image, or a truncated or corrupt one."""


class ImageTooLargeError(PreprocessError):
    """More pixels than MAX_PIXELS (a decompression bomb looks like this)."""


class NoDigitFoundError(PreprocessError):
    """Blank, uniform, noise only, or too small to hold a digit."""


@dataclass
class Steps:
    """The intermediate images of one preprocessing run (for notebooks and the app)."""

    ink: np.ndarray  # working-resolution ink map, 1 = ink, 0 = background (noise makes it dip below 0)
    mask: np.ndarray  # working-resolution pixels kept as the digit
    bbox: tuple[int, int, int, int]  # top, left, bottom, right of the digit in `ink`
    crop: np.ndarray  # cleaned ink inside bbox
    box: np.ndarray  # fitted into 20x20 (aspect kept, so one side may be shorter)
    image: np.ndarray  # 28x28 float32 in [0, 1], white digit on black: the model's input
    ink_source: str  # "alpha", "dark ink on light background" or "light ink on dark background"
    original_size: tuple[int, int]  # width, height


def preprocess(source: ImageSource) -> np.ndarray:
    """Image (path, bytes, PIL image or numpy array) -> 28x28 float32 in [0, 1], white on black."""
    return preprocess_steps(source).image


def preprocess_steps(source: ImageSource) -> Steps:
    image, original_size = open_reduced(source)
    luminance, alpha = _to_arrays(_working_size(image))
    ink, ink_source = ink_map(luminance, alpha)
    mask, bbox, peak = locate_digit(ink)
    crop = clean_crop(ink, mask, bbox, peak)
    box = fit_into_box(crop)
    return Steps(ink, mask, bbox, crop, box, centre_by_mass(box), ink_source, original_size)


def preprocess_file(path: str | os.PathLike) -> tuple[str, np.ndarray | None, str | None]:
    """(path, image, None) or (path, None, message): for batches, where one bad file must not stop the rest."""
    try:
        return str(path), preprocess(Path(path)), None
    except PreprocessError as error:
        return str(path), None, str(error)


PARALLEL_FROM = 200  # files; below this, starting worker processes costs more than it saves


def preprocess_files(paths: Iterable[str | os.PathLike], workers: int = 1) -> "PreprocessedFiles":
    """`preprocess_file` on each path, results in order; in `workers` processes when there are many files.

    Processes, not threads: for small images the work is mostly Python
    bytecode, so threads wait for each other on the GIL (measured: two threads
    were slower than one). The work is handed out when this function is
    called, not when the first result is read, so a caller can load the model
    meanwhile (see `worker`). Use it in a `with` block, or read it to the end,
    so the workers stop.
    """
    return PreprocessedFiles([str(path) for path in paths], workers)


class PreprocessedFiles(Iterator[tuple[str, np.ndarray | None, str | None]]):
    """The results of `preprocess_files`, in order; closing it (or reaching the end) stops the workers.

    File i goes to worker i % workers and results are read back in the same
    rotation, so the order is kept and every worker's output keeps flowing.
    """

    def __init__(self, paths: list[str], workers: int):
        self.workers = max(1, min(workers, os.cpu_count() or 1)) if len(paths) >= PARALLEL_FROM else 1
        self._count, self._next = len(paths), 0
        self._pool: list[worker.Worker] = []
        if self.workers < 2:
            self._results = map(preprocess_file, paths)
            return
        self._pool = [worker.Worker("preprocess_file", paths[k :: self.workers]) for k in range(self.workers)]
        self._results = None

    def __next__(self) -> tuple[str, np.ndarray | None, str | None]:
        if self._results is not None:
            return next(self._results)
        if self._next == self._count:
            self.close()
            raise StopIteration
        try:
            result = next(self._pool[self._next % self.workers])
        except BaseException:  # a worker that died: stop the others too
            self.close()
            raise
        self._next += 1
        return result

    @property
    def processes(self) -> list:
        """The worker processes (subprocess.Popen), none when the files are read in this process."""
        return [process.process for process in self._pool]

    def close(self) -> None:
        for process in self._pool:
            process.close()

    def __enter__(self) -> "PreprocessedFiles":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# 1. Open ---------------------------------------------------------------------------------


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
        raise ImageTooLargeError(f"{name} is far too large to process safely ({error}).") from error
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
        raise ImageTooLargeError(f"{name} is far too large to process safely.") from error
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        raise UnreadableImageError(f"{name} is truncated or corrupt and cannot be decoded.") from error
    return image


def _too_large_to_decode_here(image: Image.Image) -> bool:
    """Over LARGE_PIXELS, not a JPEG (which decodes scaled down), and this is not already a worker."""
    return image.width * image.height > LARGE_PIXELS and image.format != "JPEG" and not worker.in_worker()


def _check_size(image: Image.Image, name: str = "The image") -> Image.Image:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name} has {width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels. Please send a smaller picture."
        )
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
            return next(worker.Worker("open_reduced", [handed_off.source]))
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


def _working_size(image: Image.Image) -> Image.Image:
    """An `open_reduced` image, enlarged when small so the longest side is at least WORK_MIN_SIDE."""
    longest = max(image.size)
    if longest < WORK_MIN_SIDE:
        factor = -(-WORK_MIN_SIDE // longest)
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.BILINEAR)
    return image


def _to_arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> luminance in [0, 1], alpha in [0, 1] or None."""
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32), None
    values = np.asarray(image, dtype=np.float32) / 255.0
    if image.mode == "L":
        return values, None
    if image.mode == "LA":
        return values[..., 0], values[..., 1]
    rgb = values[..., :3]
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return luminance, (values[..., 3] if image.mode == "RGBA" else None)


# 2. Ink map ------------------------------------------------------------------------------


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


# 3. Locate -------------------------------------------------------------------------------


def locate_digit(ink: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """-> mask of the digit's pixels, its bounding box, and the stroke intensity."""
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
    return mask, bbox, stroke_level


def _box_of(slices: tuple[slice, slice]) -> tuple[int, int, int, int]:
    return slices[0].start, slices[1].start, slices[0].stop, slices[1].stop


# 4. Crop and clean -----------------------------------------------------------------------


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


# 5. Fit and centre -----------------------------------------------------------------------


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

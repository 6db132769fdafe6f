"""The wrong_predictions/ store: corrections people make in the app, kept for fine-tuning.

On-disk format
--------------
::

    <root>/<d>/<sha16>.png     the input image as the person gave it, re-encoded as PNG
                               (reduced to 1024 pixels a side when larger, the size preprocessing works at)
    <root>/<d>/<sha16>.json    its metadata ("sidecar"); optional

* ``<root>`` is ``config.feedback_dir()`` (``wrong_predictions/`` at the repository
  root; the environment variable ``DIGIT_FEEDBACK_DIR`` overrides it).
* ``<d>`` is the TRUE label, a folder named exactly one digit ``0`` ... ``9``.
* ``<sha16>`` is the first 16 hex digits of the SHA-256 of the PNG bytes, so a name
  never collides with another image and the same image saved twice under the same
  label is stored once. The person's own filename never becomes part of a path.
* Any image dropped into a label folder by hand (``.png .jpg .jpeg .bmp .gif .webp
  .tif .tiff``, any name) counts as an item of that label, with empty metadata.
* Names starting with ``.`` are temporary or hidden files and are ignored, as are
  other file types and folders that are not a single digit.
* Every file is written atomically: to a hidden temporary file in the same folder,
  fsync, then ``os.replace``. A reader sees the whole file or no file.

Metadata keys (JSON object, UTF-8)
----------------------------------
``format_version``         1
``true_label``             int 0-9, the folder the image is in
``predicted_label``        int 0-9, what the model answered
``confidence``             float 0-1, the model's probability for ``predicted_label``
``probabilities``          list of 10 floats, the model's output for digits 0-9
``source``                 ``"draw"`` (the canvas) or ``"upload"``
``original_filename``      the uploaded file's name, sanitised to a safe basename, or null
``model_version``          version of the model that made the prediction, or null
``preprocessing_version``  ``preprocess.PREPROCESSING_VERSION`` when the prediction was made
``saved_at``               UTC time of the save, ISO 8601 ending in ``Z``
``sha256``                 full hex SHA-256 of the PNG bytes
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from . import config
from .atomic import atomic_write_bytes
from .decode import open_reduced
from .preprocess import PREPROCESSING_VERSION

FORMAT_VERSION = 1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SOURCES = {"draw", "upload"}
LABEL_NAMES = tuple(str(digit) for digit in range(config.NUM_CLASSES))
MAX_FILENAME_LENGTH = 100
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


class InvalidLabelError(ValueError):
    """A label that is not a digit 0-9."""


def validate_label(label) -> int:
    """An int 0-9, or a string that is exactly one digit "0"-"9" -> that int."""
    if isinstance(label, str) and label in LABEL_NAMES:
        return int(label)
    if isinstance(label, numbers.Integral) and not isinstance(label, bool) and 0 <= label <= 9:
        return int(label)
    raise InvalidLabelError(f"A label must be a digit from 0 to 9, not {label!r}.")


def sanitize_filename(name: str | None) -> str | None:
    """The basename of `name` with only safe characters, at most 100 of them; None if nothing is left."""
    if name is None:
        return None
    basename = re.split(r"[\\/]", str(name))[-1]
    safe = _UNSAFE_CHARACTERS.sub("_", basename).lstrip(".")
    if len(safe) > MAX_FILENAME_LENGTH:
        suffix = Path(safe).suffix if len(Path(safe).suffix) <= 10 else ""
        safe = safe[: MAX_FILENAME_LENGTH - len(suffix)] + suffix
    return safe or None


@dataclass(frozen=True)
class FeedbackItem:
    """One image in the store. `metadata` is {} when the image has no sidecar JSON."""

    path: Path
    label: int
    metadata: dict

    @property
    def id(self) -> str:
        return f"{self.label}/{self.path.name}"

    @property
    def saved_at(self) -> datetime:
        try:
            return datetime.fromisoformat(self.metadata["saved_at"]).astimezone(timezone.utc)
        except (KeyError, TypeError, ValueError):
            return datetime.fromtimestamp(self.path.stat().st_mtime, timezone.utc)


@dataclass(frozen=True)
class SaveResult:
    item: FeedbackItem
    created: bool


def encode_png(image: Image.Image | np.ndarray | bytes) -> bytes:
    """An image (PIL, numpy array, or the bytes of an image file) -> PNG bytes, first frame, alpha kept.

    Pictures larger than preprocessing's working size (1024 pixels a side) are
    stored at that size: preprocessing reduces them to it anyway, and a 64 MP
    photo would otherwise make a 100 MB correction.
    Raises preprocess.UnreadableImageError when the bytes are not a decodable image.
    """
    decoded, _ = open_reduced(image)
    if decoded.mode == "F":
        decoded = Image.fromarray(np.round(np.asarray(decoded) * 255).astype(np.uint8), mode="L")
    buffer = io.BytesIO()
    decoded.save(buffer, format="PNG")
    return buffer.getvalue()


def save_correction(
    image,
    true_label,
    *,
    predicted_label: int,
    confidence: float,
    probabilities,
    source: str,
    original_filename: str | None = None,
    model_version: str | None = None,
    preprocessing_version: str | None = None,
    root: Path | None = None,
) -> SaveResult:
    """Store `image` under its true label with the prediction it corrects. Nothing is written on any error."""
    label = validate_label(true_label)
    png = encode_png(image)
    sha256 = hashlib.sha256(png).hexdigest()
    metadata = {
        "format_version": FORMAT_VERSION,
        "true_label": label,
        "predicted_label": validate_label(predicted_label),
        "confidence": _probability(confidence, "confidence"),
        "probabilities": _probabilities(probabilities),
        "source": _source(source),
        "original_filename": sanitize_filename(original_filename),
        "model_version": None if model_version is None else str(model_version),
        "preprocessing_version": str(preprocessing_version or PREPROCESSING_VERSION),
        "saved_at": _utc_now(),
        "sha256": sha256,
    }
    image_path = _label_dir(root, label) / f"{sha256[:16]}.png"
    created = not image_path.exists()
    if created:
        atomic_write_bytes(image_path, png)
    try:
        if created or not _sidecar(image_path).exists():
            _write_metadata(image_path, metadata)
    except BaseException:
        if created:
            image_path.unlink(missing_ok=True)
        raise
    return SaveResult(_load_item(image_path, label), created)


def list_items(root: Path | None = None) -> list[FeedbackItem]:
    """Every image in <root>/0 ... <root>/9, hand-dropped ones included, newest first."""
    items = [
        _load_item(path, int(name))
        for name in LABEL_NAMES
        for path in _images_in(_root(root) / name)
    ]
    return sorted(items, key=lambda item: (item.saved_at, item.id), reverse=True)


def counts(root: Path | None = None) -> dict[int, int]:
    """Number of items per label, all ten labels present."""
    totals = dict.fromkeys(range(config.NUM_CLASSES), 0)
    for item in list_items(root):
        totals[item.label] += 1
    return totals


def delete_item(item: FeedbackItem) -> None:
    item.path.unlink(missing_ok=True)
    _sidecar(item.path).unlink(missing_ok=True)


def relabel(item: FeedbackItem, new_label) -> FeedbackItem:
    """Move the image (and its sidecar, with true_label updated) to the folder of `new_label`."""
    label = validate_label(new_label)
    if label == item.label:
        return item
    target = item.path.parent.parent / str(label) / item.path.name
    if target.exists():
        if target.read_bytes() != item.path.read_bytes():
            raise FileExistsError(f"{target} already exists with different content.")
        delete_item(item)
        return _load_item(target, label)
    metadata = _read_metadata(item.path)
    if metadata:
        _write_metadata(target, {**metadata, "true_label": label})
    target.parent.mkdir(parents=True, exist_ok=True)
    item.path.replace(target)
    _sidecar(item.path).unlink(missing_ok=True)
    return _load_item(target, label)


def undo_save(result: SaveResult) -> None:
    """Remove what a save created; a save that found the image already stored removes nothing."""
    if result.created:
        delete_item(result.item)


def export_zip(root: Path | None = None) -> bytes:
    """A zip of <d>/<file> for every image and its sidecar."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(list_items(root), key=lambda item: item.id):
            for path in (item.path, _sidecar(item.path)):
                if path.is_file():
                    archive.write(path, f"{item.label}/{path.name}")
    return buffer.getvalue()


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else config.feedback_dir()


def _label_dir(root: Path | None, label: int) -> Path:
    return _root(root) / str(label)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        path
        for path in folder.iterdir()
        if not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]


def _sidecar(image_path: Path) -> Path:
    return image_path.with_suffix(".json")


def _load_item(image_path: Path, label: int) -> FeedbackItem:
    return FeedbackItem(image_path, label, _read_metadata(image_path))


def _read_metadata(image_path: Path) -> dict:
    try:
        metadata = json.loads(_sidecar(image_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _write_metadata(image_path: Path, metadata: dict) -> None:
    text = json.dumps(metadata, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(_sidecar(image_path), text.encode("utf-8"))


def _probability(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}.")
    return number


def _probabilities(values) -> list[float]:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise ValueError("probabilities must be 10 numbers.") from error
    if array.size != config.NUM_CLASSES:
        raise ValueError(f"probabilities must be {config.NUM_CLASSES} numbers, not {array.size}.")
    return [_probability(value, "every probability") for value in array.tolist()]


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, not {source!r}.")
    return source


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")

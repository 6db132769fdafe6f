"""The wrong_predictions/ store: corrections people make in the app, kept for fine-tuning.

On-disk format
--------------
::

    <root>/<d>/<sha16>.png     the input image as the person gave it, re-encoded as PNG
                               (reduced to 1024 pixels a side when larger, the size preprocessing works at)
    <root>/<d>/<sha16>.json    its metadata ("sidecar"); optional
    <root>/not_a_digit/...     the same, for pictures the person says are not a digit (a letter, a sign, a scribble)

* ``<root>`` is ``config.feedback_dir()`` (``wrong_predictions/`` at the repository
  root; the environment variable ``DIGIT_FEEDBACK_DIR`` overrides it).
* ``<d>`` is the TRUE label, a folder named exactly one digit ``0`` ... ``9``, or
  ``not_a_digit`` (``config.NOT_A_DIGIT``). In code the labels are ints: 0-9, and
  ``config.NOT_A_DIGIT_LABEL`` (10) for ``not_a_digit/``; `folder_name` and `label_text`
  turn a label into its folder and into words for a person ("Not a digit").
* ``<sha16>`` is the first 16 hex digits of the SHA-256 of the PNG bytes, so a name
  never collides with another image and the same image saved twice under the same
  label is stored once. The person's own filename never becomes part of a path.
* Any image dropped into a label folder by hand (``.png .jpg .jpeg .bmp .gif .webp
  .tif .tiff``, any name) counts as an item of that label, with empty metadata.
* Names starting with ``.`` are temporary or hidden files and are ignored, as are
  other file types and folders that are neither a single digit nor ``not_a_digit``.
* Every file is written atomically: to a hidden temporary file in the same folder,
  fsync, then ``os.replace`` (a sidecar) or ``os.link`` (an image: the link fails
  when the name exists, so of concurrent saves of one image exactly one creates it).
  A reader sees the whole file or no file.

The store is a closed world
---------------------------
Every file is opened relative to its label folder (``openat``), never through a link:
a label folder that is a link is refused, and an entry named like an image or a
sidecar that is a link or a special file (FIFO, socket, device) is never opened: the
listing reports it once as "skipped: not a regular file". File names are used as
the file system gives them (undecodable bytes kept by ``surrogateescape``) and shown
through `display_name`. Each sidecar field is checked on its own: an invalid value
is unknown for that item, never an error.

Metadata keys (JSON object, UTF-8)
----------------------------------
``format_version``         1
``true_label``             the folder the image is in: int 0-9, or the string ``"not_a_digit"`` (the folder's
                           name, as for digits, rather than the 10 training uses: a reader of the JSON needs no
                           convention, and the file stays right if training ever encodes non-digits otherwise)
``predicted_label``        int 0-9, the digit the model found most probable
``predicted_status``       what the model said of it: ``"ok"``, ``"unsure"`` or ``"not_a_digit"`` (predict.py);
                           absent when not known (sidecars written before the model had a status)
``confidence``             float 0-1, the model's probability for ``predicted_label``
``probabilities``          list of 10 floats, the model's output for digits 0-9
``source``                 ``"draw"`` (the canvas) or ``"upload"``
``original_filename``      the uploaded file's name, sanitised to a safe basename, or null
``model_version``          version of the model that made the prediction, or null
``preprocessing_version``  ``preprocess.PREPROCESSING_VERSION`` when the prediction was made
``saved_at``               UTC time of the save, in the format of ``timestamps.py`` (ISO 8601 ending in ``Z``)
``sha256``                 full hex SHA-256 of the PNG bytes
``undo_tokens``            one random token per save that holds the item (its creator's first);
                           Undo removes its own token, and the item only when none is left

Numbers
-------
A correction of a picture of several digits is saved by `save_number_correction` as one unit::

    <root>/<d>/<sha16>.png           a crop of one digit read wrong, cut from the picture with a margin,
                                     so preprocessing reads it as that single digit (and fine-tuning uses it)
    <root>/sources/<sha256>.png      the whole picture once (content-addressed, reduced like any item),
                                     shown on the Review page beside the crops cut from it
    <root>/unmatched/<sha16>.png     the picture when the typed number has another length than what was
                                     read: kept with its sidecar for the Review page, never for training

``sources/`` and ``unmatched/`` are not label folders: `scan` and fine-tuning never read them. Each of
these files holds undo tokens like any item, and Undo withdraws every file of one save. Extra sidecar keys:

``source_sha256``          the full picture's SHA-256 (of ``sources/<sha256>.png``'s bytes)
``source_size``            [width, height] of the picture the boxes refer to (as given, before any reduction)
``box``                    [x0, y0, x1, y1] of the digit in that picture (x1, y1 exclusive)
``position``, ``count``    the digit's 0-based place in the number and the number's length, as read
``reading``                the whole number as the model read it, e.g. "4721"
``typed``                  the whole number as the person typed it
``boxes``                  (unmatched) every digit's box, left to right
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import math
import numbers
import os
import re
import secrets
import stat
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from . import config
from .atomic import atomic_write_at, json_bytes
from .decode import open_reduced
from .predict import STATUSES
from .preprocess import PREPROCESSING_VERSION
from .timestamps import parse_utc, utc_now

FORMAT_VERSION = 1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SOURCES = {"draw", "upload"}
LABEL_NAMES = tuple(str(digit) for digit in config.DIGITS)
MAX_FILENAME_LENGTH = 100
MAX_NUMBER_LENGTH = 40  # digits a person may type for one picture; the reader itself stops at 12
SOURCES_DIR, UNMATCHED_DIR = "sources", "unmatched"  # beside the digit folders; never read for training
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


NOT_A_DIGIT_DIR = config.NOT_A_DIGIT  # the folder of pictures that are not digits
LABELS = (*config.DIGITS, config.NOT_A_DIGIT_LABEL)  # every label a correction can have, in display order


class InvalidLabelError(ValueError):
    """A label that is neither a digit 0-9 nor "not a digit"."""


def validate_digit(label) -> int:
    """An int 0-9, or a string that is exactly one digit "0"-"9" -> that int."""
    if isinstance(label, str) and label in LABEL_NAMES:
        return int(label)
    if isinstance(label, numbers.Integral) and not isinstance(label, bool) and label in config.DIGITS:
        return int(label)
    raise InvalidLabelError(f"A label must be a digit from 0 to 9, not {label!r}.")


def validate_label(label) -> int:
    """A correction's true label: a digit as `validate_digit` takes it, or "not_a_digit" / config.NOT_A_DIGIT_LABEL
    -> config.NOT_A_DIGIT_LABEL."""
    if label == config.NOT_A_DIGIT and isinstance(label, str):
        return config.NOT_A_DIGIT_LABEL
    if isinstance(label, numbers.Integral) and not isinstance(label, bool) and label == config.NOT_A_DIGIT_LABEL:
        return config.NOT_A_DIGIT_LABEL
    try:
        return validate_digit(label)
    except InvalidLabelError:
        raise InvalidLabelError(f'A label must be a digit from 0 to 9 or "{config.NOT_A_DIGIT}", not {label!r}.') from None


def folder_name(label: int) -> str:
    """The folder of a (valid) label: "0" ... "9", or "not_a_digit"."""
    return NOT_A_DIGIT_DIR if label == config.NOT_A_DIGIT_LABEL else str(label)


def label_text(label: int) -> str:
    """A label in words for a person: the digit itself, or "Not a digit"."""
    return "Not a digit" if label == config.NOT_A_DIGIT_LABEL else str(label)


def _stored_true_label(label: int) -> int | str:
    """A label as a sidecar's true_label: the digit, or "not_a_digit" (see the module docstring)."""
    return config.NOT_A_DIGIT if label == config.NOT_A_DIGIT_LABEL else label


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


class StoreError(OSError):
    """An entry of the store that is refused: a link, a special file, too large, or changed while in use."""


NOT_REGULAR = "skipped: not a regular file"
MAX_SIDECAR_BYTES = 64 * 1024  # a sidecar the app writes is about 700 bytes
MAX_ITEM_BYTES = 64 * 1024 * 1024  # an image larger than this is not read (the app's uploads stop at 20 MB)
MAX_UNDO_TOKENS = 1000
SAVE_ATTEMPTS = 10  # only an undo removing the item between a save's two steps makes it go round again
_TOKEN = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def display_name(name: str) -> str:
    """A file name as text that can always be shown: undecodable bytes as \\xNN, control characters as
    \\uNNNN, a backslash as two. Distinct names stay distinct."""
    if name.isascii() and name.isprintable() and "\\" not in name:
        return name  # the usual case, and the listing sorts by it
    shown = []
    for char in name:
        code = ord(char)
        if char == "\\":
            shown.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by the file system codec's surrogateescape
            shown.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char).startswith("C"):
            shown.append(f"\\u{code:04x}")
        else:
            shown.append(char)
    return "".join(shown)


@dataclass(frozen=True)
class FeedbackItem:
    """One image in the store. `metadata` holds the sidecar's valid fields only ({} without a sidecar);
    a field that is missing or invalid is unknown for this item and nothing else."""

    path: Path  # the name keeps any undecodable bytes (surrogateescape), so it names the file exactly
    label: int  # 0-9, or config.NOT_A_DIGIT_LABEL for not_a_digit/
    metadata: dict
    mtime: float | None = field(default=None, compare=False)  # of the image file, when it was listed

    @property
    def name(self) -> str:
        """The file name, escaped so that it can be shown."""
        return display_name(self.path.name)

    @property
    def id(self) -> str:
        return f"{folder_name(self.label)}/{self.name}"

    @property
    def is_digit(self) -> bool:
        return self.label != config.NOT_A_DIGIT_LABEL

    @property
    def label_text(self) -> str:
        return label_text(self.label)

    @property
    def saved_at(self) -> datetime | None:
        return _saved_at(self.metadata, self.mtime)

    @property
    def predicted_label(self) -> int | None:
        return self.metadata.get("predicted_label")

    @property
    def predicted_status(self) -> str | None:
        return self.metadata.get("predicted_status")


@dataclass(frozen=True)
class SkippedEntry:
    name: str  # "<label>/<file name>", escaped for display
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class Listing:
    items: list[FeedbackItem]  # newest first
    skipped: list[SkippedEntry]  # links, FIFOs, sockets, devices: never opened, reported once each

    def counts(self) -> dict[int, int]:
        """Number of items per label, every label present: the ten digits, then config.NOT_A_DIGIT_LABEL."""
        totals = dict.fromkeys(LABELS, 0)
        for item in self.items:
            totals[item.label] += 1
        return totals


@dataclass(frozen=True)
class SaveResult:
    item: FeedbackItem
    created: bool
    undo_token: str | None = None  # this save's hold on the item, when it has one (see undo_save)


def encode_png(image: Image.Image | np.ndarray | bytes) -> bytes:
    """An image (PIL, numpy array, or the bytes of an image file) -> PNG bytes, first frame, alpha kept.

    Pictures larger than preprocessing's working size (1024 pixels a side) are
    stored at that size: preprocessing reduces them to it anyway, and a 64 MP
    photo would otherwise make a 100 MB correction.
    Raises preprocess.UnreadableImageError when the bytes are not a decodable image.
    """
    return _png(open_reduced(image)[0])


def _png(decoded: Image.Image) -> bytes:
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
    predicted_status: str | None = None,
    original_filename: str | None = None,
    model_version: str | None = None,
    preprocessing_version: str | None = None,
    root: Path | None = None,
) -> SaveResult:
    """Store `image` under its true label (a digit, or "not_a_digit") with the prediction it corrects.
    Nothing is written on any error.

    Of any number of concurrent saves of the same image under the same label, exactly one
    says `created`: the image is created by a hard link, which fails when the name exists.
    Every save of an item the app created records an undo token in its sidecar.
    """
    label = validate_label(true_label)
    png = encode_png(image)
    sha256 = hashlib.sha256(png).hexdigest()
    metadata = {
        "format_version": FORMAT_VERSION,
        "true_label": _stored_true_label(label),
        "predicted_label": validate_digit(predicted_label),
        "confidence": _probability(confidence, "confidence"),
        "probabilities": _probabilities(probabilities),
        "source": _source(source),
        "original_filename": sanitize_filename(original_filename),
        "model_version": None if model_version is None else str(model_version),
        "preprocessing_version": str(preprocessing_version or PREPROCESSING_VERSION),
        "saved_at": utc_now(),
        "sha256": sha256,
    }
    if predicted_status is not None:
        metadata["predicted_status"] = _status(predicted_status)
    hold = _store(_root(root), folder_name(label), f"{sha256[:16]}.png", png, metadata)
    with _label_dir(_root(root), label) as folder:
        item = _item_at(folder, _root(root), label, hold.name)
    return SaveResult(item, hold.created, hold.undo_token)


@dataclass(frozen=True)
class Hold:
    """One file a save wrote or joined: `<root>/<folder>/<name>`, and the save's undo token on it (None: holds nothing)."""

    root: Path
    folder: str
    name: str
    created: bool
    undo_token: str | None

    @property
    def path(self) -> Path:
        return self.root / self.folder / self.name


def _store(root: Path, folder_name: str, name: str, png: bytes, metadata: dict) -> Hold:
    """Create `<folder_name>/<name>` with its sidecar, or join the existing file with a new undo token."""
    token = secrets.token_hex(8)
    with _label_dir(root, folder_name, create=True) as folder:
        for _ in range(SAVE_ATTEMPTS):
            fd = _create_locked(folder, name, png)
            created = fd is not None
            if fd is None:
                fd = _open_locked(folder, name)
                if fd is None:
                    continue
            try:
                held = _record_save(folder, name, metadata, token, created)
            except BaseException:
                if created:
                    _unlink_quietly(folder, name)
                raise
            finally:
                os.close(fd)
            return Hold(Path(root), folder_name, name, created, token if held else None)
    raise StoreError(f"{name} kept changing while it was being saved; nothing was saved.")


def _record_save(folder: int, name: str, metadata: dict, token: str, created: bool) -> bool:
    """Under the item's lock: write or extend its sidecar; -> whether this save holds the item."""
    if created:
        _write_sidecar(folder, name, {**metadata, "undo_tokens": [token]})
        return True
    existing = _read_sidecar(folder, name)
    if existing is None:  # dropped in by hand (or its creator was killed): describe it, hold nothing
        _write_sidecar(folder, name, metadata)
        return False
    tokens = existing.get("undo_tokens")
    if tokens is None or len(tokens) >= MAX_UNDO_TOKENS:
        return False
    _write_sidecar(folder, name, {**existing, "undo_tokens": [*tokens, token]})
    return True


def undo_save(result: SaveResult) -> bool:
    """Withdraw one save: remove its undo token, and the item only when no other save still holds it;
    -> whether the item was removed. A save that found the image dropped in by hand holds nothing."""
    item = result.item
    return _withdraw(Hold(item.path.parent.parent, folder_name(item.label), item.path.name, result.created, result.undo_token))


def _withdraw(hold: Hold) -> bool:
    """Remove `hold`'s undo token from its file, and the file only when no other save still holds it."""
    if hold.undo_token is None:
        return False
    with _label_dir(hold.root, hold.folder) as folder:
        fd = _open_locked(folder, hold.name)
        if fd is None:
            return False
        try:
            sidecar = _read_sidecar(folder, hold.name)
            tokens = (sidecar or {}).get("undo_tokens")
            if tokens is None or hold.undo_token not in tokens:
                return False
            remaining = [token for token in tokens if token != hold.undo_token]
            if remaining:
                _write_sidecar(folder, hold.name, {**sidecar, "undo_tokens": remaining})
                return False
            _unlink_quietly(folder, hold.name)
            _unlink_quietly(folder, _sidecar_name(hold.name))
            return True
        finally:
            os.close(fd)


# Numbers: the digits read wrong as crops, the picture once, or the picture kept when the counts differ ---------

# Of the digit's larger side (plus 2 px), around its box: the crop's main digit (the one with the most ink) must be
# this one, not a neighbour. Crops of the 18 numbers of numbers_set(40) read exactly, every digit saved as if wrong:
# 0.05 -> 63 of 63 read back as their digit, 0.15 -> 61, 0.25 -> 60 (more of a touching neighbour comes in).
CROP_MARGIN = 0.05


class NumberTextError(ValueError):
    """What a person typed as the number is not a number."""


class DigitRead(Protocol):
    """One digit as the reader gave it (predict.Prediction has these)."""

    label: int
    confidence: float
    probabilities: object
    box: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class NumberSaveResult:
    """What one `save_number_correction` wrote or joined; `undo_number_save` withdraws all of it."""

    reading: str  # as the model read it
    typed: str  # as the person typed it
    crops: tuple[FeedbackItem, ...]  # one per digit read wrong, left to right; empty when the lengths differ
    source: Path | None  # sources/<sha256>.png, the picture the crops were cut from
    unmatched: Path | None  # unmatched/<sha16>.png, when the lengths differ
    holds: tuple[Hold, ...]

    @property
    def matched(self) -> bool:
        return self.unmatched is None

    @property
    def created(self) -> bool:
        return any(hold.created for hold in self.holds)


def parse_number(text: str | None) -> str:
    """A typed number -> its digits (spaces ignored); NumberTextError, saying why, for anything else."""
    digits = "".join(str(text or "").split())
    if not digits:
        raise NumberTextError("Type the number it really is, digits only.")
    if not (digits.isascii() and digits.isdigit()):
        raise NumberTextError(f"Type digits only (0-9): {str(text)[:MAX_NUMBER_LENGTH]!r} is not a number.")
    if len(digits) > MAX_NUMBER_LENGTH:
        raise NumberTextError(f"That is {len(digits)} digits; at most {MAX_NUMBER_LENGTH} can be kept.")
    return digits


def crop_box(box, picture_size: tuple[int, int], source_size: tuple[int, int], margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """A digit's `box` (x0, y0, x1, y1 in a picture of `source_size`) in a copy of `picture_size`, widened by
    `margin` of its larger side on every side and kept inside the picture."""
    sx, sy = picture_size[0] / source_size[0], picture_size[1] / source_size[1]
    x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    pad = margin * max(x1 - x0, y1 - y0) + 2
    return (max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad)),
            min(picture_size[0], math.ceil(x1 + pad)), min(picture_size[1], math.ceil(y1 + pad)))


def save_number_correction(
    image,
    digits: Sequence[DigitRead],
    typed: str,
    *,
    source: str,
    original_filename: str | None = None,
    model_version: str | None = None,
    preprocessing_version: str | None = None,
    root: Path | None = None,
) -> NumberSaveResult:
    """Store a person's correction of a number read from `image`, as one unit: all its files or none.

    Same length as read: each digit read wrong becomes a crop of the picture (around its box) in the folder of
    its true digit, with the picture itself once in sources/. Another length: the picture goes to unmatched/
    with what was read and typed, for the Review page only. Raises NumberTextError (typed is not a number),
    ValueError (nothing to correct, or digits without boxes), preprocess.UnreadableImageError; writes nothing then.
    """
    typed = parse_number(typed)
    if not digits:
        raise ValueError("No digit was read: there is nothing to correct.")
    labels = [validate_digit(digit.label) for digit in digits]
    reading = "".join(map(str, labels))
    if typed == reading:
        raise ValueError(f"The model also read {reading}: nothing to correct, nothing saved.")
    boxes = [digit.box for digit in digits]
    if any(box is None or len(box) != 4 for box in boxes):
        raise ValueError("Every digit needs its box in the picture to be saved as a crop.")
    boxes = [[int(v) for v in box] for box in boxes]
    picture, source_size = open_reduced(image)
    base = {
        "format_version": FORMAT_VERSION,
        "source": _source(source),
        "original_filename": sanitize_filename(original_filename),
        "model_version": None if model_version is None else str(model_version),
        "preprocessing_version": str(preprocessing_version or PREPROCESSING_VERSION),
        "saved_at": utc_now(),
        "source_size": list(source_size),
        "reading": reading,
        "typed": typed,
    }
    root = _root(root)
    whole = _png(picture)
    whole_sha = hashlib.sha256(whole).hexdigest()
    if len(typed) != len(reading):
        key = hashlib.sha256(whole + typed.encode()).hexdigest()  # the same picture typed two ways is two entries
        hold = _store(root, UNMATCHED_DIR, f"{key[:16]}.png", whole, {**base, "sha256": whole_sha, "boxes": boxes})
        return NumberSaveResult(reading, typed, (), None, hold.path, (hold,))
    wrong = [i for i, (read, true) in enumerate(zip(reading, typed)) if read != true]
    crops = []
    for i in wrong:
        x0, y0, x1, y1 = crop_box(boxes[i], picture.size, source_size)
        png = _png(picture.crop((x0, y0, x1, y1)))
        crops.append((i, png, hashlib.sha256(png).hexdigest()))
    holds: list[Hold] = []
    try:
        holds.append(_store(root, SOURCES_DIR, f"{whole_sha}.png", whole, {**base, "sha256": whole_sha}))
        for i, png, sha256 in crops:
            digit = digits[i]
            metadata = {
                **base,
                "true_label": int(typed[i]),
                "predicted_label": labels[i],
                "confidence": _probability(digit.confidence, "confidence"),
                "probabilities": _probabilities(digit.probabilities),
                "sha256": sha256,
                "source_sha256": whole_sha,
                "box": boxes[i],
                "position": i,
                "count": len(reading),
            }
            holds.append(_store(root, typed[i], f"{sha256[:16]}.png", png, metadata))
    except BaseException:
        for hold in reversed(holds):
            with contextlib.suppress(OSError):
                _withdraw(hold)
        raise
    items = []
    for hold in holds[1:]:
        with _label_dir(root, hold.folder) as folder:
            items.append(_item_at(folder, root, int(hold.folder), hold.name))
    return NumberSaveResult(reading, typed, tuple(items), holds[0].path, None, tuple(holds))


def undo_number_save(result: NumberSaveResult) -> int:
    """Withdraw everything one `save_number_correction` holds; -> how many files were removed (a file another
    save also holds stays)."""
    return sum(_withdraw(hold) for hold in reversed(result.holds))


def _saved_at(metadata: dict, mtime: float | None) -> datetime | None:
    """When a stored picture was saved (its sidecar's time, else its file's); None when neither is a usable time."""
    parsed = parse_utc(metadata.get("saved_at"))
    if parsed is not None:
        return parsed
    try:
        return datetime.fromtimestamp(mtime, timezone.utc) if mtime is not None else None
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class UnmatchedItem:
    """A picture kept because the typed number had another length than what was read (unmatched/)."""

    path: Path
    metadata: dict
    mtime: float | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return display_name(self.path.name)

    @property
    def id(self) -> str:
        return f"{UNMATCHED_DIR}/{self.name}"

    @property
    def saved_at(self) -> datetime | None:
        return _saved_at(self.metadata, self.mtime)


def scan_unmatched(root: Path | None = None) -> list[UnmatchedItem]:
    """The pictures in unmatched/, newest first (never followed through a link, like the digit folders)."""
    root = _root(root)
    try:
        with _label_dir(root, UNMATCHED_DIR) as folder:
            with os.scandir(folder) as entries:
                names = {entry.name: entry.stat(follow_symlinks=False) for entry in entries if not entry.name.startswith(".")}
            items = [
                UnmatchedItem(root / UNMATCHED_DIR / name, _public(_read_sidecar(folder, name)), info.st_mtime)
                for name, info in names.items()
                if _suffix(name) == ".png" and stat.S_ISREG(info.st_mode)
            ]
    except (FileNotFoundError, StoreError):
        return []
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(items, key=lambda item: (item.saved_at or oldest, item.id), reverse=True)


def read_unmatched(item: UnmatchedItem) -> bytes:
    with _label_dir(item.path.parent.parent, UNMATCHED_DIR) as folder:
        return _read_at(folder, item.path.name, MAX_ITEM_BYTES)


def delete_unmatched(item: UnmatchedItem) -> None:
    with _label_dir(item.path.parent.parent, UNMATCHED_DIR) as folder:
        _unlink_quietly(folder, item.path.name)
        _unlink_quietly(folder, _sidecar_name(item.path.name))


def read_source(sha256: str, root: Path | None = None) -> bytes:
    """The picture a number's crops were cut from (sources/<sha256>.png); FileNotFoundError once it is gone."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    with _label_dir(_root(root), SOURCES_DIR) as folder:
        return _read_at(folder, f"{sha256}.png", MAX_ITEM_BYTES)


def scan(root: Path | None = None) -> Listing:
    """Every image in <root>/0 ... <root>/9 and <root>/not_a_digit, hand-dropped ones included, newest first,
    and what was skipped.

    Label folders that are links, and entries named like images or sidecars that are links
    or special files, are skipped and reported; they are never opened or followed.
    """
    root = _root(root)
    items, skipped = [], []
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return Listing([], [])
    try:
        for label in LABELS:
            label_name = folder_name(label)
            try:
                mode = os.lstat(label_name, dir_fd=root_fd).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                if stat.S_ISLNK(mode):
                    skipped.append(SkippedEntry(label_name, "skipped: a label folder must not be a link"))
                continue
            folder = os.open(label_name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
            try:
                found, refused = _scan_folder(folder, root, label)
            finally:
                os.close(folder)
            items.extend(found)
            skipped.extend(refused)
    finally:
        os.close(root_fd)
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    items.sort(key=lambda item: (item.saved_at or oldest, item.id), reverse=True)
    return Listing(items, skipped)


def _scan_folder(folder: int, root: Path, label: int) -> tuple[list[FeedbackItem], list[SkippedEntry]]:
    regular: dict[str, float] = {}
    skipped = []
    with os.scandir(folder) as entries:
        for entry in entries:
            suffix = _suffix(entry.name)
            if entry.name.startswith(".") or (suffix not in IMAGE_SUFFIXES and suffix != ".json"):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                regular[entry.name] = info.st_mtime
            elif not stat.S_ISDIR(info.st_mode):
                skipped.append(SkippedEntry(f"{folder_name(label)}/{display_name(entry.name)}", NOT_REGULAR))
    items = [
        FeedbackItem(root / folder_name(label) / name, label, _public(_read_sidecar(folder, name)) if _sidecar_name(name) in regular else {}, mtime)
        for name, mtime in regular.items()
        if _suffix(name) in IMAGE_SUFFIXES
    ]
    return items, skipped


def list_items(root: Path | None = None) -> list[FeedbackItem]:
    """Every image in <root>/0 ... <root>/9 and <root>/not_a_digit, hand-dropped ones included, newest first."""
    return scan(root).items


def counts(root: Path | None = None) -> dict[int, int]:
    """Number of items per label, every label present: the ten digits, then config.NOT_A_DIGIT_LABEL."""
    return scan(root).counts()


def read_image(item: FeedbackItem) -> bytes:
    """The image file's bytes, read without following a link; StoreError when it is not a regular file."""
    with _label_dir(item.path.parent.parent, item.label) as folder:
        return _read_at(folder, item.path.name, MAX_ITEM_BYTES)


def delete_item(item: FeedbackItem) -> None:
    with _label_dir(item.path.parent.parent, item.label) as folder:
        _unlink_quietly(folder, item.path.name)
        _unlink_quietly(folder, _sidecar_name(item.path.name))


def relabel(item: FeedbackItem, new_label) -> FeedbackItem:
    """Move the image (and its sidecar, with true_label updated) to the folder of `new_label` (a digit or
    "not_a_digit", as `validate_label` takes it)."""
    label = validate_label(new_label)
    if label == item.label:
        return item
    root, name = item.path.parent.parent, item.path.name
    with _label_dir(root, item.label) as source, _label_dir(root, label, create=True) as target:
        content = _read_at(source, name, MAX_ITEM_BYTES)
        try:
            existing = _read_at(target, name, MAX_ITEM_BYTES)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if existing != content:
                raise FileExistsError(f"{folder_name(label)}/{display_name(name)} already exists with different content.")
            _unlink_quietly(source, name)
            _unlink_quietly(source, _sidecar_name(name))
            return _item_at(target, root, label, name)
        sidecar = _read_sidecar(source, name)
        if sidecar is not None:
            _write_sidecar(target, name, {**sidecar, "true_label": _stored_true_label(label)})
        os.link(name, name, src_dir_fd=source, dst_dir_fd=target, follow_symlinks=False)  # never replaces a file
        _unlink_quietly(source, name)
        _unlink_quietly(source, _sidecar_name(name))
        return _item_at(target, root, label, name)


def export_zip(root: Path | None = None) -> bytes:
    """A zip of <folder>/<file> (a digit or not_a_digit) for every image and its sidecar; names that cannot be
    shown are escaped."""
    root = _root(root)
    items = sorted(list_items(root), key=lambda item: item.id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for label in sorted({item.label for item in items}):
            with _label_dir(root, label) as folder:
                for item in (item for item in items if item.label == label):
                    for name in (item.path.name, _sidecar_name(item.path.name)):
                        try:
                            data = _read_at(folder, name, MAX_ITEM_BYTES)
                        except OSError:
                            continue
                        archive.writestr(f"{folder_name(label)}/{display_name(name)}", data)
    return buffer.getvalue()


# Safe file access: every path is opened relative to a label folder that is not a link ------


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else config.feedback_dir()


@contextlib.contextmanager
def _label_dir(root: Path, label: int | str, create: bool = False) -> Iterator[int]:
    """An open descriptor of the folder of `label` (an int label), or of <root>/<label> (a folder name: a digit,
    `not_a_digit`, `sources` or `unmatched`); a folder that is a link is refused."""
    if not isinstance(label, str):
        label = folder_name(label)
    if create:
        Path(root).mkdir(parents=True, exist_ok=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(str(label), 0o755, dir_fd=root_fd)
        try:
            folder = os.open(str(label), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
        except (NotADirectoryError, OSError) as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise StoreError(f"{Path(root) / str(label)} is a link or not a folder: refused (the store never reaches outside itself).") from None
        try:
            yield folder
        finally:
            os.close(folder)
    finally:
        os.close(root_fd)


def _open_regular_at(folder: int, name: str) -> int:
    """Open without following a link or blocking on a FIFO; StoreError unless it is a regular file."""
    if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        raise StoreError(f"{display_name(name)}: {NOT_REGULAR}")  # a device is never even opened
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        if error.errno in (errno.ELOOP, errno.ENXIO, errno.EMLINK):
            raise StoreError(f"{display_name(name)}: {NOT_REGULAR}") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{display_name(name)}: {NOT_REGULAR}")
    os.set_blocking(fd, True)
    return fd


def _read_at(folder: int, name: str, limit: int) -> bytes:
    with os.fdopen(_open_regular_at(folder, name), "rb") as handle:
        too_large = os.fstat(handle.fileno()).st_size > limit
        data = b"" if too_large else handle.read()  # read(limit + 1) would allocate the whole limit every time
    if too_large or len(data) > limit:
        raise StoreError(f"{display_name(name)} is larger than {limit // (1024 * 1024)} MB.")
    return data


def _open_locked(folder: int, name: str) -> int | None:
    """The item `name` opened and exclusively locked, or None when it is gone (an undo removed it meanwhile)."""
    try:
        fd = _open_regular_at(folder, name)
    except FileNotFoundError:
        return None
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        still_there = os.stat(name, dir_fd=folder, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        still_there = False
    if not still_there:
        os.close(fd)
        return None
    return fd


def _create_locked(folder: int, name: str, data: bytes) -> int | None:
    """Create `name` with `data`, already locked when it appears; -> its descriptor, or None when it exists."""
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: the store is meant to be shared
        _write_all(fd, data)
        os.fsync(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.link(temporary, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            os.close(fd)
            return None
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    finally:
        _unlink_quietly(folder, temporary)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink_quietly(folder: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)  # unlink removes a link itself, never what it points to


def _item_at(folder: int, root: Path, label: int, name: str) -> FeedbackItem:
    try:
        mtime = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        mtime = None
    return FeedbackItem(Path(root) / folder_name(label) / name, label, _public(_read_sidecar(folder, name)), mtime)


def _suffix(name: str) -> str:
    return os.path.splitext(name)[1].lower()  # (pathlib here made listing 500 items ~20 % slower)


def _sidecar_name(image_name: str) -> str:
    return os.path.splitext(image_name)[0] + ".json"


def _read_sidecar(folder: int, image_name: str) -> dict | None:
    """The sidecar's valid fields plus its undo tokens, or None when it is missing, not a regular file, or not a JSON object."""
    try:
        raw = json.loads(_read_at(folder, _sidecar_name(image_name), MAX_SIDECAR_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    fields = _valid_fields(raw)
    tokens = raw.get("undo_tokens")
    if isinstance(tokens, list) and all(isinstance(token, str) and _TOKEN.fullmatch(token) for token in tokens):
        fields["undo_tokens"] = tokens
    return fields


def _public(sidecar: dict | None) -> dict:
    """What an item says about itself: the sidecar's valid fields without the undo bookkeeping."""
    return {key: value for key, value in (sidecar or {}).items() if key != "undo_tokens"}


def _write_sidecar(folder: int, image_name: str, metadata: dict) -> None:
    atomic_write_at(folder, _sidecar_name(image_name), json_bytes(metadata))


# Sidecar fields, each checked on its own ---------------------------------------------------


def _is_label(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in config.DIGITS


def _is_true_label(value) -> bool:
    return _is_label(value) or (isinstance(value, str) and value == config.NOT_A_DIGIT)


def _is_probability(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0.0 <= value <= 1.0


def _is_short_text(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_FILENAME_LENGTH


_FIELD_CHECKS = {
    "format_version": lambda value: value == FORMAT_VERSION and not isinstance(value, bool),
    "true_label": _is_true_label,
    "predicted_label": _is_label,
    "predicted_status": lambda value: isinstance(value, str) and value in STATUSES,
    "confidence": _is_probability,
    "probabilities": lambda value: isinstance(value, list) and len(value) == config.NUM_CLASSES and all(map(_is_probability, value)),
    "source": lambda value: isinstance(value, str) and value in SOURCES,
    "original_filename": lambda value: value is None or (isinstance(value, str) and sanitize_filename(value) == value),
    "model_version": lambda value: value is None or _is_short_text(value),
    "preprocessing_version": _is_short_text,
    "saved_at": lambda value: parse_utc(value) is not None,
    "sha256": lambda value: isinstance(value, str) and _SHA256.fullmatch(value) is not None,
}


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_NUMBER_LENGTH


def _is_box(value) -> bool:
    return (
        isinstance(value, list) and len(value) == 4 and all(_is_count_of_pixels(v) for v in value)
        and value[0] < value[2] and value[1] < value[3]
    )


def _is_count_of_pixels(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1_000_000


def _is_digit_text(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NUMBER_LENGTH and value.isascii() and value.isdigit()


_FIELD_CHECKS.update({
    "source_sha256": _FIELD_CHECKS["sha256"],
    "source_size": lambda value: isinstance(value, list) and len(value) == 2 and all(_is_count_of_pixels(v) and v > 0 for v in value),
    "box": _is_box,
    "position": _is_count,
    "count": lambda value: _is_count(value) and value > 0,
    "reading": _is_digit_text,
    "typed": _is_digit_text,
    "boxes": lambda value: isinstance(value, list) and 0 < len(value) <= MAX_NUMBER_LENGTH and all(map(_is_box, value)),
})


def _valid_fields(raw: dict) -> dict:
    """The known fields of a sidecar whose values are valid; anything else is left out (unknown)."""
    fields = {key: raw[key] for key, check in _FIELD_CHECKS.items() if key in raw and _passes(check, raw[key])}
    if "position" in fields and fields["position"] >= fields.get("count", MAX_NUMBER_LENGTH):
        del fields["position"]  # a place after the number's end says nothing true
    return fields


def _passes(check, value) -> bool:
    try:
        return bool(check(value))
    except Exception:  # a check must never take the listing down, whatever a hand-edited sidecar holds
        return False


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
        raise ValueError(f"probabilities must be {config.NUM_CLASSES} numbers.") from error
    if array.size != config.NUM_CLASSES:
        raise ValueError(f"probabilities must be {config.NUM_CLASSES} numbers, not {array.size}.")
    return [_probability(value, "every probability") for value in array.tolist()]


def _status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"predicted_status must be one of {list(STATUSES)} or None, not {status!r}.")
    return status


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, not {source!r}.")
    return source


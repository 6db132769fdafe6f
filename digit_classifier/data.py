"""Read and verify the MNIST IDX files shipped in `input/`.

Nothing is downloaded: the four `.gz` files and their `SHA256SUMS` live in the
repository, and every load checks checksums, shapes and label range.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import config

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
EXPECTED_COUNT = {"train": 60_000, "test": 10_000}
_IDX_MAGIC = {1: 2049, 3: 2051}  # labels, images


class DataError(RuntimeError):
    """An MNIST file is missing, corrupt or does not have the expected shape."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, 28, 28) uint8, white digit on black
    labels: np.ndarray  # (n,) uint8


def expected_checksums(directory: Path | None = None) -> dict[str, str]:
    """File name -> SHA-256 from `SHA256SUMS`."""
    directory = directory or config.input_dir()
    sums = directory / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"{sums} is missing: it lists the checksums of the MNIST files.")
    result = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            result[name.lstrip("*")] = digest
    return result


def _verified_bytes(path: Path, expected_sha: str) -> bytes:
    if not path.is_file():
        raise DataError(f"{path} is missing. Restore it from the repository (git checkout -- {path.name}).")
    raw = path.read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha:
        raise DataError(f"{path} is corrupt: SHA-256 {actual[:12]}... does not match SHA256SUMS ({expected_sha[:12]}...).")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a valid gzip file: {error}") from error


def _parse_idx(payload: bytes, ndim: int, name: str) -> np.ndarray:
    magic, *dims = struct.unpack(f">{1 + ndim}I", payload[: 4 * (1 + ndim)])
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(f"{name}: unexpected IDX magic number {magic}.")
    body = np.frombuffer(payload, dtype=np.uint8, offset=4 * (1 + ndim))
    if body.size != int(np.prod(dims)):
        raise DataError(f"{name}: header says {dims} but the file holds {body.size} bytes.")
    return body.reshape(dims)


def _load_split(split: str, directory: Path) -> Split:
    checksums = expected_checksums(directory)
    parts = {}
    for kind, ndim in (("images", 3), ("labels", 1)):
        name = FILES[f"{split}_{kind}"]
        if name not in checksums:
            raise DataError(f"SHA256SUMS in {directory} has no line for {name}.")
        parts[kind] = _parse_idx(_verified_bytes(directory / name, checksums[name]), ndim, name)
    images, labels = parts["images"], parts["labels"]
    n, side = EXPECTED_COUNT[split], config.IMAGE_SIZE
    if images.shape != (n, side, side) or labels.shape != (n,):
        raise DataError(f"MNIST {split}: shapes {images.shape} and {labels.shape}, expected ({n}, {side}, {side}) and ({n},).")
    if labels.max() >= config.NUM_CLASSES:
        raise DataError(f"MNIST {split}: label {labels.max()} is outside 0-{config.NUM_CLASSES - 1}.")
    images.setflags(write=False)
    labels.setflags(write=False)
    return Split(images, labels)


@lru_cache(maxsize=4)
def _cached(split: str, directory: str) -> Split:
    return _load_split(split, Path(directory))


def load_split(split: str, directory: Path | None = None) -> Split:
    """Load 'train' or 'test' (uint8, read-only arrays), verified against SHA256SUMS."""
    if split not in EXPECTED_COUNT:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return _cached(split, str(directory or config.input_dir()))


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1], the CNN's input."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]

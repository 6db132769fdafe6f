"""The MNIST files in input/: checksums, shapes, labels, and clear errors when damaged."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from digit_classifier import config, data

# Published label counts (see the MNIST README shipped with the data).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_checksums_match_the_shipped_sums():
    expected = data.expected_checksums()
    assert set(expected) == set(data.FILES.values())
    for name, digest in expected.items():
        with open(config.input_dir() / name, "rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == digest


@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_shapes_dtypes_and_label_counts(split, counts):
    loaded = data.load_split(split)
    n = sum(counts)
    assert loaded.images.shape == (n, 28, 28) and loaded.images.dtype == np.uint8
    assert loaded.labels.shape == (n,)
    assert np.bincount(loaded.labels, minlength=10).tolist() == counts


def test_images_are_white_digits_on_black():
    images = data.load_split("test").images
    assert images[:, 0, :].mean() < 0.5 and images[:, :, 0].mean() < 0.5  # black borders
    assert images.max() == 255 and np.median(images) == 0


def test_model_input_is_float_in_unit_range():
    x = data.to_model_input(data.load_split("test").images[:5])
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0


def test_arrays_are_read_only():
    with pytest.raises(ValueError):
        data.load_split("test").images[0, 0, 0] = 1


@pytest.fixture
def input_copy(tmp_path):
    shutil.copytree(config.input_dir(), tmp_path / "input")
    return tmp_path / "input"


def test_corrupt_file_is_named(input_copy):
    target = input_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        data.load_split("test", input_copy)


def test_missing_file_is_named(input_copy):
    (input_copy / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz is missing"):
        data.load_split("test", input_copy)


def test_missing_checksum_list(input_copy):
    (input_copy / "SHA256SUMS").unlink()
    with pytest.raises(data.DataError, match="SHA256SUMS"):
        data.load_split("train", input_copy)


def test_unknown_split():
    with pytest.raises(ValueError):
        data.load_split("validation")

"""Paths and constants, anchored on the repository root.

Every path can be overridden with an environment variable, so tests and CI can
point the code at temporary folders without touching the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def input_dir() -> Path:
    """MNIST IDX files (never edited)."""
    return _path_from_env("DIGIT_INPUT_DIR", REPO_ROOT / "input")


def model_dir() -> Path:
    """`versions/<version>/` folders, the `current` link to one of them, and links for people (see versions.py)."""
    return _path_from_env("DIGIT_MODEL_DIR", REPO_ROOT / "model")


def model_path() -> Path:
    """The current model file, through the links model.keras -> current/model.keras -> versions/<version>/.

    To read the weights and the metadata of one version, resolve `current` once:
    `versions.resolve_current()` (what `model.load_classifier()` does).
    """
    return model_dir() / "model.keras"


def metadata_path() -> Path:
    """The current model's metadata, through the same links as `model_path`."""
    return model_dir() / "metadata.json"


def feedback_dir() -> Path:
    """Corrections collected by the app: `wrong_predictions/<true_label>/`."""
    return _path_from_env("DIGIT_FEEDBACK_DIR", REPO_ROOT / "wrong_predictions")


SEED = 42
NUM_CLASSES = 10
DIGITS = tuple(range(NUM_CLASSES))  # the labels, 0 ... 9
# A picture that is not a digit (a letter, a sign, a scribble): the status the model gives it, and the
# corrections folder `wrong_predictions/not_a_digit/`. Where labels are integers it is NOT_A_DIGIT_LABEL (10),
# which training turns into equal probabilities for the ten digits.
NOT_A_DIGIT = "not_a_digit"
NOT_A_DIGIT_LABEL = NUM_CLASSES
IMAGE_SIZE = 28

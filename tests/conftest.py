"""Fixtures shared by the test layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from digit_classifier import config, data


@pytest.fixture(scope="session")
def mnist_test() -> data.Split:
    return data.load_split("test")


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The model file the app and CLI use; tests that need one skip (saying why) when there is none."""
    path = config.model_path()
    if not path.is_file():
        pytest.skip(f"no trained model at {path}: run `make train` (or point DIGIT_MODEL_DIR at one)")
    return path


@pytest.fixture(scope="session")
def classifier(trained_model: Path):
    from digit_classifier.model import load_classifier  # TensorFlow loads only for tests that need it

    return load_classifier(trained_model)


@pytest.fixture
def feedback_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty wrong_predictions/ store, used by everything in this process through DIGIT_FEEDBACK_DIR."""
    root = tmp_path / "wrong_predictions"
    root.mkdir()
    monkeypatch.setenv("DIGIT_FEEDBACK_DIR", str(root))
    return root

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


@pytest.fixture(scope="session")
def number_photo(classifier) -> tuple[bytes, str]:
    """A photo of 472 that the model reads exactly (the first of a few renderings): tests of what happens after a
    reading need one that is right, whatever the scene stage's tuning does to a particular rendering."""
    from digit_classifier.predict import read_image
    from tools.app_harness import number_photo

    for seed in range(10):
        picture = number_photo((4, 7, 2), seed)
        if read_image(classifier, picture).text == "472":
            return picture, "472"
    pytest.fail("none of 10 renderings of 472 was read exactly")

"""Training code on a tiny subset: the loss falls, the model and its metadata are written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from digit_classifier import data
from digit_classifier.inference import load_serving_classifier
from digit_classifier.model import load_classifier
from digit_classifier.train import augment, train


@pytest.mark.slow
def test_tiny_training_run_learns_and_saves(tmp_path):
    model, metadata = train(out_dir=tmp_path, epochs=3, train_limit=1024, validation_size=512, verbose=0, non_digits=200)
    losses = metadata["history"]["loss"]
    assert losses[-1] < losses[0] * 0.8
    assert metadata["history"]["accuracy"][-1] > 0.5  # (validation needs more steps for batch-norm statistics to settle)
    written = json.loads((tmp_path / "metadata.json").read_text())
    assert written["version"] == metadata["version"] and written["epochs"] == 3
    assert written["train_samples"] == 1024 and written["parameters"] == model.count_params()
    assert len(written["epoch_seconds"]) == 3 and all(seconds > 0 for seconds in written["epoch_seconds"])
    assert abs(sum(written["epoch_seconds"]) - written["training_seconds"]) < 0.1 * written["training_seconds"] + 0.5
    assert os.readlink(tmp_path / "current") == f"versions/{metadata['version']}"
    assert json.loads((tmp_path / "versions" / metadata["version"] / "metadata.json").read_text()) == written
    reloaded = load_classifier(model_dir=tmp_path)
    assert reloaded.metadata == written
    x = data.to_model_input(data.load_split("test").images[:8])
    assert np.allclose(reloaded.probabilities(x), model(x, training=False).numpy(), atol=1e-5)
    assert set(written["files"]) == {"model.keras", "model.tflite"}
    assert written["litert_export"]["images"] == 10_000 and written["litert_export"]["max_probability_difference"] <= 1e-4
    served = load_serving_classifier(model_dir=tmp_path)
    assert served.runtime == "litert" and np.allclose(served.probabilities(x), reloaded.probabilities(x), atol=1e-4)


def test_augmentation_keeps_shape_range_and_most_ink():
    x = data.to_model_input(data.load_split("train").images[:64])
    out = augment(x).numpy()
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, x)
    ink_ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert np.all(ink_ratio > 0.4) and np.all(ink_ratio < 2.5)

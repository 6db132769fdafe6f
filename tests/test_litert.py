"""Serving through LiteRT: the same answers as Keras, no TensorFlow in the app or `predict`, and a
missing or stale export never served silently."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_classifier import config, data, realinputs, versions
from digit_classifier.evaluate import preprocess_all
from digit_classifier.inference import load_serving_classifier
from digit_classifier.versions import ModelUnavailableError

TOLERANCE = 1e-4  # the largest probability difference allowed between Keras and LiteRT
REAL_SET_SIZE = 200  # per realistic set: the photo-like sets take tens of seconds each to render and preprocess

# Run in a fresh interpreter: what it prints last is the list of TensorFlow/Keras modules it imported.
LEAKED_MODULES = "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))))"


@pytest.fixture(scope="module")
def served(trained_model):
    return load_serving_classifier()


def assert_same_answers(keras_probabilities: np.ndarray, litert_probabilities: np.ndarray) -> None:
    assert keras_probabilities.shape == litert_probabilities.shape
    assert np.array_equal(keras_probabilities.argmax(1), litert_probabilities.argmax(1))
    assert float(np.abs(keras_probabilities - litert_probabilities).max()) <= TOLERANCE


def test_the_app_and_predict_are_served_by_litert(served):
    assert served.runtime == "litert"
    assert served.path == versions.resolve_current().path / versions.LITERT_FILE


@pytest.fixture(scope="module")
def mnist_answers(classifier, served, mnist_test) -> tuple[np.ndarray, np.ndarray]:
    """(Keras, LiteRT) probabilities on all 10,000 MNIST test images, each through its batch path."""
    images = data.to_model_input(mnist_test.images)
    return classifier.probabilities(images), served.probabilities(images)


def test_keras_and_litert_agree_on_all_of_mnist_test(mnist_answers):
    assert len(mnist_answers[0]) == 10_000
    assert_same_answers(*mnist_answers)


def test_one_image_at_a_time_gives_the_batch_answers(served, mnist_test):
    images = data.to_model_input(mnist_test.images[:20])
    batch = served.probabilities(images)
    one_by_one = np.concatenate([served.probabilities(image[..., 0]) for image in images])
    assert np.allclose(one_by_one, batch, atol=1e-6)
    assert served.probabilities(images[:0]).shape == (0, config.NUM_CLASSES)


@pytest.mark.slow
@pytest.mark.parametrize("kind", realinputs.KINDS)
def test_keras_and_litert_agree_on_each_realistic_set(classifier, served, kind):
    images, usable = preprocess_all(realinputs.make_set(kind, REAL_SET_SIZE)[0])
    assert usable.sum() >= 0.85 * REAL_SET_SIZE  # the photo scenes refuse a few (about 2 % of notebook pages and shadows)
    assert_same_answers(classifier.probabilities(images), served.probabilities(images))


def test_the_recorded_export_check_is_the_one_measured_here(mnist_answers):
    """The metadata records the check the export passed, and this machine measures the same thing. The exact
    largest difference depends on the kernels LiteRT picks for the processor (7.8e-7 where the model was exported,
    1.3e-6 on another machine of the same kind), so it must agree in size, not to the digit."""
    recorded = versions.resolve_current().metadata["litert_export"]
    difference = float(np.abs(mnist_answers[0] - mnist_answers[1]).max())
    assert recorded["images"] == 10_000 and recorded["labels_identical"] is True
    assert np.array_equal(mnist_answers[0].argmax(1), mnist_answers[1].argmax(1))
    assert 0 < recorded["max_probability_difference"] <= TOLERANCE and difference <= TOLERANCE
    assert difference / 10 <= recorded["max_probability_difference"] <= difference * 10


# No TensorFlow in the serving processes -----------------------------------------------------


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def leaked(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_app_answers_an_upload_without_importing_tensorflow(trained_model):
    code = f"""
import json, sys
from streamlit.testing.v1 import AppTest
from tools.app_harness import APP, digit_png
app = AppTest.from_file(str(APP), default_timeout=120)
app.run()
app.file_uploader(key="uploads").set_value([("seven.png", digit_png(7), "image/png")])
app.run()
assert not app.exception, app.exception
assert [s.value for s in app.subheader if s.value.startswith("Prediction")] == ["Prediction: 7"]
{LEAKED_MODULES}
"""
    assert leaked(run_python(code)) == []


def test_predict_answers_without_importing_tensorflow(trained_model, tmp_path):
    image = tmp_path / "seven.png"
    from tools.app_harness import digit_png

    image.write_bytes(digit_png(7))
    code = f"""
import contextlib, io, json, sys
from digit_classifier.__main__ import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(["predict", {str(image)!r}, "--workers", "1"])
assert status == 0 and json.loads(out.getvalue())["label"] == 7, out.getvalue()
{LEAKED_MODULES}
"""
    assert leaked(run_python(code)) == []


# A missing or stale export ---------------------------------------------------------------------


@pytest.fixture
def model_copy(trained_model, tmp_path) -> Path:
    return shutil.copytree(config.model_dir(), tmp_path / "model", symlinks=True, ignore=shutil.ignore_patterns(".lock"))


def spoil_export(model_dir: Path, how: str) -> Path:
    export = versions.resolve_current(model_dir).path / versions.LITERT_FILE
    if how == "missing":
        export.unlink()
    else:  # stale: a valid export of other weights would do the same; any change breaks the hash
        export.write_bytes(export.read_bytes()[:-16] + bytes(16))
    return export


@pytest.mark.parametrize("how", ["missing", "stale"])
def test_without_tensorflow_a_missing_or_stale_export_is_refused_in_one_line(model_copy, how):
    export = spoil_export(model_copy, how)
    code = f"""
import json, sys
from digit_classifier.inference import load_serving_classifier
from digit_classifier.versions import ModelUnavailableError
try:
    load_serving_classifier(model_dir={str(model_copy)!r})
    print("served")
except ModelUnavailableError as error:
    print(error)
{LEAKED_MODULES}
"""
    result = run_python(code)
    assert leaked(result) == []
    message = result.stdout.splitlines()[-2]
    assert message.startswith(f"{export} is missing" if how == "missing" else f"{export} does not match its metadata")
    assert "not served" in message


@pytest.mark.parametrize("how", ["missing", "stale"])
def test_with_tensorflow_loaded_a_missing_or_stale_export_is_made_again_and_said(classifier, model_copy, how, caplog, mnist_test):
    export = spoil_export(model_copy, how)
    with caplog.at_level(logging.WARNING, logger="digit_classifier.inference"):
        again = load_serving_classifier(model_dir=model_copy)
    assert [record.getMessage() for record in caplog.records] == [
        f"{export} {versions.export_problem(export.parent, versions.read_metadata(export.parent / 'metadata.json'))}: "
        "exported the Keras model again, in memory only."
    ]
    assert again.runtime == "litert" and again.path is None
    images = data.to_model_input(mnist_test.images[:500])
    assert_same_answers(classifier.probabilities(images), again.probabilities(images))
    assert not export.exists() if how == "missing" else True  # the immutable version is left as it was


def test_a_version_saved_before_exports_cannot_be_rolled_back_to(model_copy):
    from digit_classifier.versions import ModelStoreError

    base = versions.resolve_current(model_copy)
    metadata = {**base.metadata, "version": "ft-other", "kind": "finetuned", "parent": base.name}
    versions.save_version(model_copy, metadata, lambda folder: [shutil.copyfile(base.path / n, folder / n) for n in versions.VERSION_FILES])
    versions.promote_version(model_copy, "ft-other")
    (base.path / versions.LITERT_FILE).unlink()
    with pytest.raises(ModelStoreError, match=r"Cannot roll back to .*model\.tflite is missing"):
        versions.rollback(model_copy)
    assert versions.current_name(model_copy) == "ft-other"


def test_without_the_litert_runtime_keras_answers_and_one_line_says_so(trained_model, classifier, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # what a platform without a wheel sees
    with caplog.at_level(logging.WARNING, logger="digit_classifier.inference"):
        fallback = load_serving_classifier()
    assert fallback.runtime == "keras" and fallback.version == classifier.version
    [record] = caplog.records
    assert "ai-edge-litert cannot be imported" in record.getMessage() and "\n" not in record.getMessage()


def test_model_call_rejects_arrays_that_are_not_28x28_images(served):
    with pytest.raises(ValueError, match="28x28"):
        served.probabilities(np.zeros((2, 32, 32)))
    with pytest.raises(ModelUnavailableError):
        load_serving_classifier(Path(config.model_dir()) / "no-such-file.tflite")

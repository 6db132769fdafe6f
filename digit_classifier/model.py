"""The CNN: build it, save it with its metadata and its LiteRT export, load it, call it with Keras.

Serving (the app, `predict`) goes through inference.py, which runs the export without TensorFlow;
this module is for training, fine-tuning and evaluation, and imports TensorFlow.

The architecture is the classic "two VGG blocks" MNIST network with batch
normalisation and dropout: small enough to train in minutes on two CPU cores,
accurate enough (with augmentation) to pass 99.6 % on the MNIST test set.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import config, data, versions
from .inference import LiteRTClassifier, as_batch, litert_available
from .quiet_tensorflow import keras, tf
from .versions import ModelUnavailableError

CONV_WIDTHS = (32, 64)  # filters in each of the two blocks of two 3x3 convolutions
DENSE_UNITS = 128
DROPOUT = 0.4
# The export's check on MNIST test: probabilities this close to Keras' (the labels then differ only on a
# tie, which the metadata would show). Measured with the committed model: largest difference 1.0e-6, no
# label differs (float32 kernels that sum in another order).
EXPORT_TOLERANCE = 1e-4


def build_cnn(widths: tuple[int, ...] = CONV_WIDTHS, dense_units: int = DENSE_UNITS, dropout: float = DROPOUT) -> keras.Model:
    """28x28x1 float image in [0, 1] -> probabilities of the ten digits."""
    layers = keras.layers
    inputs = keras.Input(shape=(config.IMAGE_SIZE, config.IMAGE_SIZE, 1), name="image")
    x = inputs
    for block, width in enumerate(widths, start=1):
        for conv in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout1")(x)
    x = layers.Dense(dense_units, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.ReLU(name="dense_relu")(x)
    x = layers.Dropout(dropout, name="dropout2")(x)
    outputs = layers.Dense(config.NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


@dataclass
class Classifier:
    """A loaded model with its metadata and a fast inference call.

    `model.predict()` is Keras' batch API and costs tens of milliseconds per
    call; for an interactive app one image must go through a compiled direct
    call instead. `probabilities()` does that for any batch size.
    """

    runtime: ClassVar[str] = "keras"  # which runtime answers

    model: keras.Model
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        spec = tf.TensorSpec((None, config.IMAGE_SIZE, config.IMAGE_SIZE, 1), tf.float32)
        self._call = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unknown"))

    def probabilities(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """(n, 28, 28) or (n, 28, 28, 1) floats in [0, 1] -> (n, 10) probabilities."""
        images = as_batch(images)
        if len(images) == 0:
            return np.zeros((0, config.NUM_CLASSES), dtype=np.float32)
        chunks = [self._call(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks)


def logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """What the last layer's softmax turns into probabilities (the energy score reads them). Dropout is off at inference."""
    features = keras.Model(model.input, model.get_layer("dense_relu").output)
    kernel, bias = model.get_layer("probabilities").get_weights()
    return features.predict(as_batch(images), batch_size=1024, verbose=0) @ kernel + bias


def load_classifier(path: Path | str | None = None, model_dir: Path | str | None = None) -> Classifier:
    """The current model of `model_dir` (default model/), or the model file or version folder `path`.

    The metadata is checked (schema, version name, the hashes of the files it names)
    before Keras reads anything; every failure is a ModelUnavailableError with one line
    for a person. A model file with no metadata.json beside it loads with empty metadata.
    """
    if path is None:
        version = versions.resolve_current(Path(model_dir) if model_dir else None)
        return Classifier(load_keras_model(version.model_file), version.metadata, version.model_file)
    model_file, metadata = _model_file_and_metadata(Path(path))
    return Classifier(load_keras_model(model_file), metadata, model_file)


def _model_file_and_metadata(path: Path) -> tuple[Path, dict]:
    if not os.path.lexists(path):
        raise ModelUnavailableError(f"No model at {path}. Train one with `python -m digit_classifier train`.")
    real = Path(os.path.realpath(path))  # model/model.keras -> model/versions/<v>/model.keras: one version's files
    if real.is_dir():
        if os.path.lexists(real / versions.CURRENT):
            version = versions.resolve_current(real)
        else:
            version = versions.check_folder(real)
        return version.model_file, version.metadata
    if not real.is_file():
        raise ModelUnavailableError(f"No model at {path}: it is not a file.")
    if real.name == versions.MODEL_FILE and os.path.lexists(real.parent / versions.METADATA_FILE):
        return real, versions.check_folder(real.parent).metadata
    return real, {}


def load_keras_model(model_file: Path) -> keras.Model:
    if not zipfile.is_zipfile(model_file):
        raise ModelUnavailableError(f"{model_file} is not a Keras model: a .keras file is a zip archive, this is not one.")
    try:
        return keras.models.load_model(model_file, compile=False)
    except Exception as error:  # Keras raises many kinds (ValueError, KeyError, OSError, zipfile errors ...)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelUnavailableError(f"{model_file} cannot be loaded as a Keras model: {first}") from None


def save_version(model: keras.Model, metadata: dict, model_dir: Path) -> versions.Version:
    """Save `model` (weights and architecture, no optimizer state) and its LiteRT export as the new
    version metadata["version"], with the export's check on MNIST test in metadata["litert_export"].

    The optimizer's moment estimates would double the file size and are not
    needed: fine-tuning starts a fresh optimizer at a low learning rate.
    The version is written as one unit (see versions.save_version); it is not made current here.
    An export that does not give Keras' answers is an error: nothing is saved.
    """
    # Architecture and weights only: a clone would carry the training configuration, and with it
    # the optimizer's moment estimates (a 5.7 MB file instead of 1.9 MB).
    inference_copy = keras.Model.from_config(model.get_config())
    inference_copy.set_weights(model.get_weights())
    content = export_litert(inference_copy)
    check = check_export(inference_copy, content)
    if check is not None and not check.passed:
        raise versions.ModelStoreError(
            f"The LiteRT export of {metadata.get('version')} disagrees with Keras on MNIST test: {check.as_json()}; nothing was saved."
        )

    def write_files(folder: Path) -> None:
        inference_copy.save(folder / versions.MODEL_FILE)
        (folder / versions.LITERT_FILE).write_bytes(content)

    metadata = {**metadata, "litert_export": check.as_json() if check else None}
    return versions.save_version(Path(model_dir), metadata, write_files)


def export_litert(model: keras.Model) -> bytes:
    """The model as a TFLite flatbuffer for LiteRT (float32, no quantisation: answers as Keras gives them).

    Takes about 2 s for the committed model; the converter prints its trace of the saved
    function to stdout and its MLIR passes to stderr, which would bury `train`'s output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with _process_output_silenced():
        return converter.convert()


@dataclass(frozen=True)
class ExportCheck:
    """Keras and LiteRT on every MNIST test image."""

    images: int
    labels_identical: bool
    differing_labels: int
    max_probability_difference: float

    @property
    def passed(self) -> bool:
        return self.max_probability_difference <= EXPORT_TOLERANCE

    def as_json(self) -> dict:
        return {
            "check": "MNIST test", "images": self.images, "labels_identical": self.labels_identical,
            "differing_labels": self.differing_labels, "max_probability_difference": self.max_probability_difference,
            "tolerance": EXPORT_TOLERANCE,
        }


def check_export(model: keras.Model, content: bytes, images: np.ndarray | None = None) -> ExportCheck | None:
    """Compare the export with the Keras model on MNIST test (or `images`); None when LiteRT is not installed."""
    if not litert_available():
        return None
    if images is None:
        images = data.to_model_input(data.load_split("test").images)
    expected = Classifier(model).probabilities(images)
    found = LiteRTClassifier(content).probabilities(images)
    differing = int(np.sum(expected.argmax(1) != found.argmax(1)))
    difference = float(np.max(np.abs(expected - found))) if len(images) else 0.0
    return ExportCheck(len(images), differing == 0, differing, float(f"{difference:.3g}"))


@contextlib.contextmanager
def _process_output_silenced():
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            # Python-level prints too: in a Jupyter kernel sys.stdout is not file descriptor 1.
            with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
                yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what Python buffered while silenced goes to /dev/null too
        for fd, copy in ((1, saved[0]), (2, saved[1])):
            os.dup2(copy, fd)
            os.close(copy)

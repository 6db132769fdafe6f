"""The CNN: build it, save it with its metadata, load it, call it.

The architecture is the classic "two VGG blocks" MNIST network with batch
normalisation and dropout: small enough to train in minutes on two CPU cores,
accurate enough (with augmentation) to pass 99.6 % on the MNIST test set.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, versions
from .quiet_tensorflow import keras, tf
from .versions import ModelUnavailableError

CONV_WIDTHS = (32, 64)  # filters in each of the two blocks of two 3x3 convolutions
DENSE_UNITS = 128
DROPOUT = 0.4


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
        images = np.asarray(images, dtype=np.float32)
        single = (config.IMAGE_SIZE, config.IMAGE_SIZE)
        if images.shape in (single, single + (1,)):
            images = images[None]
        if images.ndim == 3:
            images = images[..., None]
        if len(images) == 0:
            return np.zeros((0, config.NUM_CLASSES), dtype=np.float32)
        chunks = [self._call(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks)


def load_classifier(path: Path | str | None = None, model_dir: Path | str | None = None) -> Classifier:
    """The current model of `model_dir` (default model/), or the model file or version folder `path`.

    The metadata is checked (schema, version name, the hashes of the files it names)
    before Keras reads anything; every failure is a ModelUnavailableError with one line
    for a person. A model file with no metadata.json beside it loads with empty metadata.
    """
    if path is None:
        version = versions.resolve_current(Path(model_dir) if model_dir else None)
        return Classifier(_load_keras(version.model_file), version.metadata, version.model_file)
    model_file, metadata = _model_file_and_metadata(Path(path))
    return Classifier(_load_keras(model_file), metadata, model_file)


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


def _load_keras(model_file: Path) -> keras.Model:
    if not zipfile.is_zipfile(model_file):
        raise ModelUnavailableError(f"{model_file} is not a Keras model: a .keras file is a zip archive, this is not one.")
    try:
        return keras.models.load_model(model_file, compile=False)
    except Exception as error:  # Keras raises many kinds (ValueError, KeyError, OSError, zipfile errors ...)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelUnavailableError(f"{model_file} cannot be loaded as a Keras model: {first}") from None


def save_version(model: keras.Model, metadata: dict, model_dir: Path) -> versions.Version:
    """Save `model` (weights and architecture, no optimizer state) as the new version metadata["version"].

    The optimizer's moment estimates would double the file size and are not
    needed: fine-tuning starts a fresh optimizer at a low learning rate.
    The version is written as one unit (see versions.save_version); it is not made current here.
    """
    inference_copy = keras.models.clone_model(model)
    inference_copy.set_weights(model.get_weights())
    return versions.save_version(Path(model_dir), metadata, lambda folder: inference_copy.save(folder / versions.MODEL_FILE))

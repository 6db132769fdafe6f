"""The CNN: build it, save it with its metadata, load it, call it.

The architecture is the classic "two VGG blocks" MNIST network with batch
normalisation and dropout: small enough to train in minutes on two CPU cores,
accurate enough (with augmentation) to pass 99.6 % on the MNIST test set.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


import numpy as np

from . import config
from .quiet_tensorflow import keras, tf
from .atomic import atomic_write_bytes
from .versions import metadata_file_for

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


def load_metadata(model_file: Path) -> dict:
    meta = metadata_file_for(model_file)
    return json.loads(meta.read_text()) if meta.is_file() else {}


def load_classifier(path: Path | str | None = None) -> Classifier:
    """Load `model/model.keras` (or `path`) with its metadata."""
    path = Path(path) if path else config.model_path()
    if not path.is_file():
        raise FileNotFoundError(f"No model at {path}. Train one with `python -m digit_classifier train`.")
    model = keras.models.load_model(path, compile=False)
    return Classifier(model, load_metadata(path), path)


def save_model(model: keras.Model, metadata: dict, model_file: Path) -> None:
    """Save the weights and architecture (no optimizer state) and the metadata, each atomically.

    The optimizer's moment estimates would double the file size and are not
    needed: fine-tuning starts a fresh optimizer at a low learning rate.
    """
    model_file = Path(model_file)
    inference_copy = keras.models.clone_model(model)
    inference_copy.set_weights(model.get_weights())
    model_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_file.parent) as tmp:
        staged = Path(tmp) / "model.keras"
        inference_copy.save(staged)
        os.replace(staged, model_file)
    atomic_write_bytes(metadata_file_for(model_file), (json.dumps(metadata, indent=2) + "\n").encode())

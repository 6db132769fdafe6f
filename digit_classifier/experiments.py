"""Fine-tuning with one piece taken away, to show in notebook 04 why the piece is there.

`finetune_without_replay` is `finetune.train_on_feedback` with other batches: the same steps, learning rate and
schedule, augmentation and frozen batch normalisation, and the same corrections in each batch
(`finetune.FEEDBACK_PER_BATCH` of them), but nothing else in the batch.
"""

from __future__ import annotations

import numpy as np

from . import config
from .finetune import EPOCHS, feedback_indices, indexed_batches, train_on_feedback
from .quiet_tensorflow import keras, tf


def corrections_only_batches(x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> tf.data.Dataset:
    """`steps` augmented batches of FEEDBACK_PER_BATCH corrections each, cycled in shuffled order."""
    return indexed_batches(x, y, feedback_indices(len(x), steps, np.random.default_rng(seed)))


def finetune_without_replay(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, seed: int = config.SEED) -> None:
    """Fine-tune `model` in place on the corrections (x: (n, 28, 28, 1), y: labels) alone."""
    train_on_feedback(model, x, y, epochs, seed=seed, batches=corrections_only_batches)

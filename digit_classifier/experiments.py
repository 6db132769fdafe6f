"""Fine-tuning with one piece taken away, to show in notebook 04 why the piece is there.

`finetune_without_replay` is `finetune.train_on_feedback` without the replayed images: the same steps, learning
rate and schedule, augmentation and frozen batch normalisation, and the same corrections in each batch
(`finetune.FEEDBACK_PER_BATCH` of them), but nothing else in the batch.
"""

from __future__ import annotations

import math

import numpy as np

from . import config
from .finetune import EPOCHS, FEEDBACK_PER_BATCH, LEARNING_RATE, _set_batch_norm_trainable, steps_per_epoch
from .quiet_tensorflow import keras, tf
from .train import augment, soft_targets, without_autotuner


def corrections_only_batches(x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> tf.data.Dataset:
    """`steps` augmented batches of FEEDBACK_PER_BATCH corrections each, cycled in shuffled order."""
    rng = np.random.default_rng(seed)
    rounds = math.ceil(steps * FEEDBACK_PER_BATCH / len(x))
    order = np.concatenate([rng.permutation(len(x)) for _ in range(rounds)])[: steps * FEEDBACK_PER_BATCH]
    indices = order.reshape(steps, FEEDBACK_PER_BATCH).astype(np.int32)
    images, targets = tf.constant(x), tf.constant(soft_targets(y))
    return without_autotuner(
        tf.data.Dataset.from_tensor_slices(indices)
        .map(lambda batch: (augment(tf.gather(images, batch)), tf.gather(targets, batch)))
        .prefetch(tf.data.AUTOTUNE)
    )


def finetune_without_replay(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, seed: int = config.SEED) -> None:
    """Fine-tune `model` in place on the corrections (x: (n, 28, 28, 1), y: labels) alone."""
    keras.utils.set_random_seed(seed)
    steps = steps_per_epoch(len(x))
    _set_batch_norm_trainable(model, False)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy")
    model.fit(corrections_only_batches(x, y, epochs * steps, seed), epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    _set_batch_norm_trainable(model, True)

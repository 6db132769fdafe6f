"""Train the CNN on MNIST: augmentation, a learning-rate schedule, a validation split.

The pipeline reads as the steps themselves: load the verified data, hold out a
validation split from the *training* set (the test set is never used to choose
anything), augment each batch, train with warm-up + cosine decay, evaluate once
on the test set, save the model with its provenance.
"""

from __future__ import annotations

import math
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import config, data, nondigits
from .calibration import CalibrationFit, fit_calibration
from .quiet_tensorflow import keras, tf
from .metadata import BaseTraining, VersionMetadata
from .model import build_cnn, save_version
from .preprocess import PREPROCESSING_VERSION
from .timestamps import format_utc
from .versions import promote_version

EPOCHS = 15
BATCH_SIZE = 128
VALIDATION_SIZE = 5_000
PEAK_LEARNING_RATE = 3e-3
WARMUP_EPOCHS = 1
# Outlier exposure: generated non-digits (letters, signs, scribbles ...) trained towards equal
# probabilities for the ten digits. 9,000 beside 55,000 digits is 14 % of what each epoch sees;
# 1,000 others (nondigits.validation_images) are where the status thresholds are chosen.
NON_DIGITS = 9_000
NON_DIGIT_VALIDATION = 1_000
NON_DIGIT_SHARE = NON_DIGITS / (NON_DIGITS + 60_000 - VALIDATION_SIZE)  # of the images an epoch sees (fine-tuning replays as many)

# Augmentation: what people's digits do that MNIST's do not.
MAX_ROTATION_DEGREES = 12
MAX_ZOOM = 0.12  # +-12 % scale
MAX_SHIFT_PIXELS = 2.5
MAX_SHEAR = 0.15
THICKNESS_PROBABILITY = 0.4  # share of images made thicker or thinner


def _random_affine(batch: tf.Tensor) -> tf.Tensor:
    """Rotate, scale, shear and shift each image about its centre, in one resampling."""
    n = tf.shape(batch)[0]
    angle = tf.random.uniform([n], -1.0, 1.0) * (MAX_ROTATION_DEGREES * math.pi / 180)
    scale = 1.0 + tf.random.uniform([n], -MAX_ZOOM, MAX_ZOOM)
    shear = tf.random.uniform([n], -MAX_SHEAR, MAX_SHEAR)
    shift = tf.random.uniform([n, 2], -MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # Output pixel (x, y) samples input at A @ (x - c, y - c) + c - shift.
    a0, a1 = cos, -sin + shear * cos
    b0, b1 = sin, cos + shear * sin
    c = (config.IMAGE_SIZE - 1) / 2.0
    a2 = c - a0 * c - a1 * c - shift[:, 0]
    b2 = c - b0 * c - b1 * c - shift[:, 1]
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=batch,
        transforms=transforms,
        output_shape=[config.IMAGE_SIZE, config.IMAGE_SIZE],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _random_thickness(batch: tf.Tensor) -> tf.Tensor:
    """Make some strokes thicker (grey dilation) and some thinner (grey erosion), by a random amount."""
    n = tf.shape(batch)[0]
    thicker = tf.nn.max_pool2d(batch, 3, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-batch, 2, 1, "SAME")
    amount = tf.random.uniform([n, 1, 1, 1], 0.3, 1.0)
    choice = tf.random.uniform([n, 1, 1, 1])
    half = THICKNESS_PROBABILITY / 2
    target = tf.where(choice < half, thicker, tf.where(choice < THICKNESS_PROBABILITY, thinner, batch))
    return batch + amount * (target - batch)


def augment(batch: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(_random_affine(_random_thickness(batch)), 0.0, 1.0)


def soft_targets(labels: np.ndarray) -> np.ndarray:
    """Integer labels -> training targets: one-hot for a digit, 1/10 for each digit for NOT_A_DIGIT_LABEL."""
    labels = np.asarray(labels)
    targets = np.zeros((len(labels), config.NUM_CLASSES), dtype=np.float32)
    is_digit = labels != config.NOT_A_DIGIT_LABEL
    targets[np.flatnonzero(is_digit), labels[is_digit]] = 1.0
    targets[~is_digit] = 1.0 / config.NUM_CLASSES
    return targets


@keras.saving.register_keras_serializable(package="digit_classifier")
class DigitAccuracy(keras.metrics.Metric):
    """Accuracy over the digits of a batch only (a non-digit's target has no right answer)."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hits = self.add_weight(name="hits", initializer="zeros")
        self.total = self.add_weight(name="total", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        is_digit = ops.max(y_true, axis=-1) > 0.5
        hit = ops.logical_and(ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1)), is_digit)
        self.hits.assign_add(ops.sum(ops.cast(hit, "float32")))
        self.total.assign_add(ops.sum(ops.cast(is_digit, "float32")))

    def result(self):
        return self.hits / keras.ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.hits.assign(0.0)
        self.total.assign(0.0)


def split_train_validation(images: np.ndarray, labels: np.ndarray, validation_size: int, seed: int):
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = order[:validation_size], order[validation_size:]
    return (images[train], labels[train]), (images[val], labels[val])


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, training: bool, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training:
        ds = ds.map(lambda images, labels: (augment(images), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return without_autotuner(ds.prefetch(tf.data.AUTOTUNE))


def without_autotuner(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Switch off tf.data's autotuning thread (AUTOTUNE then means: as many as there are cores).

    That thread sleeps between optimisation rounds, for up to a minute as a run
    goes on, and destroying an iterator waits for it to wake: Keras makes a new
    iterator every epoch, so most epochs began with all threads asleep for
    30-35 s (81 s instead of 47 s on 2 cores), and fit() waited as long again
    at the end. Epochs are as fast without it.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def learning_rate_schedule(steps_per_epoch: int, epochs: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to the peak, then cosine decay to zero at the last step."""
    warmup = min(WARMUP_EPOCHS * steps_per_epoch, max(epochs * steps_per_epoch - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=PEAK_LEARNING_RATE / 10,
        decay_steps=max(epochs * steps_per_epoch - warmup, 1),
        warmup_target=PEAK_LEARNING_RATE,
        warmup_steps=warmup,
    )


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch (validation included)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def _accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x, batch_size=1024, verbose=0).argmax(1) == y))


def _probabilities(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=1024, verbose=0)


def mnist_validation(seed: int = config.SEED, validation_size: int = VALIDATION_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The validation split of MNIST's training set: what training held out, and what calibration is fitted on."""
    train_split = data.load_split("train")
    x_all, y_all = data.to_model_input(train_split.images), train_split.labels.astype(np.int32)
    return split_train_validation(x_all, y_all, validation_size, seed)[1]


def calibrate(model: keras.Model, x_val: np.ndarray, y_val: np.ndarray, seed: int = config.SEED, non_digits: int = NON_DIGIT_VALIDATION) -> CalibrationFit:
    """Fit the temperature on the validation digits and the status thresholds on them and `non_digits` validation non-digits."""
    held_out = nondigits.validation_images(non_digits, seed).images[..., None]
    return fit_calibration(_probabilities(model, x_val), y_val, _probabilities(model, held_out))


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train(
    out_dir: Path | None = None,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    train_limit: int | None = None,
    validation_size: int = VALIDATION_SIZE,
    seed: int = config.SEED,
    verbose: str | int = "auto",
    non_digits: int = NON_DIGITS,
) -> tuple[keras.Model, dict]:
    """Train from scratch on MNIST digits and `non_digits` generated non-digits, fit the calibration on
    the validation split, evaluate once on the test set, save as a new version of `out_dir` (default
    `model/`) and make it current."""
    out_dir = Path(out_dir) if out_dir else config.model_dir()
    keras.utils.set_random_seed(seed)
    trained_code = code_version()

    train_split, test_split = data.load_split("train"), data.load_split("test")
    x_all, y_all = data.to_model_input(train_split.images), train_split.labels.astype(np.int32)
    (x_train, y_train), (x_val, y_val) = split_train_validation(x_all, y_all, validation_size, seed)
    if train_limit:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    if train_limit:  # a tiny run keeps the full recipe's share of non-digits
        non_digits = min(non_digits, max(100, round(len(x_train) * NON_DIGIT_SHARE / (1 - NON_DIGIT_SHARE))))
    x_outliers = nondigits.training_images(non_digits, seed).images[..., None]
    x_fit = np.concatenate([x_train, x_outliers])
    y_fit = soft_targets(np.concatenate([y_train, np.full(len(x_outliers), config.NOT_A_DIGIT_LABEL)]))

    model = build_cnn()
    steps = math.ceil(len(x_fit) / batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate_schedule(steps, epochs)),
        loss="categorical_crossentropy",
        metrics=[DigitAccuracy()],
    )
    timer = EpochTimer()
    started = time.perf_counter()
    history = model.fit(
        make_dataset(x_fit, y_fit, batch_size, training=True, seed=seed),
        validation_data=make_dataset(x_val, soft_targets(y_val), 1024, training=False, seed=seed),
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself every epoch
        callbacks=[timer],
        verbose=verbose,
    )
    seconds = time.perf_counter() - started

    x_test, y_test = data.to_model_input(test_split.images), test_split.labels
    test_accuracy = _accuracy(model, x_test, y_test)
    # The final weights on the validation split: what Keras reports after the last epoch, measured as the test set is.
    validation_accuracy = _accuracy(model, x_val, y_val)
    # a tiny run (train_limit) validates on fewer non-digits, as it trains on fewer
    calibration = calibrate(model, x_val, y_val, seed, NON_DIGIT_VALIDATION if not train_limit else 100)

    created = datetime.now(timezone.utc)
    metadata = VersionMetadata(
        version=f"base-{created:%Y%m%d-%H%M%S}",
        kind="base",
        parent=None,
        created=format_utc(created),
        parameters=int(model.count_params()),
        training_seconds=round(seconds, 1),
        test_accuracy=test_accuracy,
        test_samples=int(len(y_test)),
        data_sha256=data.expected_checksums(),
        preprocessing_version=PREPROCESSING_VERSION,
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        code_version=trained_code,
        details=BaseTraining(
            epochs=epochs,
            batch_size=batch_size,
            train_samples=int(len(x_train)),
            validation_samples=int(len(x_val)),
            seconds_per_epoch=round(seconds / epochs, 1),
            epoch_seconds=[round(value, 1) for value in timer.seconds],
            validation_accuracy=validation_accuracy,
            history={key: [round(float(v), 5) for v in values] for key, values in history.history.items()},
            seed=seed,
            non_digits=int(len(x_outliers)),
        ),
        calibration=calibration.as_json(),
    ).as_json()
    save_version(model, metadata, out_dir)
    promote_version(out_dir, metadata["version"])  # the model it replaces stays one `rollback` away
    return model, metadata

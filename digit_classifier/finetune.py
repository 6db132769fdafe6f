"""Fine-tune the model on the corrections people collected in wrong_predictions/.

The loop, in the order it runs:

1. retrieve and 2. split the corrections (`feedback_set.py`: a hold-out of about 20 %
   of each label, chosen by content hash, when there are enough to measure anything);
3. train: from the BASE model (kind "base"), never from an earlier fine-tune, so
   the result does not depend on how often this ran. The feedback goes through
   `preprocess()`, is oversampled and augmented, and every batch also replays
   MNIST training digits and generated non-digits, as the base model was trained;
   low learning rate, few epochs, BatchNorm frozen; corrections in not_a_digit/
   are non-digits like the generated ones. The fine-tuned model's calibration
   (temperature, status thresholds) is fitted again on the validation split;
4. evaluate the current model (before) and the fine-tuned one (after) on the
   MNIST test set, the feedback hold-out and the feedback training part (the
   accuracy of their digits, and the share of their non-digits flagged);
5. save the result as the version folder ``model/versions/<version>/`` and make
   it current only when MNIST test accuracy drops by at most MAX_MNIST_DROP_PP and
   hold-out accuracy does not drop.

``model/history.json`` keeps the versions the current one replaced, most recent
last: `versions.rollback()` restores the last of them.
`finetune_demo.simulate()` runs the whole loop on digits from other writers
(optdigits) in temporary folders; the CLI (`__main__.py`) renders the results as text.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from . import config, data, feedback, nondigits
from .calibration import Calibration, CalibrationFit
from .feedback_set import FeedbackSummary, as_arrays, load_feedback, split_holdout, summarize_feedback
from .metadata import FinetuneSettings, Finetuning, VersionMetadata
from .model import Classifier, load_classifier, save_version
from .preprocess import PREPROCESSING_VERSION
from .quiet_tensorflow import keras, tf
from .timestamps import format_utc
from .train import NON_DIGIT_SHARE, augment, calibrate, code_version, mnist_validation, soft_targets, without_autotuner
from .versions import Version, find_base, new_version_name, promote_version

MAX_MNIST_DROP_PP = 0.2  # promotion: MNIST test accuracy may fall by at most this many percentage points ...
MIN_HOLDOUT_GAIN_PP = 0.0  # ... and feedback hold-out accuracy must rise by at least this many (0: must not drop)


# Train -----------------------------------------------------------------------------------

EPOCHS = 3
LEARNING_RATE = 2e-4  # a fifteenth of the base training's peak, decayed to zero
BATCH_SIZE = 128
FEEDBACK_PER_BATCH = 8  # the other 120 images of each batch are replayed: MNIST training digits and generated non-digits
REPLAY_NON_DIGITS = 1_500  # generated non-digits to replay from (the base model's training stream), about 6 s to draw
MIN_STEPS_PER_EPOCH = 60  # a small store is cycled through (oversampled) this many batches per epoch
MAX_STEPS_PER_EPOCH = 150  # a large one is sampled: cost stays bounded (about 0.12 s a step on 2 cores)


def steps_per_epoch(n_feedback: int) -> int:
    """Enough batches to show each feedback image once per epoch, within the bounds above."""
    wanted = math.ceil(n_feedback / FEEDBACK_PER_BATCH)
    return int(np.clip(wanted, MIN_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH))


def _set_batch_norm_trainable(model: keras.Model, trainable: bool) -> None:
    """In Keras 3 a BatchNormalization layer with trainable=False also runs in inference mode."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = trainable


def replay_label_shares(y_feedback: np.ndarray) -> np.ndarray:
    """Shares of the eleven labels (ten digits, then not-a-digit) for the replayed images, so that each
    whole batch holds digits and non-digits as the base model's training did, the digits uniform.

    Feedback holds mistakes, so its labels are skewed towards the digits the model
    misreads; with uniform replay it would learn to answer those digits more often everywhere.
    """
    labels = config.NUM_CLASSES + 1
    wanted_per_batch = np.append(np.full(config.NUM_CLASSES, BATCH_SIZE * (1 - NON_DIGIT_SHARE) / config.NUM_CLASSES), BATCH_SIZE * NON_DIGIT_SHARE)
    feedback_counts = FEEDBACK_PER_BATCH * np.bincount(y_feedback, minlength=labels)[:labels] / len(y_feedback)
    wanted = np.maximum(wanted_per_batch - feedback_counts, 0.0)
    return wanted / wanted.sum()


def mixed_batches(x_feedback: np.ndarray, y_feedback: np.ndarray, steps: int, seed: int) -> tf.data.Dataset:
    """`steps` augmented batches: FEEDBACK_PER_BATCH feedback images (cycled in shuffled order), the rest replay."""
    replay = data.load_split("train")
    replay_non_digits = nondigits.training_images(REPLAY_NON_DIGITS, seed).images[..., None]
    pool_x = np.concatenate([x_feedback, data.to_model_input(replay.images), replay_non_digits])
    pool_y = np.concatenate([y_feedback, replay.labels.astype(np.int32), np.full(len(replay_non_digits), config.NOT_A_DIGIT_LABEL, np.int32)])
    rng = np.random.default_rng(seed)
    feedback_part = feedback_indices(len(x_feedback), steps, rng)
    replay_labels = rng.choice(config.NUM_CLASSES + 1, size=(steps, BATCH_SIZE - FEEDBACK_PER_BATCH), p=replay_label_shares(y_feedback))
    replay_part = np.empty_like(replay_labels)
    replay_pool_labels = pool_y[len(x_feedback) :]
    for label in feedback.LABELS:
        chosen = replay_labels == label
        replay_part[chosen] = len(x_feedback) + rng.choice(np.flatnonzero(replay_pool_labels == label), size=chosen.sum())
    return indexed_batches(pool_x, pool_y, np.concatenate([feedback_part, replay_part], axis=1))


def feedback_indices(n_feedback: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, FEEDBACK_PER_BATCH) indices of the feedback images: all of them in shuffled order, again and again."""
    rounds = math.ceil(steps * FEEDBACK_PER_BATCH / n_feedback)
    order = np.concatenate([rng.permutation(n_feedback) for _ in range(rounds)])
    return order[: steps * FEEDBACK_PER_BATCH].reshape(steps, FEEDBACK_PER_BATCH)


def indexed_batches(x: np.ndarray, y: np.ndarray, indices: np.ndarray) -> tf.data.Dataset:
    """One augmented batch of (x, soft targets of y) per row of `indices`."""
    images, targets = tf.constant(x), tf.constant(soft_targets(y))
    return without_autotuner(
        tf.data.Dataset.from_tensor_slices(indices.astype(np.int32))
        .map(lambda batch: (augment(tf.gather(images, batch)), tf.gather(targets, batch)))
        .prefetch(tf.data.AUTOTUNE)
    )


def train_on_feedback(
    model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, steps: int | None = None, seed: int = config.SEED, verbose: int = 0,
    batches: Callable[[np.ndarray, np.ndarray, int, int], tf.data.Dataset] = mixed_batches,
) -> FinetuneSettings:
    """Fine-tune `model` in place on (x, y) mixed with MNIST replay; -> the settings used.

    `batches(x, y, steps, seed)` makes the training batches (default `mixed_batches`); notebook 04 passes
    another to fine-tune without replay, everything else equal."""
    keras.utils.set_random_seed(seed)
    steps = steps or steps_per_epoch(len(x))
    _set_batch_norm_trainable(model, False)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy")
    model.fit(batches(x, y, epochs * steps, seed), epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=verbose)
    _set_batch_norm_trainable(model, True)
    return FinetuneSettings(epochs, steps, BATCH_SIZE, FEEDBACK_PER_BATCH, LEARNING_RATE, "frozen (inference mode)", seed)


# Evaluate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationSets:
    """(images, labels) of the three sets every model is measured on."""

    mnist_test: tuple[np.ndarray, np.ndarray]
    feedback_holdout: tuple[np.ndarray, np.ndarray]
    feedback_train: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Measurement:
    """One model on the three sets: accuracy on the digits (None for none) and size of each set; for the
    feedback sets also the share of their non-digits (not_a_digit/) the model flags, and how many there are."""

    model_version: str
    mnist_test_accuracy: float
    mnist_test_samples: int
    feedback_holdout_accuracy: float | None
    feedback_holdout_samples: int
    feedback_train_accuracy: float | None
    feedback_train_samples: int
    feedback_holdout_not_a_digit_rate: float | None = None
    feedback_holdout_non_digits: int = 0
    feedback_train_not_a_digit_rate: float | None = None
    feedback_train_non_digits: int = 0


def _scores(classifier: Classifier, x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None, int]:
    """(accuracy on the digits, share of the non-digits flagged, number of non-digits)."""
    calibration = Calibration.of(classifier)
    calibrated = calibration.calibrate(classifier.probabilities(x)) if len(y) else np.zeros((0, config.NUM_CLASSES))
    is_digit = y != config.NOT_A_DIGIT_LABEL
    accuracy = float(np.mean(calibrated[is_digit].argmax(1) == y[is_digit])) if is_digit.any() else None
    flagged = float(np.mean(calibration.flagged(calibrated[~is_digit]))) if (~is_digit).any() else None
    return accuracy, flagged, int((~is_digit).sum())


def measure(classifier: Classifier, sets: EvaluationSets) -> Measurement:
    """Accuracy and size of each of the three sets, and the feedback sets' not-a-digit rates, for one model."""
    mnist, _, _ = _scores(classifier, *sets.mnist_test)
    holdout, holdout_flagged, holdout_non_digits = _scores(classifier, *sets.feedback_holdout)
    train, train_flagged, train_non_digits = _scores(classifier, *sets.feedback_train)
    return Measurement(
        classifier.version, mnist, len(sets.mnist_test[1]), holdout, len(sets.feedback_holdout[1]), train, len(sets.feedback_train[1]),
        holdout_flagged, holdout_non_digits, train_flagged, train_non_digits,
    )


def _mnist_test() -> tuple[np.ndarray, np.ndarray]:
    test = data.load_split("test")
    return data.to_model_input(test.images), test.labels.astype(np.int32)


# Promotion (versions, installing and rollback live in versions.py) ----------------------


@dataclass
class FinetuneResult:
    """What one run did; `as_json()` is what `finetune --json` prints."""

    feedback_dir: str
    feedback: FeedbackSummary
    warnings: list[str]
    message: str = ""
    before: Measurement | None = None
    after: Measurement | None = None
    reason: str | None = None  # of the promotion decision
    promoted: bool = False
    version: str | None = None  # the saved version, None when nothing was saved
    dry_run: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # per step

    def as_json(self) -> dict:
        return asdict(self)


def promotion_decision(before: Measurement, after: Measurement, max_mnist_drop: float, min_holdout_gain: float) -> tuple[bool, str]:
    """Promote only when MNIST barely moves and the hold-out does not get worse; -> (promote, why)."""
    mnist_change = 100 * (after.mnist_test_accuracy - before.mnist_test_accuracy)
    reasons = [f"MNIST test {mnist_change:+.2f} pp (allowed: down to {-max_mnist_drop:+.2f} pp)"]
    promote = -mnist_change <= max_mnist_drop + 1e-9
    if after.feedback_holdout_accuracy is None:
        reasons.append("feedback hold-out too small to measure, not checked")
    else:
        holdout_change = 100 * (after.feedback_holdout_accuracy - before.feedback_holdout_accuracy)
        reasons.append(f"feedback hold-out {holdout_change:+.2f} pp (required: {min_holdout_gain:+.2f} pp or more)")
        promote &= holdout_change >= min_holdout_gain - 1e-9
    if after.feedback_holdout_not_a_digit_rate is not None and before.feedback_holdout_not_a_digit_rate is not None:
        flagged_change = 100 * (after.feedback_holdout_not_a_digit_rate - before.feedback_holdout_not_a_digit_rate)
        reasons.append(f"hold-out non-digits flagged {flagged_change:+.2f} pp (required: no drop)")
        promote &= flagged_change >= -1e-9
    return promote, "; ".join(reasons)


def finetune(
    feedback_root: Path | None = None,
    model_dir: Path | None = None,
    *,
    epochs: int = EPOCHS,
    steps: int | None = None,
    max_mnist_drop: float = MAX_MNIST_DROP_PP,
    min_holdout_gain: float = MIN_HOLDOUT_GAIN_PP,
    dry_run: bool = False,
    seed: int = config.SEED,
    verbose: int = 0,
) -> FinetuneResult:
    """Retrieve, split, train from the base model, evaluate before/after, save a version, maybe promote."""
    feedback_root = Path(feedback_root or config.feedback_dir())
    model_dir = Path(model_dir or config.model_dir())
    clock = _Clock()

    collected = load_feedback(feedback_root)
    train_part, holdout = split_holdout(collected.samples)
    result = FinetuneResult(str(feedback_root), summarize_feedback(collected, train_part, holdout), collected.warnings(), dry_run=dry_run)
    clock.lap("retrieve")
    if not collected.samples:
        result.message = f"No usable feedback in {feedback_root}: nothing to fine-tune. The current model stays."
        result.seconds = clock.laps
        return result

    sets = EvaluationSets(_mnist_test(), as_arrays(holdout), as_arrays(train_part))
    current = load_classifier(model_dir=model_dir)
    base = find_base(model_dir)
    result.before = measure(current, sets)
    clock.lap("evaluate_before")

    model = current.model if current.version == base.name else load_classifier(base.path).model
    settings = train_on_feedback(model, *sets.feedback_train, epochs=epochs, steps=steps, seed=seed, verbose=verbose)
    calibration = calibrate(model, *mnist_validation(seed), seed)
    clock.lap("train")
    created = datetime.now(timezone.utc)
    version = "not saved (dry run)" if dry_run else new_version_name(model_dir, created, collected.sha256)
    result.after = measure(Classifier(model, {"version": version, "calibration": calibration.as_json()}), sets)
    clock.lap("evaluate_after")

    promote, result.reason = promotion_decision(result.before, result.after, max_mnist_drop, min_holdout_gain)
    if dry_run:
        result.message = f"Dry run: would {'promote the result' if promote else 'keep the current model'}; nothing written: {result.reason}."
        result.seconds = clock.laps
        return result

    metadata = _version_metadata(
        result, version=version, created=created, base=base, replaces=current.version, settings=settings, promoted=promote, clock=clock,
        calibration=calibration,
    )
    save_version(model, metadata.as_json(), model_dir)
    result.version = version
    if promote:
        promote_version(model_dir, version)
        result.promoted = True
        result.message = f"Promoted {version} to the current model ({model_dir / 'versions' / version}): {result.reason}."
    else:
        result.message = f"Kept {current.version} as the current model; {version} is saved but not promoted: {result.reason}."
    clock.lap("save")
    result.seconds = clock.laps
    return result


def _version_metadata(
    result: FinetuneResult, *, version: str, created: datetime, base: Version, replaces: str,
    settings: FinetuneSettings, promoted: bool, clock: _Clock, calibration: CalibrationFit,
) -> VersionMetadata:
    summary = result.feedback
    return VersionMetadata(
        version=version,
        kind="finetuned",
        parent=base.name,
        created=format_utc(created),
        parameters=base.metadata.get("parameters"),
        training_seconds=round(clock.laps.get("train", 0.0), 1),
        test_accuracy=result.after.mnist_test_accuracy,
        test_samples=result.after.mnist_test_samples,
        data_sha256=base.metadata.get("data_sha256"),
        preprocessing_version=PREPROCESSING_VERSION,
        tensorflow_version=tf.__version__,
        keras_version=keras.__version__,
        code_version=code_version(),
        details=Finetuning(
            replaces=replaces,
            feedback=dict(
                count=summary.count, train=summary.train, holdout=summary.holdout,
                per_label=summary.per_label, per_source=summary.per_source, sha256=summary.sha256,
            ),
            finetune=settings,
            metrics=dict(before=asdict(result.before), after=asdict(result.after)),
            promoted=promoted,
            promotion_reason=result.reason,
        ),
        calibration=calibration.as_json(),
    )


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now

"""Fine-tune the model on the corrections people collected in wrong_predictions/.

The loop, in the order it runs:

1. retrieve: every image in ``wrong_predictions/<d>/`` is a sample of digit d,
   saved by the app or dropped in by hand. Unusable files, links and special files
   are skipped and listed; the same content twice counts once; nothing in the
   folder is ever changed;
2. split: about 20 % of each label, chosen by content hash (so an image never
   moves between the two parts as the store grows), is held out for evaluation,
   when there are enough samples for that to measure anything;
3. train: from the BASE model (kind "base"), never from an earlier fine-tune, so
   the result does not depend on how often this ran. The feedback goes through
   `preprocess()`, is oversampled and augmented, and every batch also replays
   MNIST training digits; low learning rate, few epochs, BatchNorm frozen;
4. evaluate the current model (before) and the fine-tuned one (after) on the
   MNIST test set, the feedback hold-out and the feedback training part;
5. save the result as the version folder ``model/versions/<version>/`` and make
   it current only when MNIST test accuracy drops by at most MAX_MNIST_DROP_PP and
   hold-out accuracy does not drop.

``model/history.json`` keeps the versions the current one replaced, most recent
last: `versions.rollback()` restores the last of them.
`simulate()` runs the whole loop on digits from other writers (optdigits) in
temporary folders, as `make finetune-demo` and notebook 04 show.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import config, data, feedback, realinputs
from .quiet_tensorflow import keras, tf
from .evaluate import accuracy_on, preprocess_all
from .model import Classifier, load_classifier, save_version
from .preprocess import PREPROCESSING_VERSION, PreprocessError, preprocess
from .train import augment, code_version, without_autotuner
from .versions import FinetuneError, find_base, new_version_name, promote_version

MAX_MNIST_DROP_PP = 0.2  # promotion: MNIST test accuracy may fall by at most this many percentage points ...
MIN_HOLDOUT_GAIN_PP = 0.0  # ... and feedback hold-out accuracy must rise by at least this many (0: must not drop)


# 1. Retrieve -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    label: int
    sha256: str  # of the file's bytes
    name: str  # "<label>/<file name>"
    source: str  # "draw" or "upload" from the app's metadata, "by hand" without metadata
    image: np.ndarray  # 28x28 float32, the model's input


@dataclass
class Feedback:
    samples: list[Sample]
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"}: unreadable, or not a digit
    duplicates: int = 0  # extra copies of content already counted
    conflicts: list[dict] = field(default_factory=list)  # {"files", "labels"}: one content under several labels

    @property
    def sha256(self) -> str:
        """One hash for the whole set: the sorted (label, content hash) pairs."""
        pairs = sorted(f"{sample.label} {sample.sha256}" for sample in self.samples)
        return hashlib.sha256("\n".join(pairs).encode()).hexdigest()

    def per_label(self) -> dict[str, int]:
        return {str(digit): sum(s.label == digit for s in self.samples) for digit in range(config.NUM_CLASSES)}

    def per_source(self) -> dict[str, int]:
        sources = sorted({s.source for s in self.samples})
        return {source: sum(s.source == source for s in self.samples) for source in sources}

    def warnings(self) -> list[str]:
        lines = []
        if self.skipped:
            listed = "; ".join(f"{entry['file']} ({entry['reason']})" for entry in self.skipped)
            lines.append(f"skipped {len(self.skipped)} unusable file(s): {listed}")
        for conflict in self.conflicts:
            lines.append(f"skipped the same image filed under different labels: {', '.join(conflict['files'])}")
        return lines


def load_feedback(root: Path | None = None) -> Feedback:
    """Every image in <root>/0 ... <root>/9 as a labelled, preprocessed sample. Reads only.

    Files are read through the store (never through a link) and preprocessed from those
    bytes, so nothing outside the store is read even if a file is swapped meanwhile.
    """
    listing = feedback.scan(root)
    skipped = [{"file": entry.name, "reason": entry.reason} for entry in listing.skipped]
    groups: dict[str, list[tuple[feedback.FeedbackItem, bytes]]] = {}
    for item in sorted(listing.items, key=lambda item: item.id):
        try:
            content = feedback.read_image(item)
        except OSError as error:
            skipped.append({"file": item.id, "reason": f"cannot be read: {error.strerror or error}"})
            continue
        groups.setdefault(hashlib.sha256(content).hexdigest(), []).append((item, content))

    samples, conflicts, duplicates = [], [], 0
    for sha256, members in groups.items():
        labels = sorted({item.label for item, _ in members})
        if len(labels) > 1:
            conflicts.append({"files": [item.id for item, _ in members], "labels": labels})
            continue
        duplicates += len(members) - 1
        item, content = members[0]
        try:
            image = preprocess(content)
        except PreprocessError as error:
            skipped.append({"file": item.id, "reason": str(error)})
            continue
        samples.append(Sample(item.label, sha256, item.id, str(item.metadata.get("source", "by hand")), image))
    samples.sort(key=lambda s: (s.label, s.sha256))
    return Feedback(samples, skipped, duplicates, conflicts)


# 2. Split --------------------------------------------------------------------------------

HOLDOUT_SHARE = 0.2  # share of each label held out for evaluation, chosen by content hash
MIN_LABEL_FOR_HOLDOUT = 5  # a label with fewer samples is used for training only
MIN_HOLDOUT = 10  # a smaller hold-out measures nothing: then everything trains


def _hash_fraction(sha256: str) -> float:
    """A content hash -> a stable number in [0, 1)."""
    return int(sha256[:12], 16) / 16**12


def split_holdout(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """-> (training part, hold-out part); the hold-out is empty when it would be too small to measure."""
    sizes = {label: sum(s.label == label for s in samples) for label in range(config.NUM_CLASSES)}
    held = [s for s in samples if sizes[s.label] >= MIN_LABEL_FOR_HOLDOUT and _hash_fraction(s.sha256) < HOLDOUT_SHARE]
    if len(held) < MIN_HOLDOUT or len(held) == len(samples):
        return list(samples), []
    held_ids = {s.sha256 for s in held}
    return [s for s in samples if s.sha256 not in held_ids], held


def _arrays(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([s.image for s in samples]) if samples else np.zeros((0, 28, 28), np.float32)
    return images[..., None].astype(np.float32), np.array([s.label for s in samples], dtype=np.int32)


# 3. Train --------------------------------------------------------------------------------

EPOCHS = 3
LEARNING_RATE = 2e-4  # a fifteenth of the base training's peak, decayed to zero
BATCH_SIZE = 128
FEEDBACK_PER_BATCH = 8  # the other 120 images of each batch are replayed MNIST training digits
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
    """Label shares for the replayed digits that make each whole batch uniform over the ten digits.

    Feedback holds mistakes, so its labels are skewed towards the digits the model
    misreads; with uniform replay it would learn to answer those digits more often everywhere.
    """
    per_batch = BATCH_SIZE / config.NUM_CLASSES
    feedback_counts = FEEDBACK_PER_BATCH * np.bincount(y_feedback, minlength=config.NUM_CLASSES) / len(y_feedback)
    wanted = np.maximum(per_batch - feedback_counts, 0.0)
    return wanted / wanted.sum()


def mixed_batches(x_feedback: np.ndarray, y_feedback: np.ndarray, steps: int, seed: int) -> tf.data.Dataset:
    """`steps` augmented batches: FEEDBACK_PER_BATCH feedback images (cycled in shuffled order), the rest MNIST replay."""
    replay = data.load_split("train")
    pool_x = np.concatenate([x_feedback, data.to_model_input(replay.images)])
    pool_y = np.concatenate([y_feedback, replay.labels.astype(np.int32)])
    rng = np.random.default_rng(seed)
    rounds = math.ceil(steps * FEEDBACK_PER_BATCH / len(x_feedback))
    feedback_order = np.concatenate([rng.permutation(len(x_feedback)) for _ in range(rounds)])
    feedback_part = feedback_order[: steps * FEEDBACK_PER_BATCH].reshape(steps, FEEDBACK_PER_BATCH)
    replay_labels = rng.choice(config.NUM_CLASSES, size=(steps, BATCH_SIZE - FEEDBACK_PER_BATCH), p=replay_label_shares(y_feedback))
    replay_part = np.empty_like(replay_labels)
    for digit in range(config.NUM_CLASSES):
        chosen = replay_labels == digit
        replay_part[chosen] = len(x_feedback) + rng.choice(np.flatnonzero(replay.labels == digit), size=chosen.sum())
    indices = np.concatenate([feedback_part, replay_part], axis=1).astype(np.int32)
    images, labels = tf.constant(pool_x), tf.constant(pool_y)
    return without_autotuner(
        tf.data.Dataset.from_tensor_slices(indices)
        .map(lambda batch: (augment(tf.gather(images, batch)), tf.gather(labels, batch)))
        .prefetch(tf.data.AUTOTUNE)
    )


def train_on_feedback(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = EPOCHS, steps: int | None = None, seed: int = config.SEED, verbose: int = 0) -> dict:
    """Fine-tune `model` in place on (x, y) mixed with MNIST replay; -> the settings used."""
    keras.utils.set_random_seed(seed)
    steps = steps or steps_per_epoch(len(x))
    _set_batch_norm_trainable(model, False)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=epochs * steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    model.fit(mixed_batches(x, y, epochs * steps, seed), epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=verbose)
    _set_batch_norm_trainable(model, True)
    return {
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": BATCH_SIZE,
        "feedback_per_batch": FEEDBACK_PER_BATCH,
        "learning_rate": LEARNING_RATE,
        "batch_norm": "frozen (inference mode)",
        "seed": seed,
    }


# 4. Evaluate -----------------------------------------------------------------------------


def _accuracy(classifier: Classifier, x: np.ndarray, y: np.ndarray) -> float | None:
    return float(np.mean(classifier.probabilities(x).argmax(1) == y)) if len(y) else None


def measure(classifier: Classifier, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Accuracy and size of each of the three sets, for one model."""
    result = {"model_version": classifier.version}
    for name, (x, y) in sets.items():
        result[f"{name}_accuracy"] = _accuracy(classifier, x, y)
        result[f"{name}_samples"] = int(len(y))
    return result


def _mnist_test() -> tuple[np.ndarray, np.ndarray]:
    test = data.load_split("test")
    return data.to_model_input(test.images), test.labels.astype(np.int32)


# 5. Promotion (versions, installing and rollback live in versions.py) ----------------------


def promotion_decision(before: dict, after: dict, max_mnist_drop: float, min_holdout_gain: float) -> tuple[bool, str]:
    """Promote only when MNIST barely moves and the hold-out does not get worse; -> (promote, why)."""
    mnist_change = 100 * (after["mnist_test_accuracy"] - before["mnist_test_accuracy"])
    reasons = [f"MNIST test {mnist_change:+.2f} pp (allowed: down to {-max_mnist_drop:+.2f} pp)"]
    promote = -mnist_change <= max_mnist_drop + 1e-9
    if after["feedback_holdout_accuracy"] is None:
        reasons.append("feedback hold-out too small to measure, not checked")
    else:
        holdout_change = 100 * (after["feedback_holdout_accuracy"] - before["feedback_holdout_accuracy"])
        reasons.append(f"feedback hold-out {holdout_change:+.2f} pp (required: {min_holdout_gain:+.2f} pp or more)")
        promote &= holdout_change >= min_holdout_gain - 1e-9
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
) -> dict:
    """Retrieve, split, train from the base model, evaluate before/after, save a version, maybe promote."""
    feedback_root = Path(feedback_root or config.feedback_dir())
    model_dir = Path(model_dir or config.model_dir())
    clock = _Clock()

    collected = load_feedback(feedback_root)
    train_part, holdout = split_holdout(collected.samples)
    result = {
        "feedback_dir": str(feedback_root),
        "feedback": summarize_feedback(collected, train_part, holdout),
        "warnings": collected.warnings(),
        "before": None,
        "after": None,
        "promoted": False,
        "version": None,
        "dry_run": dry_run,
    }
    clock.lap("retrieve")
    if not collected.samples:
        result["message"] = f"No usable feedback in {feedback_root}: nothing to fine-tune. The current model stays."
        result["seconds"] = clock.laps
        return result

    sets = {"mnist_test": _mnist_test(), "feedback_holdout": _arrays(holdout), "feedback_train": _arrays(train_part)}
    current = load_classifier(model_dir=model_dir)
    base = find_base(model_dir)
    base_meta = base.metadata
    result["before"] = measure(current, sets)
    clock.lap("evaluate_before")

    model = current.model if current.version == base_meta.get("version") else load_classifier(base.path).model
    settings = train_on_feedback(model, *sets["feedback_train"], epochs=epochs, steps=steps, seed=seed, verbose=verbose)
    clock.lap("train")
    result["after"] = measure(Classifier(model, {"version": "candidate"}), sets)
    clock.lap("evaluate_after")

    promote, why = promotion_decision(result["before"], result["after"], max_mnist_drop, min_holdout_gain)
    result["reason"] = why
    if dry_run:
        result["after"]["model_version"] = "not saved (dry run)"
        result["message"] = f"Dry run: would {'promote the result' if promote else 'keep the current model'}; nothing written: {why}."
        result["seconds"] = clock.laps
        return result

    created = datetime.now(timezone.utc)
    version = new_version_name(model_dir, created, collected.sha256)
    result["after"]["model_version"] = version
    metadata = _version_metadata(version, created, base_meta, current.version, collected, result, settings, promote, clock)
    save_version(model, metadata, model_dir)
    result["version"] = version
    if promote:
        promote_version(model_dir, version)
        result["promoted"] = True
        result["message"] = f"Promoted {version} to the current model ({model_dir / 'versions' / version}): {why}."
    else:
        result["message"] = f"Kept {current.version} as the current model; {version} is saved but not promoted: {why}."
    clock.lap("save")
    result["seconds"] = clock.laps
    return result


def summarize_feedback(collected: Feedback, train_part: list[Sample], holdout: list[Sample]) -> dict:
    summary = {
        "count": len(collected.samples),
        "train": len(train_part),
        "holdout": len(holdout),
        "per_label": collected.per_label(),
        "per_source": collected.per_source(),
        "duplicates": collected.duplicates,
        "skipped": collected.skipped,
        "conflicts": collected.conflicts,
        "sha256": collected.sha256,
    }
    if collected.samples and not holdout:
        summary["holdout_note"] = (
            f"Only {len(collected.samples)} usable samples: too few to hold out a measurable evaluation set "
            f"(need {MIN_HOLDOUT} held out, about {math.ceil(MIN_HOLDOUT / HOLDOUT_SHARE)} samples), so all of them "
            "train and accuracy on unseen feedback is not measured."
        )
    return summary


def _version_metadata(version, created, base_meta, current_version, collected, result, settings, promoted, clock) -> dict:
    return {
        "version": version,
        "kind": "finetuned",
        "parent": base_meta.get("version"),
        "replaces": current_version,
        "created": created.isoformat(timespec="seconds"),
        "feedback": {key: result["feedback"][key] for key in ("count", "train", "holdout", "per_label", "per_source", "sha256")},
        "finetune": settings,
        "metrics": {"before": result["before"], "after": result["after"]},
        "promoted": promoted,
        "promotion_reason": result["reason"],
        "test_accuracy": result["after"]["mnist_test_accuracy"],
        "test_samples": result["after"]["mnist_test_samples"],
        "parameters": base_meta.get("parameters"),
        "training_seconds": round(clock.laps.get("train", 0.0), 1),
        "data_sha256": base_meta.get("data_sha256"),
        "preprocessing_version": PREPROCESSING_VERSION,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "code_version": code_version(),
    }


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


# Report ----------------------------------------------------------------------------------

ROWS = (("mnist_test", "MNIST test"), ("feedback_holdout", "feedback hold-out"), ("feedback_train", "feedback training part"))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def report_lines(result: dict) -> list[str]:
    """The before/after table and the decision, as lines of text."""
    summary = result["feedback"]
    lines = [
        f"Feedback in {result['feedback_dir']}: {summary['count']} usable images "
        f"({summary['train']} for training, {summary['holdout']} held out; "
        f"{summary['duplicates']} duplicates, {len(summary['skipped'])} skipped)"
    ]
    if "holdout_note" in summary:
        lines.append(summary["holdout_note"])
    before, after = result["before"], result["after"]
    if before and after:
        lines.append(f"{'':32}  {'before':28}  after")
        lines.append(f"{'model':32}  {before['model_version']:28}  {after['model_version']}")
        for key, name in ROWS:
            label = f"{name} ({before[f'{key}_samples']})"
            lines.append(f"{label:32}  {_percent(before[f'{key}_accuracy']):28}  {_percent(after[f'{key}_accuracy'])}")
    lines.append(result["message"])
    return lines


# Simulation ------------------------------------------------------------------------------

DEMO_FEEDBACK_SHARE = 0.7  # share of the optdigits images that people "upload"; the rest is held out
DEMO_TARGET_ERROR_REDUCTION = 0.40  # acceptance: held-out error at least 40 % lower, MNIST within MAX_MNIST_DROP_PP


def demo_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the feedback pool and of the held-out part, by a hash of each index."""
    fractions = np.array([_hash_fraction(hashlib.sha256(f"optdigits/{i}".encode()).hexdigest()) for i in range(n)])
    return np.flatnonzero(fractions < DEMO_FEEDBACK_SHARE), np.flatnonzero(fractions >= DEMO_FEEDBACK_SHARE)


def collect_mistakes(classifier: Classifier, sources: list, labels: np.ndarray, names: list[str], feedback_root: Path) -> int:
    """Predict each image; save every wrong prediction under its true label, as the app does for an upload."""
    images, usable = preprocess_all(sources)
    probabilities = np.zeros((len(sources), config.NUM_CLASSES), np.float32)
    probabilities[usable] = classifier.probabilities(images)
    saved = 0
    for index in np.flatnonzero(usable & (probabilities.argmax(1) != labels)):
        predicted = int(probabilities[index].argmax())
        feedback.save_correction(
            sources[index], int(labels[index]),
            predicted_label=predicted, confidence=float(probabilities[index, predicted]),
            probabilities=np.clip(probabilities[index], 0.0, 1.0), source="upload",
            original_filename=names[index], model_version=classifier.version, root=feedback_root,
        )
        saved += 1
    return saved


def _copy_model_dir(source: Path, target: Path) -> None:
    """Links stay links: `current` and the convenience links are relative, so the copy points at its own versions."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(".lock", ".staging-*", ".current-*"))


def simulate(work_dir: Path | None = None, source_model_dir: Path | None = None, *, epochs: int = EPOCHS, seed: int = config.SEED, verbose: int = 0) -> dict:
    """The loop on digits from other writers: predict, save the mistakes, fine-tune, measure on held-out digits.

    Everything is written under `work_dir` (a temporary folder by default): a copy of
    the model folder and a fresh feedback store. The repository's model/ and
    wrong_predictions/ are never touched.
    """
    source_model_dir = Path(source_model_dir or config.model_dir())
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="finetune-demo-") as tmp:
            return {**simulate(Path(tmp), source_model_dir, epochs=epochs, seed=seed, verbose=verbose), "work_dir": None}
    work_dir = Path(work_dir)
    model_dir, feedback_root = work_dir / "model", work_dir / "wrong_predictions"
    if feedback_root.exists() or model_dir.exists():
        raise FinetuneError(f"{work_dir} already holds a demo: choose an empty folder.")
    _copy_model_dir(source_model_dir, model_dir)

    images, labels = realinputs.optdigits_set()
    pool, held = demo_split(len(labels))
    held_sources, held_labels = [images[i] for i in held], labels[held]
    before = load_classifier(model_dir=model_dir)
    held_before = accuracy_on(before, held_sources, held_labels)
    saved = collect_mistakes(before, [images[i] for i in pool], labels[pool], [f"optdigits-{i:04d}.png" for i in pool], feedback_root)

    result = finetune(feedback_root, model_dir, epochs=epochs, seed=seed, verbose=verbose)
    held_after = held_before
    if result["version"]:
        candidate = load_classifier(model_dir / "versions" / result["version"])
        held_after = accuracy_on(candidate, held_sources, held_labels)
    return _demo_summary(work_dir, len(pool), saved, held_before, held_after, result)


def _demo_summary(work_dir: Path, pool_size: int, saved: int, held_before: dict, held_after: dict, result: dict) -> dict:
    error_before, error_after = 1 - held_before["accuracy"], 1 - held_after["accuracy"]
    reduction = 1 - error_after / error_before if error_before else 0.0
    mnist_before = result["before"]["mnist_test_accuracy"] if result["before"] else None
    mnist_after = result["after"]["mnist_test_accuracy"] if result["after"] else mnist_before
    mnist_drop_pp = 100 * (mnist_before - mnist_after) if mnist_before is not None else 0.0
    return {
        "work_dir": str(work_dir),
        "source": "optdigits (UCI, 43 writers, 8x8; shipped with scikit-learn)",
        "feedback_pool": pool_size,
        "mistakes_saved": saved,
        "heldout": {"n": held_before["n"], "before": held_before["accuracy"], "after": held_after["accuracy"]},
        "heldout_error_reduction": reduction,
        "mnist_test": {"before": mnist_before, "after": mnist_after, "drop_pp": mnist_drop_pp},
        "accepted": reduction >= DEMO_TARGET_ERROR_REDUCTION and mnist_drop_pp <= MAX_MNIST_DROP_PP,
        "finetune": result,
    }


def demo_lines(summary: dict) -> list[str]:
    held, mnist = summary["heldout"], summary["mnist_test"]
    return [
        f"Source: {summary['source']}",
        f"Feedback pool {summary['feedback_pool']} images -> {summary['mistakes_saved']} mistakes saved as corrections",
        *report_lines(summary["finetune"]),
        f"Held-out optdigits ({held['n']}): {100 * held['before']:.2f} % -> {100 * held['after']:.2f} % "
        f"(error {100 * summary['heldout_error_reduction']:.0f} % lower; target {100 * DEMO_TARGET_ERROR_REDUCTION:.0f} %)",
        f"MNIST test: {100 * mnist['before']:.2f} % -> {100 * mnist['after']:.2f} % "
        f"(drop {mnist['drop_pp']:.2f} pp; limit {MAX_MNIST_DROP_PP:.2f} pp)",
        "Acceptance: " + ("passed" if summary["accepted"] else "NOT passed"),
    ]

"""The fine-tuning loop end to end on digits from other writers (optdigits), in temporary folders.

`simulate()` copies the model folder, lets the current model read 70 % of the optdigits
images, saves each mistake through the corrections store exactly as the app does for an
upload, runs `finetune.finetune()` on that store, and measures the result on the other
30 % and on MNIST test. The repository's model/ and wrong_predictions/ are never touched.
`make finetune-demo` and notebook 04 run it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import config, feedback, realinputs
from .evaluate import accuracy_on, preprocess_all
from .feedback_set import hash_fraction
from .finetune import EPOCHS, MAX_MNIST_DROP_PP, FinetuneResult, finetune
from .model import Classifier, load_classifier

DEMO_FEEDBACK_SHARE = 0.7  # share of the optdigits images that people "upload"; the rest is held out
DEMO_TARGET_ERROR_REDUCTION = 0.40  # acceptance: held-out error at least 40 % lower, MNIST within MAX_MNIST_DROP_PP
SOURCE = "optdigits (the UCI test split: 13 writers, 8x8; shipped with scikit-learn)"


class DemoFolderError(ValueError):
    """The folder asked for already holds a demo; the message is meant for a person."""


@dataclass(frozen=True)
class HeldOut:
    n: int
    before: float
    after: float


@dataclass(frozen=True)
class MnistChange:
    before: float | None
    after: float | None
    drop_pp: float


@dataclass(frozen=True)
class DemoSummary:
    """What `finetune-demo --json` prints."""

    work_dir: str | None  # None when the temporary folder is gone
    source: str
    feedback_pool: int
    mistakes_saved: int
    heldout: HeldOut
    heldout_error_reduction: float
    mnist_test: MnistChange
    accepted: bool
    finetune: FinetuneResult

    def as_json(self) -> dict:
        return asdict(self)


def demo_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the feedback pool and of the held-out part, by a hash of each index."""
    fractions = np.array([hash_fraction(hashlib.sha256(f"optdigits/{i}".encode()).hexdigest()) for i in range(n)])
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


def simulate(
    work_dir: Path | None = None, source_model_dir: Path | None = None, *, epochs: int = EPOCHS, seed: int = config.SEED, verbose: int = 0
) -> DemoSummary:
    """The loop on digits from other writers: predict, save the mistakes, fine-tune, measure on held-out digits.

    Everything is written under `work_dir` (a temporary folder by default): a copy of
    the model folder and a fresh feedback store.
    """
    source_model_dir = Path(source_model_dir or config.model_dir())
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="finetune-demo-") as tmp:
            summary = simulate(Path(tmp), source_model_dir, epochs=epochs, seed=seed, verbose=verbose)
            return dataclasses.replace(summary, work_dir=None)
    work_dir = Path(work_dir)
    model_dir, feedback_root = work_dir / "model", work_dir / "wrong_predictions"
    if feedback_root.exists() or model_dir.exists():
        raise DemoFolderError(f"{work_dir} already holds a demo: choose an empty folder.")
    _copy_model_dir(source_model_dir, model_dir)

    images, labels = realinputs.optdigits_set()
    pool, held = demo_split(len(labels))
    held_sources, held_labels = [images[i] for i in held], labels[held]
    before = load_classifier(model_dir=model_dir)
    held_before = accuracy_on(before, held_sources, held_labels)
    saved = collect_mistakes(before, [images[i] for i in pool], labels[pool], [f"optdigits-{i:04d}.png" for i in pool], feedback_root)

    result = finetune(feedback_root, model_dir, epochs=epochs, seed=seed, verbose=verbose)
    held_after = held_before
    if result.version:
        candidate = load_classifier(model_dir / "versions" / result.version)
        held_after = accuracy_on(candidate, held_sources, held_labels)
    return _summary(work_dir, len(pool), saved, HeldOut(held_before["n"], held_before["accuracy"], held_after["accuracy"]), result)


def _summary(work_dir: Path, pool_size: int, saved: int, held: HeldOut, result: FinetuneResult) -> DemoSummary:
    error_before, error_after = 1 - held.before, 1 - held.after
    reduction = 1 - error_after / error_before if error_before else 0.0
    mnist_before = result.before.mnist_test_accuracy if result.before else None
    mnist_after = result.after.mnist_test_accuracy if result.after else mnist_before
    mnist_drop_pp = 100 * (mnist_before - mnist_after) if mnist_before is not None else 0.0
    return DemoSummary(
        work_dir=str(work_dir),
        source=SOURCE,
        feedback_pool=pool_size,
        mistakes_saved=saved,
        heldout=held,
        heldout_error_reduction=reduction,
        mnist_test=MnistChange(mnist_before, mnist_after, mnist_drop_pp),
        accepted=reduction >= DEMO_TARGET_ERROR_REDUCTION and mnist_drop_pp <= MAX_MNIST_DROP_PP,
        finetune=result,
    )

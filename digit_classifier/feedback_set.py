"""The corrections in wrong_predictions/ as a labelled, preprocessed set: retrieve them, split off a hold-out.

1. retrieve: every image in ``wrong_predictions/<d>/`` is a sample of digit d, and
   every image in ``wrong_predictions/not_a_digit/`` a sample of label
   ``config.NOT_A_DIGIT_LABEL`` (trained towards equal probabilities), saved by the app or dropped in by hand. Unusable files, links and special files
   are skipped and listed; the same content twice counts once; nothing in the
   folder is ever changed;
2. split: about 20 % of each label, chosen by content hash (so an image never
   moves between the two parts as the store grows), is held out for evaluation,
   when there are enough samples for that to measure anything.

`finetune.py` trains on the one part and measures on the other.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, feedback
from .feedback import SkippedEntry
from .preprocess import PreprocessError, preprocess


# 1. Retrieve -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackSample:
    """One correction from the store, preprocessed and ready to train on."""

    label: int
    sha256: str  # of the file's bytes
    name: str  # "<label>/<file name>"
    source: str  # "draw" or "upload" from the app's metadata, "by hand" without metadata
    image: np.ndarray  # 28x28 float32, the model's input


@dataclass(frozen=True)
class Conflict:
    """One content filed under several labels: left out, since it cannot say which digit it is."""

    files: list[str]
    labels: list[int]


@dataclass
class Feedback:
    samples: list[FeedbackSample]
    skipped: list[SkippedEntry] = field(default_factory=list)  # unreadable, links, or not a digit
    duplicates: int = 0  # extra copies of content already counted
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """One hash for the whole set: the sorted (label, content hash) pairs."""
        pairs = sorted(f"{sample.label} {sample.sha256}" for sample in self.samples)
        return hashlib.sha256("\n".join(pairs).encode()).hexdigest()

    def per_label(self) -> dict[str, int]:
        """Samples per folder name: "0" ... "9" and "not_a_digit"."""
        return {feedback.folder_name(label): sum(s.label == label for s in self.samples) for label in feedback.LABELS}

    def per_source(self) -> dict[str, int]:
        sources = sorted({s.source for s in self.samples})
        return {source: sum(s.source == source for s in self.samples) for source in sources}

    def warnings(self) -> list[str]:
        lines = []
        if self.skipped:
            listed = "; ".join(f"{entry.name} ({entry.reason})" for entry in self.skipped)
            lines.append(f"skipped {len(self.skipped)} unusable file(s): {listed}")
        for conflict in self.conflicts:
            lines.append(f"skipped the same image filed under different labels: {', '.join(conflict.files)}")
        return lines


def load_feedback(root: Path | None = None) -> Feedback:
    """Every image in <root>/0 ... <root>/9 and <root>/not_a_digit as a labelled, preprocessed sample. Reads only.

    Files are read through the store (never through a link) and preprocessed from those
    bytes, so nothing outside the store is read even if a file is swapped meanwhile.
    """
    listing = feedback.scan(root)
    skipped = list(listing.skipped)
    groups: dict[str, list[tuple[feedback.FeedbackItem, bytes]]] = {}
    for item in sorted(listing.items, key=lambda item: item.id):
        try:
            content = feedback.read_image(item)
        except OSError as error:
            skipped.append(SkippedEntry(item.id, f"cannot be read: {error.strerror or error}"))
            continue
        groups.setdefault(hashlib.sha256(content).hexdigest(), []).append((item, content))

    samples, conflicts, duplicates = [], [], 0
    for sha256, members in groups.items():
        labels = sorted({item.label for item, _ in members})
        if len(labels) > 1:
            conflicts.append(Conflict([item.id for item, _ in members], labels))
            continue
        duplicates += len(members) - 1
        item, content = members[0]
        try:
            image = preprocess(content)
        except PreprocessError as error:
            skipped.append(SkippedEntry(item.id, str(error)))
            continue
        samples.append(FeedbackSample(item.label, sha256, item.id, str(item.metadata.get("source", "by hand")), image))
    samples.sort(key=lambda s: (s.label, s.sha256))
    return Feedback(samples, skipped, duplicates, conflicts)


# 2. Split --------------------------------------------------------------------------------

HOLDOUT_SHARE = 0.2  # share of each label held out for evaluation, chosen by content hash
MIN_LABEL_FOR_HOLDOUT = 5  # a label with fewer samples is used for training only
MIN_HOLDOUT = 10  # a smaller hold-out measures nothing: then everything trains


def hash_fraction(sha256: str) -> float:
    """A content hash -> a stable number in [0, 1)."""
    return int(sha256[:12], 16) / 16**12


def split_holdout(samples: list[FeedbackSample]) -> tuple[list[FeedbackSample], list[FeedbackSample]]:
    """-> (training part, hold-out part); the hold-out is empty when it would be too small to measure."""
    sizes = {label: sum(s.label == label for s in samples) for label in feedback.LABELS}
    held = [s for s in samples if sizes[s.label] >= MIN_LABEL_FOR_HOLDOUT and hash_fraction(s.sha256) < HOLDOUT_SHARE]
    if len(held) < MIN_HOLDOUT or len(held) == len(samples):
        return list(samples), []
    held_ids = {s.sha256 for s in held}
    return [s for s in samples if s.sha256 not in held_ids], held


def as_arrays(samples: list[FeedbackSample]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([s.image for s in samples]) if samples else np.zeros((0, config.IMAGE_SIZE, config.IMAGE_SIZE), np.float32)
    return images[..., None].astype(np.float32), np.array([s.label for s in samples], dtype=np.int32)


@dataclass(frozen=True)
class FeedbackSummary:
    count: int
    train: int
    holdout: int
    per_label: dict[str, int]
    per_source: dict[str, int]
    duplicates: int
    skipped: list[SkippedEntry]
    conflicts: list[Conflict]
    sha256: str
    holdout_note: str | None  # why nothing is held out, when nothing is


def summarize_feedback(collected: Feedback, train_part: list[FeedbackSample], holdout: list[FeedbackSample]) -> FeedbackSummary:
    note = None
    if collected.samples and not holdout:
        note = (
            f"Only {len(collected.samples)} usable samples: too few to hold out a measurable evaluation set "
            f"(need {MIN_HOLDOUT} held out, about {math.ceil(MIN_HOLDOUT / HOLDOUT_SHARE)} samples), so all of them "
            "train and accuracy on unseen feedback is not measured."
        )
    return FeedbackSummary(
        len(collected.samples), len(train_part), len(holdout), collected.per_label(), collected.per_source(),
        collected.duplicates, collected.skipped, collected.conflicts, collected.sha256, note,
    )

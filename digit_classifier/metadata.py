"""What a version's metadata.json records, as types: the fields every version has, then those of its kind.

`versions.py` checks the file's schema (version name, kind, parent, file hashes) when it
reads one; this module is where the writers (`train.py`, `finetune.py`) say what goes in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class BaseTraining:
    """How a base model was trained from scratch on MNIST."""

    epochs: int
    batch_size: int
    train_samples: int
    validation_samples: int
    seconds_per_epoch: float
    epoch_seconds: list[float]
    validation_accuracy: float
    history: dict[str, list[float]]  # Keras' per-epoch history, rounded
    seed: int
    non_digits: int = 0  # generated non-digits trained on (nondigits.py), besides train_samples digits


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int
    steps_per_epoch: int
    batch_size: int
    feedback_per_batch: int
    learning_rate: float
    batch_norm: str
    seed: int


@dataclass(frozen=True)
class Finetuning:
    """What a fine-tuned version learned from, how, and what it measured before and after."""

    replaces: str | None  # the version that was current when it was made
    feedback: dict  # count, train, holdout, per_label, per_source, sha256 of the corrections used
    finetune: FinetuneSettings
    metrics: dict  # {"before": Measurement, "after": Measurement} as JSON
    promoted: bool
    promotion_reason: str


@dataclass(frozen=True)
class VersionMetadata:
    """metadata.json of one version (`versions.save_version` adds the hashes of its files under "files")."""

    version: str
    kind: str  # "base" or "finetuned"
    parent: str | None  # the base model a fine-tune started from
    created: str  # timestamps.format_utc
    parameters: int
    training_seconds: float
    test_accuracy: float  # on the 10,000 MNIST test digits
    test_samples: int
    data_sha256: dict[str, str]  # of the MNIST files it was trained on
    preprocessing_version: str
    tensorflow_version: str
    keras_version: str
    code_version: str  # git describe of the code that made it
    details: BaseTraining | Finetuning
    calibration: dict | None = None  # calibration.CalibrationFit.as_json(): temperature, thresholds, validation figures

    def as_json(self) -> dict:
        common = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        return {**common, **asdict(self.details)}


@dataclass(frozen=True)
class ListedVersion:
    """What `models` shows of a metadata.json; a field the file lacks is None (a damaged file still lists)."""

    kind: str | None = None
    parent: str | None = None
    created: str | None = None
    test_accuracy: float | None = None
    promoted: bool | None = None
    feedback: dict | None = None

    @classmethod
    def from_json(cls, metadata: dict) -> ListedVersion:
        return cls(**{f.name: metadata.get(f.name) for f in fields(cls)})

    @property
    def feedback_count(self) -> int | None:
        count = self.feedback.get("count") if isinstance(self.feedback, dict) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

"""From images to predictions: one image for the app, many files for the CLI.

Both go through `preprocess()` and a direct (compiled) model call; nothing here
uses `model.predict()`, which is built for large batches and is several times
slower for a single image.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .model import Classifier
from .preprocess import ImageSource, preprocess, preprocess_file

LOW_CONFIDENCE = 0.70  # below this the app says the model is unsure


@dataclass
class Prediction:
    label: int
    confidence: float
    probabilities: np.ndarray  # (10,) float
    image: np.ndarray  # the 28x28 input the model saw

    @property
    def is_confident(self) -> bool:
        return self.confidence >= LOW_CONFIDENCE

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
        }


def _prediction(probabilities: np.ndarray, image: np.ndarray) -> Prediction:
    label = int(np.argmax(probabilities))
    return Prediction(label, float(probabilities[label]), probabilities, image)


def predict_image(classifier: Classifier, source: ImageSource) -> Prediction:
    """One image -> Prediction. Raises a PreprocessError subclass for an unusable image."""
    image = preprocess(source)
    return _prediction(classifier.probabilities(image[None])[0], image)


PARALLEL_FROM = 64  # files; below this, starting worker processes costs more than it saves


def _preprocessed(paths: list[str], workers: int) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
    """Preprocess in order; in `workers` processes when there are many files (the model stays in this one)."""
    if workers <= 1 or len(paths) < PARALLEL_FROM:
        yield from map(preprocess_file, paths)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:  # spawn: never fork a process running TensorFlow
        yield from pool.imap(preprocess_file, paths, chunksize=16)


def predict_files(classifier: Classifier, paths: Iterable[str | Path], batch_size: int = 256, workers: int | None = None) -> Iterator[dict]:
    """Yield one result dict per path, in order: {"path", "label", "confidence", "probabilities"} or {"path", "error"}."""
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> Iterator[dict]:
        probabilities = classifier.probabilities(np.stack([image for _, image in pending]))
        for (path, image), probs in zip(pending, probabilities):
            yield {"path": path, **_prediction(probs, image).as_dict()}
        pending.clear()

    for path, image, error in _preprocessed([str(p) for p in paths], workers or os.cpu_count() or 1):
        if error is not None:
            yield from flush() if pending else ()
            yield {"path": path, "error": error}
            continue
        pending.append((path, image))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()

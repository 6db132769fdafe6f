"""From images to predictions: one image for the app, many files for the CLI.

Both go through `preprocess()` and `Classifier.probabilities()` (inference.py: LiteRT when
serving, a compiled Keras call when evaluating); nothing here uses `model.predict()`, which is
built for large batches and is several times slower for a single image. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .inference import Classifier
from .preprocess import ImageSource, StepPictures, preprocess_files, preprocess_steps, step_pictures

LOW_CONFIDENCE = 0.70  # below this the app says the model is unsure


@dataclass
class Prediction:
    label: int
    confidence: float
    probabilities: np.ndarray  # (10,) float
    image: np.ndarray  # the 28x28 input the model saw
    steps: StepPictures | None = None  # how the picture was read, when asked for

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


def predict_image(classifier: Classifier, source: ImageSource, with_steps: bool = False) -> Prediction:
    """One image -> Prediction (with small pictures of the scene's steps when `with_steps`).
    Raises a PreprocessError subclass for an unusable image."""
    steps = preprocess_steps(source)
    prediction = _prediction(classifier.probabilities(steps.image[None])[0], steps.image)
    if with_steps:
        prediction.steps = step_pictures(steps)
    return prediction


def predict_files(classifier: Classifier, paths: Iterable[str | Path], batch_size: int = 256, workers: int = 1) -> Iterator[dict]:
    """Yield one result dict per path, in order: {"path", "label", "confidence", "probabilities"} or {"path", "error"}.

    `workers` > 1 preprocesses in that many processes once there are
    `preprocess.PARALLEL_FROM` files or more.
    """
    return predict_prepared(classifier, preprocess_files(paths, workers), batch_size)


def predict_prepared(classifier: Classifier, prepared: Iterable[tuple[str, np.ndarray | None, str | None]], batch_size: int = 256) -> Iterator[dict]:
    """Like `predict_files`, for the output of `preprocess_files` (which may have started before the model was loaded)."""
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> Iterator[dict]:
        probabilities = classifier.probabilities(np.stack([image for _, image in pending]))
        for (path, image), probs in zip(pending, probabilities):
            yield {"path": path, **_prediction(probs, image).as_dict()}
        pending.clear()

    for path, image, error in prepared:
        if error is not None:
            yield from flush() if pending else ()
            yield {"path": path, "error": error}
            continue
        pending.append((path, image))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()

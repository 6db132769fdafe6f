"""Where a model goes wrong on a set of pictures: the predictions kept together with the inputs, for notebook 03.

`evaluate.accuracy_on` gives the score; this keeps what a person needs to look at the errors as well: each picture,
the 28x28 the model saw and its probabilities, so that a notebook reads each set once (optdigits' 1,797 pictures
take about 0.15 s each through the scene stage on a busy 2-core machine: four minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .evaluate import confusion_matrix, preprocess_all
from .inference import Classifier


@dataclass
class SetPredictions:
    """The usable pictures of one set (those the preprocessing did not refuse) and what the model said of them."""

    name: str
    sources: list  # as given
    images: np.ndarray  # (n, 28, 28) what the model saw
    labels: np.ndarray  # true digits
    probabilities: np.ndarray  # (n, 10), raw
    refused: int  # pictures the preprocessing refused (not in the lists above)

    @property
    def n(self) -> int:
        """Pictures in the set, refused ones included."""
        return len(self.labels) + self.refused

    @property
    def accuracy(self) -> float:
        """Share of all the pictures read right; a refused picture counts as an error, as in evaluate.accuracy_on."""
        return float(np.sum(self.predicted == self.labels) / self.n) if self.n else 0.0

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(1)

    @property
    def matrix(self) -> np.ndarray:
        return confusion_matrix(self.labels, self.predicted)

    def mistakes(self, count: int, true: int | None = None, predicted: int | None = None) -> list[int]:
        """Indices of up to `count` mistakes, the most confident first; only true -> predicted when given."""
        wrong = self.predicted != self.labels
        if true is not None:
            wrong &= self.labels == true
        if predicted is not None:
            wrong &= self.predicted == predicted
        found = np.flatnonzero(wrong)
        return found[np.argsort(-self.probabilities[found].max(1), kind="stable")][:count].tolist()

    def worst_confusion(self) -> tuple[int, int, int]:
        """(true digit, answer, count) of the largest off-diagonal cell of the confusion matrix."""
        errors = self.matrix.copy()
        np.fill_diagonal(errors, 0)
        true, answer = np.unravel_index(int(errors.argmax()), errors.shape)
        return int(true), int(answer), int(errors[true, answer])


def predict_set(classifier: Classifier, name: str, sources: Sequence, labels: np.ndarray) -> SetPredictions:
    """Preprocess every picture (the main digit of each), run the model once on the usable ones."""
    images, usable = preprocess_all(sources)
    kept = np.flatnonzero(usable)
    return SetPredictions(
        name, [sources[i] for i in kept], images, np.asarray(labels)[kept], classifier.probabilities(images), int((~usable).sum())
    )

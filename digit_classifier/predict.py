"""From images to readings: one image for the app, many files for the CLI.

A reading is every digit in a picture, left to right (one for a single digit).
Both go through `preprocess_steps()` and `Classifier.probabilities()` (inference.py: LiteRT when
serving, a compiled Keras call when evaluating); nothing here uses `model.predict()`, which is
built for large batches and is several times slower for a single image. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .calibration import NOT_A_DIGIT, OK, STATUSES, UNSURE, Calibration  # noqa: F401 (the statuses, for callers)
from .inference import Classifier
from .preprocess import Halves, ImageSource, PreparedFile, StepPictures, preprocess_files, preprocess_steps, step_pictures

@dataclass
class Prediction:
    """What the model says about one digit: its calibrated probabilities and a status."""

    label: int
    confidence: float
    probabilities: np.ndarray  # (10,) float, calibrated
    image: np.ndarray  # the 28x28 input the model saw
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in the original picture's pixels
    status: str = OK

    @property
    def runner_up(self) -> int:
        """The second most probable digit (with `label`, the two an unsure answer hesitates between)."""
        return int(np.argsort(-np.asarray(self.probabilities), kind="stable")[1])

    @property
    def is_confident(self) -> bool:
        return self.status == OK

    @property
    def is_digit(self) -> bool:
        return self.status != NOT_A_DIGIT

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "status": self.status,
            "confidence": round(float(self.confidence), 6),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
        }


@dataclass
class Reading:
    """Every digit read in one picture, left to right."""

    digits: list[Prediction]
    steps: StepPictures | None = None  # how the picture was read, when asked for

    @property
    def text(self) -> str:
        return "".join(str(digit.label) for digit in self.digits)

    @property
    def status(self) -> str:
        """ok when every digit is; else not_a_digit when any digit is not one; else unsure."""
        found = {digit.status for digit in self.digits}
        return OK if found <= {OK} else NOT_A_DIGIT if NOT_A_DIGIT in found else UNSURE

    @property
    def is_confident(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict:
        """The CLI's JSON: "status", "text" and "digits"; with exactly one digit, also its "label", "confidence"
        and "probabilities" at the top level, as before numbers were read."""
        digits = [{**digit.as_dict(), "box": list(digit.box) if digit.box else None} for digit in self.digits]
        single = self.digits[0].as_dict() if len(self.digits) == 1 else {}
        return {**single, "status": self.status, "text": self.text, "digits": digits}


def predictions(
    calibration: Calibration, probabilities: np.ndarray, images: np.ndarray, boxes: Iterable[tuple[int, int, int, int] | None]
) -> list[Prediction]:
    """The model's raw probabilities for some digits -> calibrated Predictions with their statuses."""
    calibrated = calibration.calibrate(probabilities)
    statuses = calibration.statuses(calibrated) if len(calibrated) else []
    found = []
    for probs, image, box, status in zip(calibrated, images, boxes, statuses):
        label = int(np.argmax(probs))
        found.append(Prediction(label, float(probs[label]), probs, image, box, status))
    return found


WIDE = 0.8  # a digit of a number this wide (share of its height) is looked at again even when the model is sure, ...
SURER = 0.05  # ... and gives way to a cut only when the cut's less sure half leaves this share of the whole's doubt
ONE_WIDTH = 0.6  # two 1s pressed together are each no wider than this share of their height


def _plausible(halves: list[Prediction]) -> bool:
    """The model reads a piece of almost any stroke as a confident 1, so a cut read as two 1s is two 1s only
    when both halves are as narrow as 1s."""
    return not all(half.label == 1 for half in halves) or all(
        half.box[2] - half.box[0] <= ONE_WIDTH * (half.box[3] - half.box[1]) for half in halves
    )


def _least_sure(halves: list[Prediction]) -> float:
    return min(half.confidence for half in halves)


def _surer(halves: list[Prediction], whole: Prediction) -> bool:
    """Both halves far surer than the whole: the model is near-certain of almost any clean stroke, so a cut
    that is merely a little surer (a 0 read as a 0 and a sliver of its side read as a 1) is not evidence."""
    return 1 - _least_sure(halves) < SURER * (1 - whole.confidence)


def _wide(digit: Prediction) -> bool:
    """Wider than most single digits are: maybe two pressed together, even when the model is sure of one."""
    if digit.box is None:
        return False
    x0, y0, x1, y1 = digit.box
    return x1 - x0 >= WIDE * (y1 - y0)


REGROUP_SURER = 0.01  # two touching digits' ink shared out anew stands when its less sure digit leaves this share of their doubt


def read_digits(
    classifier: Classifier,
    calibration: Calibration,
    probabilities: np.ndarray,
    images: np.ndarray,
    boxes: Iterable[tuple[int, int, int, int] | None],
    cuts: Callable[[int], Sequence[Halves]],
    regroupings: Callable[[int], Sequence[Halves]],
) -> list[Prediction]:
    """The digits of one picture, from the model's probabilities for them.

    In a number, a digit the model doubts may be two pressed together (a 1 leaning on a 6 is one run of ink):
    it gets a second look at `cuts(index)`, its ways to be cut in two, all through the model in one call. Of the
    cuts whose two halves the model is sure of, the one it is surest of (its less sure half) replaces the digit.
    A digit at least 0.8 times as wide as it is tall gets that look even when the model is sure of it (a 1
    touching a 3 reads as a fair 3); there a cut stands only when both halves are far surer than the whole
    (`_surer`). A lone digit the model doubts that is wide enough to hold two (two digits drawn touching) gets a
    look too; a cut stands only when both halves are far surer than it.

    Then two neighbours whose boxes touch, unless the model is certain of both, get a look at
    `regroupings(index)`: their ink taken together and cut in two anew (a 4 whose bar the scene gave to the
    digit before it reads as a 1 alone). The surest such pair replaces them when it is far surer than what they
    read as (REGROUP_SURER); chosen on train-split numbers, seeds 5 and 6, and checked on seeds 7 and 8.
    """
    digits = predictions(calibration, probabilities, images, boxes)
    number = len(digits) > 1
    readings = []
    for index, digit in enumerate(digits):
        looked = cuts(index) if not digit.is_confident or (number and _wide(digit)) else ()
        accept = (lambda halves: True) if number and not digit.is_confident else (lambda halves, digit=digit: _surer(halves, digit))
        readings.append(_surest_cut(classifier, calibration, looked, accept) or [digit])
    index = 0
    while index + 1 < len(readings):
        now = readings[index] + readings[index + 1]
        looked = regroupings(index) if _least_sure(now) < 1 else ()
        regrouped = _surest_cut(
            classifier, calibration, looked, lambda halves: 1 - _least_sure(halves) < REGROUP_SURER * (1 - _least_sure(now))
        )
        if regrouped:
            readings[index : index + 2] = [[regrouped[0]], [regrouped[1]]]
            index += 1
        index += 1
    return [digit for reading in readings for digit in reading]


def _surest_cut(
    classifier: Classifier, calibration: Calibration, cuts: Sequence[Halves], accept: Callable[[list[Prediction]], bool]
) -> list[Prediction] | None:
    """Of `cuts`, all through the model in one call, the one whose less sure half the model is surest of, among
    those whose halves it is both sure of, that are `_plausible` and that `accept` takes; None if there is none."""
    if not cuts:
        return None
    images = np.concatenate([cut.images for cut in cuts])
    looked = predictions(calibration, classifier.probabilities(images), images, [box for cut in cuts for box in cut.boxes])
    pairs = [looked[start : start + 2] for start in range(0, len(looked), 2)]
    sure = [pair for pair in pairs if all(half.is_confident for half in pair) and _plausible(pair) and accept(pair)]
    return max(sure, key=_least_sure) if sure else None


def read_image(classifier: Classifier, source: ImageSource, with_steps: bool = False) -> Reading:
    """One image -> Reading: every digit, left to right, through the model in one batched call (with small
    pictures of the scene's steps when `with_steps`). Raises a PreprocessError subclass for an unusable image."""
    steps = preprocess_steps(source)
    images = steps.images
    boxes = [steps.box_in_picture(index) for index in range(len(images))]
    calibration = Calibration.of(classifier)
    probabilities = classifier.probabilities(images)
    digits = read_digits(
        classifier, calibration, probabilities, images, boxes, steps.cuts_in_picture, steps.regroupings_in_picture
    )
    return Reading(digits, step_pictures(steps) if with_steps else None)


def predict_files(classifier: Classifier, paths: Iterable[str | Path], batch_size: int = 256, workers: int = 1) -> Iterator[dict]:
    """Yield one result dict per path, in order: {"path", "text", "digits", ...} (see `Reading.as_dict`) or {"path", "error"}.

    `workers` > 1 preprocesses in that many processes once there are
    `preprocess.PARALLEL_FROM` files or more.
    """
    return predict_prepared(classifier, preprocess_files(paths, workers), batch_size)


def predict_prepared(classifier: Classifier, prepared: Iterable[PreparedFile], batch_size: int = 256) -> Iterator[dict]:
    """Like `predict_files`, for the output of `preprocess_files` (which may have started before the model was loaded).

    The digits of many files go through the model together, about `batch_size` at a time.
    """
    pending: list[PreparedFile] = []
    calibration = Calibration.of(classifier)

    def flush() -> Iterator[dict]:
        probabilities = classifier.probabilities(np.concatenate([item.images for item in pending]))
        start = 0
        for item in pending:
            probs = probabilities[start : start + len(item.images)]
            start += len(item.images)
            digits = read_digits(
                classifier, calibration, probs, item.images, item.boxes, item.cuts.__getitem__, item.regroupings.__getitem__
            )
            yield {"path": item.path, **Reading(digits).as_dict()}
        pending.clear()

    for item in prepared:
        if item.error is not None:
            yield from flush() if pending else ()
            yield {"path": item.path, "error": item.error}
            continue
        pending.append(item)
        if sum(len(entry.images) for entry in pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()

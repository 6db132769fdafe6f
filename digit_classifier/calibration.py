"""How the model's probabilities become what it says: a temperature, then a status per digit.

A network's softmax is over-confident. Temperature scaling (Guo et al., 2017) divides the logits
by one number T, fitted on the validation split so that the probabilities match how often the
model is right; it never changes which digit is on top. The status then reads the calibrated
probabilities: the top digit alone above `ok_threshold` is ok; otherwise the top two together
above `pair_threshold` are a choice between two digits (unsure); otherwise it is not a digit.
The model was trained to spread a non-digit's probability evenly over the ten digits
(nondigits.py), so a non-digit has no strong pair.

Both thresholds are chosen on validation data (MNIST's validation split and generated
validation non-digits), never on the test set; a version's metadata carries its own under
"calibration". Numpy only: serving imports this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import config

OK = "ok"
UNSURE = "unsure"  # two digits are plausible
NOT_A_DIGIT = config.NOT_A_DIGIT
STATUSES = (OK, UNSURE, NOT_A_DIGIT)

# The thresholds leave at most this share of the validation digits flagged (unsure or not a digit).
DIGIT_FLAG_BUDGET = 0.005
# Of the flagged validation digits, at least this share is called unsure rather than not a digit:
# a digit the model hesitates on should be offered as a choice between two.
UNSURE_SHARE_OF_FLAGGED_DIGITS = 0.8
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))  # the grid T is chosen on
RELIABILITY_BINS = 15


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    ok_threshold: float = 0.70  # defaults, for a model without its own: the old 70 % "unsure" line
    pair_threshold: float = 0.70

    @classmethod
    def of(cls, classifier) -> Calibration:
        """The calibration of a loaded model (its version's metadata), or the defaults."""
        return cls.from_metadata(getattr(classifier, "metadata", None))

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> Calibration:
        found = (metadata or {}).get("calibration")
        if not isinstance(found, dict):
            return cls()
        try:
            return cls(float(found["temperature"]), float(found["ok_threshold"]), float(found["pair_threshold"]))
        except (KeyError, TypeError, ValueError):
            return cls()

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        return with_temperature(probabilities, self.temperature)

    def statuses(self, calibrated: np.ndarray) -> list[str]:
        """One status per row of calibrated probabilities."""
        first, pair = top_and_pair(calibrated)
        return [OK if f >= self.ok_threshold else UNSURE if p >= self.pair_threshold else NOT_A_DIGIT for f, p in zip(first, pair)]

    def flagged(self, calibrated: np.ndarray) -> np.ndarray:
        """True where the status is not ok."""
        return top_and_pair(calibrated)[0] < self.ok_threshold

    def as_json(self) -> dict:
        return {"temperature": self.temperature, "ok_threshold": self.ok_threshold, "pair_threshold": self.pair_threshold}


def with_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), from the probabilities: log p is the logits less a constant per row."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0:
        return probabilities.astype(np.float32)
    scaled = np.log(np.clip(probabilities, 1e-30, 1.0)) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    weights = np.exp(scaled)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_and_pair(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top probability of each row, and the top two summed."""
    ordered = -np.sort(-np.asarray(probabilities, dtype=np.float64).reshape(-1, np.shape(probabilities)[-1]), axis=1)
    return ordered[:, 0], ordered[:, 0] + ordered[:, 1]


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T (on a log grid from 0.25 to 8) with the lowest negative log-likelihood of the true labels."""
    rows = np.arange(len(labels))

    def nll(t: float) -> float:
        return float(-np.mean(np.log(np.clip(with_temperature(probabilities, t)[rows, labels], 1e-12, 1.0))))

    return float(min(TEMPERATURES, key=nll))


def choose_thresholds(digits: np.ndarray, non_digits: np.ndarray, budget: float = DIGIT_FLAG_BUDGET) -> tuple[float, float]:
    """(ok_threshold, pair_threshold) from calibrated probabilities of validation digits and non-digits.

    ok_threshold is the highest that flags at most `budget` of the digits (every digit below it is
    flagged, so this flags the most non-digits the budget allows); pair_threshold is the highest that
    still calls UNSURE_SHARE_OF_FLAGGED_DIGITS of the flagged digits unsure.
    """
    first, pair = top_and_pair(digits)
    ok_threshold = float(np.quantile(first, budget, method="lower"))
    flagged_pairs = pair[first < ok_threshold]
    if len(flagged_pairs) == 0:
        pair_threshold = ok_threshold
    else:
        pair_threshold = float(np.quantile(flagged_pairs, 1 - UNSURE_SHARE_OF_FLAGGED_DIGITS, method="lower"))
    return round(ok_threshold, 4), round(min(pair_threshold, ok_threshold * 2), 4)


@dataclass(frozen=True)
class Reliability:
    """Confidence against accuracy in equal-width bins of confidence, and their gap (ECE)."""

    bin_edges: list[float]
    confidence: list[float | None]  # mean confidence in each bin (None when empty)
    accuracy: list[float | None]
    counts: list[int]
    expected_calibration_error: float

    def as_json(self) -> dict:
        return {"ece": self.expected_calibration_error, "bins": self.counts, "confidence": self.confidence, "accuracy": self.accuracy}


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = RELIABILITY_BINS) -> Reliability:
    """ECE = sum over bins of (share of answers in the bin) x |accuracy - mean confidence|."""
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    mean_confidence, accuracy, counts, gap = [], [], [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        counts.append(count)
        if count == 0:
            mean_confidence.append(None)
            accuracy.append(None)
            continue
        mean_confidence.append(round(float(confidence[inside].mean()), 6))
        accuracy.append(round(float(correct[inside].mean()), 6))
        gap += count / len(labels) * abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
    return Reliability([round(float(e), 4) for e in edges], mean_confidence, accuracy, counts, round(gap, 6))


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration and what it gives on the validation data it was fitted on."""

    calibration: Calibration
    digits: int
    non_digits: int
    digits_flagged: float
    non_digits_flagged: float
    ece_before: float  # on the validation digits, T = 1
    ece_after: float

    def as_json(self) -> dict:
        """What a version's metadata records under "calibration"."""
        return {
            **self.calibration.as_json(),
            "fitted_on": {"digits": self.digits, "non_digits": self.non_digits},
            "validation": {
                "digits_flagged": round(self.digits_flagged, 6), "non_digits_flagged": round(self.non_digits_flagged, 6),
                "ece_before": self.ece_before, "ece_after": self.ece_after,
            },
        }


def fit_calibration(digit_probabilities: np.ndarray, labels: np.ndarray, non_digit_probabilities: np.ndarray) -> CalibrationFit:
    """Temperature on the validation digits, then the thresholds on validation digits and non-digits."""
    temperature = fit_temperature(digit_probabilities, labels)
    digits = with_temperature(digit_probabilities, temperature)
    non_digits = with_temperature(non_digit_probabilities, temperature)
    ok_threshold, pair_threshold = choose_thresholds(digits, non_digits)
    calibration = Calibration(round(temperature, 4), ok_threshold, pair_threshold)
    return CalibrationFit(
        calibration, len(digits), len(non_digits),
        float(calibration.flagged(digits).mean()), float(calibration.flagged(non_digits).mean()) if len(non_digits) else 0.0,
        reliability(digit_probabilities, labels).expected_calibration_error, reliability(digits, labels).expected_calibration_error,
    )

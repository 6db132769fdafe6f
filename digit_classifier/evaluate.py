"""How good is a model: on MNIST's test set, and on the inputs people actually give.

`evaluate()` gives accuracy, per-class precision / recall / F1, the confusion
matrix and the most confident mistakes; `plot_confusion_matrix()` draws it;
`real_input_accuracy()` runs the realistic sets of `realinputs` through the
one preprocessing path, and `numbers_accuracy()` reads pictures of numbers.

Knowing what is not a digit is measured from both sides: the share of digits
flagged (status unsure or not_a_digit) on every set, and the share of generated
non-digits flagged (`non_digit_flagging`), with the calibration's expected error
before and after its temperature (`plot_reliability` draws it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from . import config, data, nondigits, realinputs
from .calibration import Calibration, reliability, with_temperature
from .inference import Classifier
from .decode import open_image
from .predict import read_image
from .preprocess import PreprocessError, preprocess, preprocess_steps

DIGITS = list(range(config.NUM_CLASSES))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10x10 counts: row = true digit, column = predicted digit."""
    matrix = np.zeros((config.NUM_CLASSES, config.NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
    return matrix


def per_class_report(matrix: np.ndarray) -> dict[str, dict[str, float]]:
    true_positive = np.diag(matrix).astype(float)
    predicted_count, actual_count = matrix.sum(0), matrix.sum(1)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(len(matrix)), where=predicted_count > 0)
    recall = np.divide(true_positive, actual_count, out=np.zeros(len(matrix)), where=actual_count > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(len(matrix)), where=total > 0)
    return {
        str(digit): {
            "precision": round(float(precision[digit]), 5),
            "recall": round(float(recall[digit]), 5),
            "f1": round(float(f1[digit]), 5),
            "support": int(actual_count[digit]),
        }
        for digit in DIGITS
    }


def most_confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int = 10) -> list[dict]:
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    return [
        {"index": int(i), "label": int(labels[i]), "predicted": int(predicted[i]), "confidence": round(float(probabilities[i, predicted[i]]), 5)}
        for i in order
    ]


def evaluate(classifier: Classifier, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
    """Full report on (images, labels); the MNIST test set by default."""
    if images is None:
        test = data.load_split("test")
        images, labels = data.to_model_input(test.images), test.labels
    labels = np.asarray(labels, int)
    probabilities = classifier.probabilities(images)
    predicted = probabilities.argmax(1)
    matrix = confusion_matrix(labels, predicted)
    return {
        "model_version": classifier.version,
        "accuracy": float(np.mean(predicted == labels)),
        "n": int(len(labels)),
        "errors": int(np.sum(predicted != labels)),
        "per_class": per_class_report(matrix),
        "confusion_matrix": matrix.tolist(),
        "most_confident_mistakes": most_confident_mistakes(probabilities, labels),
        **flagging(classifier, probabilities, labels),
    }


def flagging(classifier: Classifier, probabilities: np.ndarray, labels: np.ndarray, refused: int = 0) -> dict:
    """Digits only: the share flagged (unsure or not a digit; a refused picture counts as flagged),
    the accuracy of those not flagged, and the expected calibration error before and after the temperature."""
    calibration = Calibration.of(classifier)
    calibrated = calibration.calibrate(probabilities)
    flagged = calibration.flagged(calibrated) if len(calibrated) else np.zeros(0, bool)
    right = calibrated.argmax(1) == labels if len(calibrated) else np.zeros(0, bool)
    total = len(labels) + refused
    return {
        "flagged": float((flagged.sum() + refused) / total) if total else 0.0,
        "accuracy_not_flagged": float(right[~flagged].mean()) if (~flagged).any() else None,
        "ece_before": reliability(probabilities, labels).expected_calibration_error if len(labels) else None,
        "ece_after": reliability(calibrated, labels).expected_calibration_error if len(labels) else None,
    }


def plain_resize(source) -> np.ndarray:
    """The baseline many demos use: greyscale, resize the whole image to 28x28, invert if it is mostly light.

    Only for comparison; the project's path is `preprocess()`.
    """
    image = np.asarray(open_image(source).convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    return 1.0 - image if image.mean() > 0.5 else image


def preprocess_all(sources: Sequence, prepare: Callable = preprocess) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess every source; -> (images of the usable ones, boolean mask of usable)."""
    images, usable = [], []
    for source in sources:
        try:
            images.append(prepare(source))
            usable.append(True)
        except PreprocessError:
            usable.append(False)
    stacked = np.stack(images) if images else np.zeros((0, 28, 28), np.float32)
    return stacked, np.array(usable, dtype=bool)


def accuracy_on(classifier: Classifier, sources: Sequence, labels: np.ndarray, prepare: Callable = preprocess) -> dict:
    """Accuracy on raw inputs of one digit each; an input the preprocessing refuses counts as an error.

    With the project's own preprocessing, "one_digit" is the share of inputs read as exactly one digit
    (the rest were taken for a number; their main digit is what is scored).
    """
    counts: list[int] = []
    if prepare is preprocess:
        def prepare(source):
            steps = preprocess_steps(source)
            counts.append(len(steps.digits))
            return steps.image

    images, usable = preprocess_all(sources, prepare)
    predicted = np.full(len(labels), -1)
    probabilities = classifier.probabilities(images)
    predicted[usable] = probabilities.argmax(1)
    result = {"accuracy": float(np.mean(predicted == np.asarray(labels))), "n": int(len(labels)), "refused": int((~usable).sum())}
    if counts:
        result["one_digit"] = counts.count(1) / len(labels)
    return {**result, **flagging(classifier, probabilities, np.asarray(labels)[usable], refused=result["refused"])}


# The non-digit evaluation set, drawn as people would send it: on the app's canvas, on paper, in a notebook.
NON_DIGIT_STYLES = ("canvas", "photo", "notebook")
NON_DIGIT_SIZE = 300  # per style


def non_digit_pictures(style: str, n: int = NON_DIGIT_SIZE, seed: int = config.SEED) -> tuple[list, list[str]]:
    """`n` evaluation non-digits (nondigits.evaluation_images) rendered as pictures of one realistic style."""
    drawn = nondigits.evaluation_images(n, seed=seed + NON_DIGIT_STYLES.index(style))
    rng = np.random.default_rng([seed, 14, NON_DIGIT_STYLES.index(style)])
    render = realinputs.GENERATORS[style]
    return [render(np.round(image * 255).astype(np.uint8), rng) for image in drawn.images], drawn.kinds


def non_digit_group(kind: str) -> str:
    """letter, sign, unseen (a character training never drew) or generated (scribbles, blobs, overlaid digits ...)."""
    if kind in nondigits.UNSEEN:
        return "unseen"
    if kind in nondigits.GENERATED or kind in nondigits.OTHER_KINDS:
        return "generated"
    return "letter" if kind.isalpha() and kind.isascii() else "sign"


def non_digit_flagging(classifier: Classifier, n: int = NON_DIGIT_SIZE, styles: Sequence[str] = NON_DIGIT_STYLES) -> dict:
    """Per style: the share of non-digit pictures flagged (no digit found, or a reading whose status is not ok),
    how (not_a_digit, unsure, no_digit), and the share flagged per group of non-digits."""
    results = {}
    for style in styles:
        sources, kinds = non_digit_pictures(style, n)
        outcome = []
        for source in sources:
            try:
                outcome.append(read_image(classifier, source).status)
            except PreprocessError:
                outcome.append("no_digit")
        groups = {}
        for group in ("letter", "sign", "unseen", "generated"):
            chosen = [o for o, k in zip(outcome, kinds) if non_digit_group(k) == group]
            if chosen:
                groups[group] = round(sum(o != "ok" for o in chosen) / len(chosen), 4)
        results[style] = {
            "n": len(sources),
            "flagged": sum(o != "ok" for o in outcome) / len(sources),
            **{name: outcome.count(name) for name in ("not_a_digit", "unsure", "no_digit")},
            "by_group": groups,
        }
    return results


def numbers_accuracy(classifier: Classifier, sources: Sequence, texts: Sequence[str]) -> dict:
    """Pictures of numbers: the share read exactly, and the share of digits read right in place.

    A picture refused, or read with the wrong number of digits, has none of its digits right.
    """
    exact = right = wrong_count = refused = 0
    for source, text in zip(sources, texts):
        try:
            read = read_image(classifier, source).text
        except PreprocessError:
            refused += 1
            continue
        exact += read == text
        if len(read) == len(text):
            right += sum(a == b for a, b in zip(read, text))
        else:
            wrong_count += 1
    total = sum(len(text) for text in texts)
    return {"exact": exact / len(texts), "per_digit": right / total, "n": len(texts), "wrong_count": wrong_count, "refused": refused}


NUMBERS_SIZE = 400


def real_input_accuracy(
    classifier: Classifier, n: int = realinputs.DEFAULT_SIZE, kinds: Sequence[str] = realinputs.KINDS,
    prepare: Callable = preprocess, numbers: bool = False,
) -> dict:
    """Accuracy on each realistic set (from MNIST test digits) and on optdigits (other writers); with
    `numbers`, also the numbers set under "numbers" (exact-match and per-digit, read with `read_image`)."""
    results = {kind: accuracy_on(classifier, *realinputs.make_set(kind, n), prepare=prepare) for kind in kinds}
    results["optdigits"] = accuracy_on(classifier, *realinputs.optdigits_set(), prepare=prepare)
    if numbers:
        results["numbers"] = numbers_accuracy(classifier, *realinputs.numbers_set(min(n, NUMBERS_SIZE)))
    return results


def score_baselines(
    classifier: Classifier, logits: Callable[[np.ndarray], np.ndarray], budget: float | None = None, n: int = 2000
) -> dict:
    """A score alone, on the model as it is: maximum softmax probability and energy (logsumexp of the logits),
    each thresholded to flag `budget` of MNIST's validation digits, then measured on MNIST test (digits
    flagged) and on the framed evaluation non-digits (non-digits flagged). `logits` maps images to logits."""
    from .calibration import DIGIT_FLAG_BUDGET
    from .train import mnist_validation

    budget = DIGIT_FLAG_BUDGET if budget is None else budget
    x_val, _ = mnist_validation()
    x_test = data.to_model_input(data.load_split("test").images)
    x_non = nondigits.evaluation_images(n).images

    def scores(images: np.ndarray) -> dict[str, np.ndarray]:
        z = logits(images).astype(np.float64)
        top = z.max(1, keepdims=True)
        energy = (top + np.log(np.exp(z - top).sum(1, keepdims=True)))[:, 0]
        return {"max_softmax": classifier.probabilities(images).max(1), "energy": energy}

    val, on_test, on_non = scores(x_val), scores(x_test), scores(x_non)
    out = {}
    for name in ("max_softmax", "energy"):
        threshold = float(np.quantile(val[name], budget, method="lower"))
        out[name] = {
            "digits_flagged_mnist_test": float((on_test[name] < threshold).mean()),
            "non_digits_flagged": float((on_non[name] < threshold).mean()),
        }
    return out


def plot_reliability(
    probabilities: np.ndarray, labels: np.ndarray, temperature: float, path: Path | str | None = None, title: str | None = None
):
    """Reliability diagram: accuracy against confidence in bins, before and after the temperature. Saved to `path` when given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, (name, probs) in zip(axes, (("before (T = 1)", probabilities), (f"after (T = {temperature:.2f})", with_temperature(probabilities, temperature)))):
        found = reliability(probs, labels)
        edges = np.asarray(found.bin_edges)
        centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        accuracy = np.array([a if a is not None else np.nan for a in found.accuracy])
        ax.bar(centres, accuracy, width=widths, edgecolor="black", color="#6baed6", label="accuracy in bin")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Confidence (top probability)", fontsize=10)
        ax.set_title(f"{name}: ECE {found.expected_calibration_error:.2%}", fontsize=11)
        ax.tick_params(labelsize=9)
    axes[0].set_ylabel("Accuracy", fontsize=10)
    axes[0].legend(loc="upper left", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def plot_confusion_matrix(matrix, path: Path | str | None = None, normalize: bool = False, title: str | None = None, ax=None):
    """Heat map with the digits on both axes; saved to `path` (PNG) when given. Returns the figure."""
    import matplotlib

    if ax is None and path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=float)
    shown = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalize else matrix
    if ax is None:
        figure, ax = plt.subplots(figsize=(6, 5.2))
    else:
        figure = ax.figure
    image = ax.imshow(shown, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(DIGITS)
    ax.set_yticks(DIGITS)
    ax.set_xlabel("Predicted digit")
    ax.set_ylabel("True digit")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"))
    threshold = shown.max() / 2
    for row in DIGITS:
        for col in DIGITS:
            value = shown[row, col]
            if value:
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                ax.text(col, row, text, ha="center", va="center", fontsize=7, color="white" if value > threshold else "black")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure

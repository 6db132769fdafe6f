"""Behaviour of the committed model: accuracy as recorded, and on the inputs people give."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digit_classifier import config, data, realinputs
from digit_classifier.evaluate import accuracy_on, evaluate, numbers_accuracy
from digit_classifier.predict import read_image
from digit_classifier.preprocess import NoDigitFoundError

# The required floors for the realistic sets (rendered from MNIST *test* digits) and for
# optdigits, the other writers' 8x8 digits shipped with scikit-learn.
REAL_INPUT_FLOORS = {
    "photo": 0.985, "transparent": 0.985, "canvas": 0.98, "lowres": 0.95, "optdigits": 0.93,
    # Photos of notebook pages, notes on a desk and shadowed pages: measured 95.6 / 97.8 / 96.2 % on these
    # 500 (94.8 / 97.8 / 94.6 % before lines were looked for in six rounds, a shadow over most of the page was
    # measured against the lit paper and, under a shadow, pieces far fainter than the digit were dropped;
    # 94.2 / 97.4 / 93.0 % before faint strokes were bridged across darker lines, lines looked for at up to
    # 15 degrees and on both sides of the first angle, the background under a shadow kept lighter than ink and
    # a lone piece cut only when surely two; 94.0 / 96.0 % before a printed line's darkness was read on the paper only, a sliver of desk along
    # the frame was told from a stroke and faint long lines were lines; 89.6 / 95.4 / 89.2 % before printed lines were divided out row by row across them, found at angles
    # scored on offsets that cross the paper, and hand shadows followed with a narrower closing; notebook 86.8 %
    # and desk 95.0 % before strokes along and across removed lines kept their ink and their unity; shadows
    # 75.0 % before a sharp shadow was told from the edge of a note on a desk; 86.4 / 94.6 / 75.4 % with the
    # model trained on digits only; 44.6 / 10.6 / 20.2 % before the scene stage); the floors catch a
    # regression, the aim is 98 %.
    "notebook": 0.94, "desk": 0.96, "shadow": 0.95,
}
REAL_SET_SIZE = 500
# Share of the photo-like set read as exactly one digit: measured 99.8 % (one taken for a number).
PHOTO_ONE_DIGIT_FLOOR = 0.99
# Numbers of 2-6 MNIST test digits (`realinputs.numbers_set`, 400): measured 84.0 % read exactly, 88.2 % of
# digits right in place (81.75 / 87.1 % before touching neighbours were cut anew; 81.0 / 86.7 % before a lone
# doubted pair got the second look and faint marks off the line were dropped; 80.0 / 85.5 % before a cut of a
# digit the model is sure of had to be far surer; 78.5 / 83.5 % before printed lines were divided out row by row
# across them; 66.5 / 68.5 % before digits pressed together got a second look and light 1s were kept, 75.75 /
# 79.9 % before sharp shadows were told from desks, 77.0 / 81.2 % before wide pairs the model is sure of got a
# second look and strokes were joined across removed lines; 64.75 / 67.6 % with the model trained on digits
# only); the floor catches a regression, the aim is 95 %.
NUMBERS_EXACT_FLOOR = 0.82


@pytest.fixture(scope="module")
def report(classifier):
    return evaluate(classifier)


def test_metadata_records_provenance(classifier):
    meta = classifier.metadata
    for key in ("version", "created", "epochs", "parameters", "training_seconds", "test_accuracy", "data_sha256", "preprocessing_version"):
        assert key in meta, key
    assert meta["data_sha256"] == data.expected_checksums()
    assert meta["parameters"] == classifier.model.count_params()


def test_model_file_is_small():
    assert config.model_path().stat().st_size <= 5 * 1024 * 1024


def test_test_accuracy_matches_metadata(classifier, report):
    assert report["n"] == 10_000
    assert report["accuracy"] >= 0.996
    assert abs(report["accuracy"] - classifier.metadata["test_accuracy"]) <= 0.0005


def test_report_is_consistent(report):
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert np.trace(matrix) / matrix.sum() == pytest.approx(report["accuracy"])
    assert [report["per_class"][str(d)]["support"] for d in range(10)] == matrix.sum(1).tolist()
    mistakes = report["most_confident_mistakes"]
    assert all(m["label"] != m["predicted"] for m in mistakes)
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)


@pytest.mark.parametrize("kind", realinputs.KINDS)
@pytest.mark.slow
def test_accuracy_on_realistic_inputs(classifier, kind):
    result = accuracy_on(classifier, *realinputs.make_set(kind, REAL_SET_SIZE))
    assert result["accuracy"] >= REAL_INPUT_FLOORS[kind], result
    if kind == "photo":
        assert result["one_digit"] >= PHOTO_ONE_DIGIT_FLOOR, result


@pytest.mark.slow
def test_numbers_are_read_whole(classifier):
    result = numbers_accuracy(classifier, *realinputs.numbers_set(400))
    assert result["exact"] >= NUMBERS_EXACT_FLOOR, result
    assert result["per_digit"] >= result["exact"] - 0.01  # a number read exactly has every digit right


def test_accuracy_on_other_writers_low_resolution(classifier):
    result = accuracy_on(classifier, *realinputs.optdigits_set())
    assert result["accuracy"] >= REAL_INPUT_FLOORS["optdigits"], result


def _drawn(strokes, width=18, size=280, offset=(0, 0), scale=1.0):
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    for stroke in strokes:
        points = [(offset[0] + x * scale, offset[1] + y * scale) for x, y in stroke]
        pen.line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=(255, 255, 255, 255))
    return np.asarray(canvas)


ONE = [[(140, 40), (140, 240)]]
SEVEN = [[(70, 50), (210, 50), (120, 240)]]
ZERO = [[(140, 40), (90, 70), (75, 140), (90, 210), (140, 240), (190, 210), (205, 140), (190, 70), (140, 40)]]
FOUR = [[(170, 240), (170, 40), (60, 170), (220, 170)]]


@pytest.mark.parametrize("strokes, digit", [(ONE, 1), (SEVEN, 7), (ZERO, 0), (FOUR, 4)])
@pytest.mark.parametrize("place", [dict(), dict(offset=(0, 0), scale=0.4, width=10), dict(offset=(120, 140), scale=0.45), dict(width=32)])
def test_clear_drawings_anywhere_at_any_size_are_right(classifier, strokes, digit, place):
    reading = read_image(classifier, _drawn(strokes, **place))
    assert reading.text == str(digit), [d.probabilities.round(3) for d in reading.digits]


@pytest.mark.parametrize("shift", [(0, 1), (2, 0), (-1, -2)])
def test_label_survives_small_shifts_and_thicker_strokes(classifier, mnist_test, shift):
    images = np.roll(data.to_model_input(mnist_test.images[:300]), shift, axis=(1, 2))
    labels = mnist_test.labels[:300]
    assert np.mean(classifier.probabilities(images).argmax(1) == labels) >= 0.99
    thick = np.maximum(images, np.roll(images, 1, axis=2))
    assert np.mean(classifier.probabilities(thick).argmax(1) == labels) >= 0.98


def test_single_image_call_matches_batch(classifier, mnist_test):
    images = data.to_model_input(mnist_test.images[:16])
    batch = classifier.probabilities(images)
    one = classifier.probabilities(images[3])
    assert one.shape == (1, 10)
    assert np.allclose(one[0], batch[3], atol=1e-5)
    assert np.allclose(batch.sum(1), 1.0, atol=1e-4)


def test_blank_canvas_gets_no_prediction(classifier):
    with pytest.raises(NoDigitFoundError):
        read_image(classifier, np.zeros((280, 280, 4), np.uint8))

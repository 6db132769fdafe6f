"""The Streamlit app through AppTest: pages render, uploads are predicted, feedback is stored and undone,
the review page lists, moves and deletes. (AppTest cannot draw: the canvas is covered by the browser tests.)"""

from __future__ import annotations

import io
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_pages import common
from digit_classifier import config, feedback, predict, realinputs, versions
from digit_classifier.preprocess import PREPROCESSING_VERSION, PreprocessError, preprocess
from tools.app_harness import APP, digit_png

RUN_TIMEOUT = 120  # the first run loads the model (and, on a loaded machine, can be slow)
REVIEW_PAGE = "app_pages/review.py"


def start_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def upload(app: AppTest, *files: tuple[str, bytes]) -> AppTest:
    app.file_uploader(key="uploads").set_value([(name, data, "application/octet-stream") for name, data in files])
    app.run()
    assert not app.exception, app.exception
    return app


def click(app: AppTest, label: str, index: int = 0) -> AppTest:
    [button for button in app.button if button.label == label][index].click()
    app.run()
    assert not app.exception, app.exception
    return app


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def predictions(app: AppTest) -> list[str]:
    return [text for text in texts(app.subheader) if text.startswith("Prediction")]


def stored(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.fixture
def app(trained_model, feedback_root) -> AppTest:
    return start_app()


def test_classify_page_renders_both_input_modes_and_the_model_version(app):
    assert [tab.label for tab in app.tabs] == ["Draw", "Upload"]
    assert any(text.startswith("Draw a digit") for text in texts(app.info))
    assert predictions(app) == []
    version = json.loads(config.metadata_path().read_text())["version"]
    assert f"**Model** `{version}`" in texts(app.sidebar.markdown)
    assert [slider.label for slider in app.slider] == ["Stroke width"]
    assert {"Undo stroke", "Clear"} <= {button.label for button in app.button}


def test_upload_shows_prediction_confidence_chart_and_model_input(app, feedback_root):
    upload(app, ("seven.png", digit_png(7)))
    assert predictions(app) == ["Prediction: 7"]
    assert any(re.fullmatch(r"Confidence: \*\*\d+\.\d%\*\*", text) for text in texts(app.markdown))
    assert len(app.get("vega_lite_chart")) == 1
    assert "What the model saw (28×28)" in [caption for image in app.image for caption in image.captions]
    assert texts(app.warning) == []
    assert stored(feedback_root) == []


def test_an_uploaded_notebook_photo_shows_how_it_was_read(app, feedback_root):
    sources, labels = realinputs.make_set("notebook", 1)
    upload(app, ("page.jpg", sources[0]))
    assert predictions(app) == [f"Prediction: {labels[0]}"]
    assert [expander.label for expander in app.expander] == ["How the picture was read"]
    captions = [caption for image in app.image for caption in image.captions]
    assert captions[-5:] == ["Picture", "Surface found", "Printed lines removed", "Ink", "28×28"]


# What the model says: the status of each digit (forced through the calibration: the committed model may be sure
# of nearly everything) ---------------------------------------------------------------------------------------

NOT_A_DIGIT_MESSAGE = "This doesn't look like a digit"
UNSURE_EVERYTHING = predict.Calibration(ok_threshold=1.01, pair_threshold=0.0)  # no top digit alone is enough
NOT_A_DIGIT_EVERYTHING = predict.Calibration(ok_threshold=1.01, pair_threshold=1.01)  # nor any two together


@dataclasses.dataclass(frozen=True)
class FixedStatuses(predict.Calibration):
    """A calibration that gives the digits of a picture these statuses, left to right."""

    fixed: tuple[str, ...] = ()

    def statuses(self, calibrated):
        if len(calibrated) == len(self.fixed):
            return list(self.fixed)
        assert len(calibrated) % 2 == 0  # halves of a doubted digit (predict.read_digits): not digits, so it stays one
        return [predict.NOT_A_DIGIT] * len(calibrated)


def forget_readings() -> None:
    """The app caches readings by picture and model, not by calibration: drop them when the calibration is forced."""
    common.predict.clear()
    common.predict_upload.clear()


@pytest.fixture
def force(monkeypatch):
    """force(calibration): the app's readings use `calibration` during this test, and no reading made with it outlives it."""

    def forcing(calibration: predict.Calibration) -> None:
        monkeypatch.setattr(predict.Calibration, "of", classmethod(lambda cls, classifier: calibration))
        forget_readings()

    yield forcing
    forget_readings()


def subheaders(app: AppTest) -> list[str]:
    return texts(app.subheader)


def percent(text: str) -> float:
    return float(text.rstrip("%"))


def test_a_confident_digit_is_shown_as_before(app):
    upload(app, ("seven.png", digit_png(7)))
    assert subheaders(app) == ["Prediction: 7"]
    assert texts(app.warning) == [] and not any(text.startswith("Closest digits") for text in texts(app.caption))


def test_an_unsure_digit_names_the_two_digits_it_hesitates_between(app, force):
    force(UNSURE_EVERYTHING)
    upload(app, ("seven.png", digit_png(7, stroke=13)))
    [heading] = subheaders(app)
    found = re.fullmatch(r"Unsure: 7 or (\d)\?", heading)
    assert found and found[1] != "7"
    [confidence] = [text for text in texts(app.markdown) if text.startswith("Confidence")]
    shares = re.fullmatch(rf"Confidence: \*\*([\d.]+)%\*\* for 7, \*\*([\d.]+)%\*\* for {found[1]}", confidence)
    assert shares and percent(shares[1]) >= percent(shares[2])
    assert predictions(app) == []  # never a bare "Prediction: 7"


def test_a_picture_that_is_not_a_digit_is_said_with_the_two_closest_digits(app, force):
    force(NOT_A_DIGIT_EVERYTHING)
    upload(app, ("seven.png", digit_png(7, stroke=12)))
    assert subheaders(app) == [NOT_A_DIGIT_MESSAGE]
    [closest] = [text for text in texts(app.caption) if text.startswith("Closest digits")]
    found = re.fullmatch(r"Closest digits: 7 \((\d+)%\), (\d) \((\d+)%\)", closest)
    assert found and found[2] != "7" and int(found[1]) >= int(found[3])
    assert not any(text.startswith("Confidence") for text in texts(app.markdown))
    assert len(app.get("vega_lite_chart")) == 1  # the probabilities are still there to look at


def test_wrong_then_not_a_digit_saves_one_item_in_not_a_digit_and_undo_removes_it(app, feedback_root):
    upload(app, ("not really a seven.png", digit_png(7, stroke=11)))
    assert predictions(app) == ["Prediction: 7"]
    click(app, "Wrong")
    [choice] = app.segmented_control
    assert choice.label == "Which digit is it?" and choice.options == [*map(str, range(10)), "Not a digit"]
    choice.set_value(config.NOT_A_DIGIT_LABEL).run()
    click(app, "Save correction")

    files = stored(feedback_root)
    assert len(files) == 2 and all(file.startswith("not_a_digit/") for file in files)
    [image] = [file for file in files if file.endswith(".png")]
    sidecar = json.loads((feedback_root / image).with_suffix(".json").read_text())
    assert (sidecar["true_label"], sidecar["predicted_label"], sidecar["predicted_status"]) == ("not_a_digit", 7, "ok")
    assert sidecar["original_filename"] == "not_really_a_seven.png" and sidecar["source"] == "upload"
    assert [item.id for item in feedback.list_items()] == [image]
    assert any(text == f"Saved as not a digit in `wrong_predictions/{image}`." for text in texts(app.success))

    click(app, "Undo save")
    assert stored(feedback_root) == []
    assert any(text.startswith("Undone") for text in texts(app.info))


def test_what_the_model_flagged_can_still_be_saved_as_not_a_digit_or_as_its_digit(app, feedback_root, force):
    force(NOT_A_DIGIT_EVERYTHING)
    upload(app, ("seven.png", digit_png(7, stroke=10)))
    click(app, "Wrong")
    app.segmented_control[0].set_value(config.NOT_A_DIGIT_LABEL).run()
    assert any(text.startswith("The model also said this is not a digit. Saving it still keeps it") for text in texts(app.caption))
    click(app, "Save correction")
    files = stored(feedback_root)
    assert len(files) == 2 and all(file.startswith("not_a_digit/") for file in files)
    sidecar = json.loads((feedback_root / files[0]).with_suffix(".json").read_text())
    assert (sidecar["true_label"], sidecar["predicted_label"], sidecar["predicted_status"]) == ("not_a_digit", 7, "not_a_digit")
    click(app, "Undo save")
    assert stored(feedback_root) == []

    app.segmented_control[0].set_value(7).run()  # its closest digit, but the model said "not a digit": a correction
    assert not any(text.startswith("The model also") for text in texts(app.info) + texts(app.caption))
    click(app, "Save correction")
    files = stored(feedback_root)
    assert len(files) == 2 and all(file.startswith("7/") for file in files)
    sidecar = json.loads((feedback_root / files[0]).with_suffix(".json").read_text())
    assert (sidecar["true_label"], sidecar["predicted_label"], sidecar["predicted_status"]) == (7, 7, "not_a_digit")


def test_a_number_says_the_status_of_each_digit(app, force, number_photo):
    picture, text = number_photo
    force(FixedStatuses(fixed=(predict.OK, predict.UNSURE, predict.NOT_A_DIGIT)))
    upload(app, ("number.png", picture))
    assert predictions(app) == [f"Prediction: {text}"]
    cards = [caption for image in app.image for caption in image.captions if "·" in caption or caption == "not a digit"]
    assert len(cards) == 3
    assert re.fullmatch(rf"{text[0]} · \d+%", cards[0])
    unsure = re.fullmatch(rf"{text[1]} · \d+% · or (\d)\?", cards[1])
    assert unsure and unsure[1] != text[1]
    assert cards[2] == "not a digit"
    [warning] = texts(app.warning)
    lines = warning.split("  \n")
    assert lines[0] == f"Digit 2: unsure, {text[1]} or {unsure[1]}?"
    assert re.fullmatch(rf"Digit 3: doesn't look like a digit; closest {text[2]} \(\d+%\), \d \(\d+%\)", lines[1])
    assert len(lines) == 2


def test_a_number_of_which_nothing_is_a_digit_says_so(app, force, number_photo):
    force(NOT_A_DIGIT_EVERYTHING)
    upload(app, ("number.png", number_photo[0]))
    assert subheaders(app) == ["None of these 3 marks looks like a digit"]
    assert len(texts(app.warning)[0].split("  \n")) == 3


def test_every_bad_file_gets_its_own_clear_message_and_nothing_is_written(app, feedback_root):
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, format="PNG")
    blank = io.BytesIO()
    Image.new("RGB", (120, 120), "white").save(blank, format="PNG")
    bad = {
        "notes.txt": b"this is not an image",
        "truncated.png": digit_png(4)[:80],
        "bomb.png": bomb.getvalue(),
        "blank.png": blank.getvalue(),
    }
    upload(app, *bad.items())
    errors = texts(app.error)
    assert len(errors) == len(bad)
    for (name, data), message in zip(bad.items(), errors, strict=True):
        with pytest.raises(PreprocessError) as expected:
            preprocess(io.BytesIO(data))
        assert message == f"**{common.escape_markdown(name)}**: {expected.value}"
    assert predictions(app) == []
    assert stored(feedback_root) == []


def test_wrong_prediction_is_saved_once_with_its_metadata_and_undo_removes_it(app, feedback_root):
    name = "../../photos/my seven (1).png"
    upload(app, (name, digit_png(7)))
    assert predictions(app) == ["Prediction: 7"]
    click(app, "Wrong")
    app.segmented_control[0].set_value(1).run()
    click(app, "Save correction")

    files = stored(feedback_root)
    assert len(files) == 2 and all(file.startswith("1/") for file in files)
    metadata = json.loads((feedback_root / [f for f in files if f.endswith(".json")][0]).read_text())
    confidence_text = next(text for text in texts(app.markdown) if text.startswith("Confidence"))
    shown_confidence = float(re.search(r"\d+\.\d", confidence_text)[0])
    assert metadata["true_label"] == 1
    assert metadata["predicted_label"] == 7
    assert abs(metadata["confidence"] * 100 - shown_confidence) <= 0.05
    assert metadata["confidence"] == max(metadata["probabilities"]) and len(metadata["probabilities"]) == 10
    assert metadata["source"] == "upload"
    assert metadata["original_filename"] == "my_seven__1_.png"
    assert metadata["model_version"] == json.loads(config.metadata_path().read_text())["version"]
    assert metadata["preprocessing_version"] == PREPROCESSING_VERSION
    assert any(text.startswith("Saved as a 1") for text in texts(app.success))

    click(app, "Undo save")
    assert stored(feedback_root) == []
    assert any(text.startswith("Undone") for text in texts(app.info))
    assert "Undo save" not in [button.label for button in app.button]


def test_the_same_image_twice_is_stored_once(app, feedback_root):
    upload(app, ("a.png", digit_png(7)), ("b.png", digit_png(7)))
    assert predictions(app) == ["Prediction: 7", "Prediction: 7"]
    for index in (0, 1):
        click(app, "Wrong", index)
        app.segmented_control[index].set_value(2).run()
        click(app, "Save correction", index)
    assert len(stored(feedback_root)) == 2
    assert any(text.startswith("Already saved") for text in texts(app.info))


def test_wrong_with_the_predicted_digit_is_explained_not_saved(app, feedback_root):
    upload(app, ("seven.png", digit_png(7)))
    click(app, "Wrong")
    app.segmented_control[0].set_value(7).run()
    assert any(text.startswith("The model also read 7") for text in texts(app.info))
    assert [button.disabled for button in app.button if button.label == "Save correction"] == [True]
    assert stored(feedback_root) == []


def test_correct_is_acknowledged_and_stores_nothing(app, feedback_root):
    upload(app, ("seven.png", digit_png(7)))
    click(app, "Correct")
    assert any(text.startswith("Thanks!") for text in texts(app.success))
    assert stored(feedback_root) == []


def test_review_page_counts_lists_moves_and_deletes(trained_model, feedback_root):
    saved = feedback.save_correction(
        digit_png(7), 1, predicted_label=7, confidence=0.9, probabilities=[0.01] * 9 + [0.91],
        source="upload", original_filename="seven.png", model_version="test",
    ).item
    (feedback_root / "4").mkdir()
    (feedback_root / "4" / "dropped by hand.png").write_bytes(digit_png(4))
    app = start_app()
    app.switch_page(REVIEW_PAGE).run()
    assert not app.exception, app.exception

    counts = {metric.label: metric.value for metric in app.metric}
    assert counts == {**{f"Digit {d}": "1" if d in (1, 4) else "0" for d in range(10)}, "Not a digit": "0"}
    captions = texts(app.caption)
    assert any(text.startswith("true 1 · model said 7 · ") and text.endswith(" UTC") for text in captions)
    assert any(text.startswith("true 4 · added by hand · ") for text in captions)
    assert [button.label for button in app.download_button] == ["Download all (zip)"]

    app.selectbox(key=f"relabel-{saved.id}").set_value(3).run()
    moved = feedback_root / "3" / saved.path.name
    assert moved.is_file() and not saved.path.exists()
    assert json.loads(moved.with_suffix(".json").read_text())["true_label"] == 3
    assert any(text.startswith("Moved") for text in texts(app.success))

    app.button(key="delete-4/dropped by hand.png").click().run()
    assert stored(feedback_root) == sorted([f"3/{saved.path.name}", f"3/{saved.path.with_suffix('.json').name}"])
    assert {metric.label: metric.value for metric in app.metric}["Digit 3"] == "1"


def test_review_lists_not_a_digit_on_its_own_and_moves_it_to_a_digit_and_back(trained_model, feedback_root):
    flagged = feedback.save_correction(
        digit_png(7), "not_a_digit", predicted_label=4, predicted_status="not_a_digit", confidence=0.31,
        probabilities=[0.05, 0.04, 0.05, 0.05, 0.31, 0.05, 0.1, 0.05, 0.08, 0.22], source="draw",
    ).item
    digit = feedback.save_correction(
        digit_png(4), 1, predicted_label=4, confidence=0.9, probabilities=[0.01] * 4 + [0.91] + [0.01] * 5, source="upload",
    ).item
    app = start_app()
    app.switch_page(REVIEW_PAGE).run()
    assert not app.exception, app.exception

    counts = {metric.label: metric.value for metric in app.metric}
    assert (counts["Not a digit"], counts["Digit 1"], sum(map(int, counts.values()))) == ("1", "1", 2)
    assert any(text.startswith("not a digit · model said not a digit (closest 4) · ") for text in texts(app.caption))
    [show] = app.segmented_control
    assert show.options[-1] == "Not a digit"
    show.set_value(config.NOT_A_DIGIT_LABEL).run()
    assert [box.key for box in app.selectbox] == [f"relabel-{flagged.id}"]  # only the picture that is not a digit
    assert app.selectbox[0].value == config.NOT_A_DIGIT_LABEL and app.selectbox[0].options[-1] == "Not a digit"

    app.selectbox(key=f"relabel-{flagged.id}").set_value(4).run()
    assert not app.exception, app.exception
    as_four = feedback_root / "4" / flagged.path.name
    assert as_four.is_file() and not flagged.path.exists()
    assert json.loads(as_four.with_suffix(".json").read_text())["true_label"] == 4
    assert any(text == f"Moved `{flagged.id}` to `4/{flagged.path.name}`." for text in texts(app.success))
    assert {metric.label: metric.value for metric in app.metric}["Not a digit"] == "0"

    app.segmented_control[0].set_value(4).run()
    app.selectbox(key=f"relabel-4/{flagged.path.name}").set_value(config.NOT_A_DIGIT_LABEL).run()
    assert not app.exception, app.exception
    assert flagged.path.is_file() and not as_four.exists()
    assert json.loads(flagged.path.with_suffix(".json").read_text())["true_label"] == "not_a_digit"
    assert [item.id for item in feedback.list_items() if not item.is_digit] == [flagged.id]
    assert digit.path.is_file()


def test_a_promoted_version_is_used_without_restart(trained_model, feedback_root, tmp_path, monkeypatch):
    model_dir = shutil.copytree(config.model_dir(), tmp_path / "model", symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    base = versions.resolve_current(model_dir)
    monkeypatch.setenv("DIGIT_MODEL_DIR", str(model_dir))
    app = start_app()
    assert f"**Model** `{base.name}`" in texts(app.sidebar.markdown)

    metadata = {**base.metadata, "version": "replaced-for-test", "kind": "finetuned", "parent": base.name}
    versions.save_version(model_dir, metadata, lambda folder: [shutil.copyfile(base.path / name, folder / name) for name in versions.VERSION_FILES])
    versions.promote_version(model_dir, "replaced-for-test")
    app.run()
    assert "**Model** `replaced-for-test`" in texts(app.sidebar.markdown)


def test_a_saved_and_promoted_model_answers_at_once_and_rollback_restores_both_files(trained_model, feedback_root, tmp_path, monkeypatch):
    from digit_classifier.model import load_classifier, save_version

    model_dir = shutil.copytree(config.model_dir(), tmp_path / "model", symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    base = versions.resolve_current(model_dir)
    base_files = {name: (base.path / name).read_bytes() for name in versions.VERSION_FILES}
    monkeypatch.setenv("DIGIT_MODEL_DIR", str(model_dir))
    app = upload(start_app(), ("seven.png", digit_png(7)))
    assert predictions(app) == ["Prediction: 7"]

    # A model that answers 3 to everything, saved through the same path as fine-tuning (export and its check included).
    model = load_classifier(base.path).model
    kernel, bias = model.get_layer("probabilities").get_weights()
    bias[3] += 100.0
    model.get_layer("probabilities").set_weights([kernel, bias])
    saved = save_version(model, {**base.metadata, "version": "ft-threes", "kind": "finetuned", "parent": base.name}, model_dir)
    assert saved.metadata["litert_export"]["max_probability_difference"] <= 1e-4
    versions.promote_version(model_dir, "ft-threes")
    app = upload(app, ("seven-again.png", digit_png(7, stroke=16)))
    assert "**Model** `ft-threes`" in texts(app.sidebar.markdown)
    assert predictions(app) == ["Prediction: 3"]

    assert versions.rollback(model_dir) == versions.Rollback("ft-threes", base.name)
    assert {name: (model_dir / name).read_bytes() for name in versions.VERSION_FILES} == base_files
    app = upload(app, ("seven-once-more.png", digit_png(7, stroke=12)))
    assert f"**Model** `{base.name}`" in texts(app.sidebar.markdown)
    assert predictions(app) == ["Prediction: 7"]


DAMAGE = {
    "corrupt-metadata": ("metadata.json", b'{"version": "base'),
    "empty-metadata": ("metadata.json", b""),
    "list-metadata": ("metadata.json", b"[]"),
    "wrong-schema": ("metadata.json", b'{"version": "someone-else", "kind": "base"}'),
    "truncated-model": ("model.keras", None),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_model_is_explained_on_classify_and_review_still_works(feedback_root, tmp_path, monkeypatch, kind):
    model_dir = shutil.copytree(config.model_dir(), tmp_path / "model", symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    name, content = DAMAGE[kind]
    target = versions.resolve_current(model_dir).path / name
    target.write_bytes(target.read_bytes()[:5000] if content is None else content)
    monkeypatch.setenv("DIGIT_MODEL_DIR", str(model_dir))
    feedback.save_correction(
        digit_png(7), 1, predicted_label=7, confidence=0.9, probabilities=[0.01] * 9 + [0.91], source="upload",
    )

    app = start_app()

    [problem] = [text for text in texts(app.sidebar.warning) if text.startswith("model unavailable: ")]
    assert str(target) in problem and "\n" not in problem
    assert any(problem.removeprefix("model unavailable: ") in text for text in texts(app.error))
    assert predictions(app) == [] and not app.tabs
    app.switch_page(REVIEW_PAGE).run()
    assert not app.exception, app.exception
    assert {metric.label: metric.value for metric in app.metric}["Digit 1"] == "1"


def test_review_lists_a_name_that_is_not_utf8_and_skips_links_and_fifos(trained_model, feedback_root, tmp_path):
    (feedback_root / "4").mkdir()
    with open(os.path.join(os.fsencode(feedback_root / "4"), b"caf\xe9 \xff.png"), "wb") as handle:
        handle.write(digit_png(4))
    secret = tmp_path / "secret.png"
    secret.write_bytes(digit_png(1))
    (feedback_root / "4" / "link.png").symlink_to(secret)
    os.mkfifo(feedback_root / "4" / "pipe.json")
    app = start_app()
    app.switch_page(REVIEW_PAGE).run()
    assert not app.exception, app.exception

    assert {metric.label: metric.value for metric in app.metric}["Digit 4"] == "1"
    [warning] = texts(app.warning)
    assert "4/link.png: skipped: not a regular file" in warning and "4/pipe.json: skipped: not a regular file" in warning
    app.button(key="delete-4/caf\\xe9 \\xff.png").click().run()
    assert not app.exception, app.exception
    assert b"caf\xe9 \xff.png" not in os.listdir(os.fsencode(feedback_root / "4"))
    assert secret.is_file()


def test_without_a_model_the_app_explains_and_review_still_works(feedback_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGIT_MODEL_DIR", str(tmp_path / "no-model"))
    app = start_app()
    assert any("No trained model" in text for text in texts(app.error))
    app.switch_page(REVIEW_PAGE).run()
    assert not app.exception
    assert any(text.startswith("No corrections yet") for text in texts(app.info))


# What the first page load waits for ----------------------------------------------------------


def modules_loaded_by(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the SciPy/OpenCV/scene modules it had imported at the end."""
    code += "\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'cv2') or m == 'digit_classifier.scene')))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_first_page_imports_no_picture_reading_and_it_is_prepared_in_the_background():
    # what app.py and the classify page import (the canvas component itself only imports inside a server)
    first_page = "import json, sys\nimport app_pages.common, app_pages.prediction_view, digit_classifier.feedback, digit_classifier.preprocess"
    assert modules_loaded_by(first_page) == []
    prepared = modules_loaded_by(
        first_page + "\nimport gc\nfrom app_pages import common\ncommon.prepare_reading().join(timeout=120)\n"
        "assert gc.get_freeze_count() > 0"
    )
    assert "digit_classifier.scene" in prepared and "scipy.ndimage" in prepared and "cv2" in prepared


# Numbers ------------------------------------------------------------------------------------


def test_an_uploaded_number_shows_the_whole_number_and_one_card_per_digit(app, number_photo):
    picture, text = number_photo
    upload(app, ("number.png", picture))
    assert predictions(app) == [f"Prediction: {text}"]
    cards = [caption for image in app.image for caption in image.captions if re.fullmatch(r"\d · \d+%( · or \d\?)?", caption)]
    assert [card.split(" · ")[0] for card in cards] == list(text)
    assert [expander.label for expander in app.expander][:1] == ["Probabilities of each digit"]
    [chart] = app.get("vega_lite_chart")  # one chart for all the digits, a row each
    assert json.loads(chart.proto.spec)["encoding"]["y"]["field"] == "place"
    assert {"Correct", "Wrong"} <= {button.label for button in app.button}


def test_a_single_digit_keeps_its_view(app):
    upload(app, ("seven.png", digit_png(7)))
    assert predictions(app) == ["Prediction: 7"]
    assert len(app.get("vega_lite_chart")) == 1
    click(app, "Wrong")
    assert [control.label for control in app.segmented_control] == ["Which digit is it?"]
    assert len(app.text_input) == 0


def type_number(app: AppTest, typed: str) -> AppTest:
    app.text_input[0].set_value(typed).run()
    assert not app.exception, app.exception
    return app


def test_correcting_one_digit_of_a_number_saves_one_crop_and_undo_removes_everything(app, feedback_root, number_photo):
    picture, text = number_photo
    upload(app, ("my number.png", picture))
    click(app, "Wrong")
    assert [field.label for field in app.text_input] == ["What is the number?"]
    typed = text[0] + "1" + text[2]  # the middle digit was meant to be a 1
    type_number(app, typed)
    assert any(caption == f"To save (1 of 3 digits): digit 2: {text[1]} → 1" for caption in texts(app.caption))
    click(app, "Save correction")

    files = stored(feedback_root)
    crops = [file for file in files if file.startswith("1/") and file.endswith(".png")]
    sources = [file for file in files if file.startswith("sources/") and file.endswith(".png")]
    assert len(crops) == 1 and len(sources) == 1 and len(files) == 4
    sidecar = json.loads((feedback_root / crops[0]).with_suffix(".json").read_text())
    assert (sidecar["true_label"], sidecar["predicted_label"], sidecar["position"], sidecar["count"]) == (1, int(text[1]), 1, 3)
    assert (sidecar["reading"], sidecar["typed"], sidecar["original_filename"]) == (text, typed, "my_number.png")
    assert sidecar["source_sha256"] == Path(sources[0]).stem
    assert any(message.startswith("Saved 1 digit: a 1 in `wrong_predictions/1/") for message in texts(app.success))

    review = start_app()
    review.switch_page(REVIEW_PAGE).run()
    assert any(f"digit 2 of 3 in {text}, meant {typed}" in caption for caption in texts(review.caption))
    images = len(review.image)
    review.toggle[0].set_value(True).run()
    assert not review.exception, review.exception
    assert len(review.image) == images + 1  # the source picture, only once asked for

    click(app, "Undo save")
    assert stored(feedback_root) == []
    assert any(message == "Undone: 2 files removed." for message in texts(app.info))


def test_a_number_typed_with_another_length_is_said_and_kept_for_review(app, feedback_root, number_photo):
    picture, text = number_photo
    upload(app, ("number.png", picture))
    click(app, "Wrong")
    type_number(app, text + "9")
    assert any(message.startswith("I found 3 digits, you typed 4.") for message in texts(app.warning))
    click(app, "Save correction")

    files = stored(feedback_root)
    assert len(files) == 2 and all(file.startswith("unmatched/") for file in files)
    sidecar = json.loads((feedback_root / files[0]).with_suffix(".json").read_text())
    assert (sidecar["reading"], sidecar["typed"], len(sidecar["boxes"])) == (text, text + "9", 3)
    assert any(message.startswith("I found 3 digits, you typed 4. The picture and your number") for message in texts(app.warning))

    review = start_app()
    review.switch_page(REVIEW_PAGE).run()
    assert [expander.label for expander in review.expander] == ["1 number not split into digits (not used for fine-tuning)"]
    assert any(text in markdown and text + "9" in markdown for markdown in texts(review.markdown))

    click(app, "Undo save")
    assert stored(feedback_root) == []


@pytest.mark.parametrize(("typed", "shown"), [("47x", "Type digits only"), ("472", "The model also read 472")])
def test_a_typed_number_that_is_no_correction_is_explained_and_not_saved(app, feedback_root, number_photo, typed, shown):
    picture, text = number_photo
    upload(app, ("number.png", picture))
    click(app, "Wrong")
    type_number(app, typed.replace("472", text))
    assert any(message.startswith(shown.replace("472", text)) for message in texts(app.warning) + texts(app.info))
    assert [button.disabled for button in app.button if button.label == "Save correction"] == [True]
    assert stored(feedback_root) == []

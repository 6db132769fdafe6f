"""The fine-tuning loop: retrieve, split, train from the base, evaluate, version, promote, roll back.

Everything runs on copies: the committed model is copied into a temporary
folder and the feedback store is built there, so nothing in the repository
changes. Training uses a few steps only; the real settings are measured by
benchmarks/bench_finetune.py and `make finetune-demo`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digit_classifier import config, feedback, feedback_set, finetune, versions

FAST = {"epochs": 1, "steps": 5}  # a few training steps: enough to exercise the loop, not to learn


def png_of(digit: np.ndarray, scale: int = 3) -> bytes:
    """An MNIST digit as a person's upload: black on white, enlarged."""
    image = Image.fromarray(255 - digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def first_of_each_label(mnist_test, per_label: int) -> list[tuple[int, np.ndarray]]:
    chosen = []
    for label in range(10):
        indices = np.flatnonzero(mnist_test.labels == label)[:per_label]
        chosen.extend((label, mnist_test.images[i]) for i in indices)
    return chosen


def build_store(root: Path, mnist_test, per_label: int = 6) -> None:
    """Half saved by the app's API (with metadata), half dropped in by hand (no metadata)."""
    for n, (label, digit) in enumerate(first_of_each_label(mnist_test, per_label)):
        if n % 2:
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            (root / str(label) / f"by_hand_{n}.png").write_bytes(png_of(digit))
        else:
            probabilities = np.full(10, 0.02)
            probabilities[(label + 1) % 10] = 0.82
            feedback.save_correction(
                png_of(digit), label, predicted_label=(label + 1) % 10, confidence=0.82,
                probabilities=probabilities, source="upload", root=root,
            )


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def model_dir(trained_model: Path, tmp_path: Path) -> Path:
    """A copy of the committed model folder (current model, metadata, versions/)."""
    copy = tmp_path / "model"
    shutil.copytree(config.model_dir(), copy, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    return copy


@pytest.fixture
def store(feedback_root: Path, mnist_test) -> Path:
    build_store(feedback_root, mnist_test)
    return feedback_root


def run_cli(*args: str, model_dir: Path, feedback_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DIGIT_MODEL_DIR": str(model_dir), "DIGIT_FEEDBACK_DIR": str(feedback_dir)}
    return subprocess.run(
        [sys.executable, "-m", "digit_classifier", *args],
        cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300, env=env,
    )


# Retrieve and split (no training) ---------------------------------------------------------


def test_labels_come_from_the_folders(feedback_root, mnist_test):
    three = mnist_test.images[np.flatnonzero(mnist_test.labels == 3)[0]]
    saved = feedback.save_correction(png_of(three), 3, predicted_label=8, confidence=0.9, probabilities=[0.1] * 10, source="draw", root=feedback_root)
    moved = feedback_root / "5" / saved.item.path.name
    moved.parent.mkdir()
    saved.item.path.replace(moved)
    saved.item.path.with_suffix(".json").replace(moved.with_suffix(".json"))  # its metadata still says 3
    (feedback_root / "7").mkdir()
    Image.open(io.BytesIO(png_of(mnist_test.images[0]))).convert("RGB").save(feedback_root / "7" / "photo.JPG")

    collected = feedback_set.load_feedback(feedback_root)

    assert sorted((s.name, s.label, s.source) for s in collected.samples) == [
        (f"5/{moved.name}", 5, "draw"),
        ("7/photo.JPG", 7, "by hand"),
    ]
    assert all(s.image.shape == (28, 28) for s in collected.samples)


def test_unusable_files_are_skipped_and_listed(store):
    (store / "3" / "notes.png").write_text("not an image")
    good = next((store / "4").glob("*.png")).read_bytes()
    (store / "4" / "cut.png").write_bytes(good[: len(good) // 2])
    Image.new("L", (60, 60), 255).save(store / "2" / "blank.png")
    (store / "1" / ".partial.png.tmp").write_bytes(b"half written")
    (store / "1" / "readme.txt").write_text("ignored: not an image file")

    collected = feedback_set.load_feedback(store)

    assert sorted(entry.name for entry in collected.skipped) == ["2/blank.png", "3/notes.png", "4/cut.png"]
    assert len(collected.samples) == 60
    warning = " ".join(collected.warnings())
    assert "3/notes.png" in warning and "4/cut.png" in warning and "2/blank.png" in warning


def test_links_and_special_files_are_never_read(store, tmp_path, mnist_test):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_of(mnist_test.images[0]))
    shutil.rmtree(store / "8")
    (store / "8").symlink_to(outside, target_is_directory=True)
    (store / "3" / "link.png").symlink_to(outside / "secret.png")
    os.mkfifo(store / "3" / "pipe.png")

    collected = feedback_set.load_feedback(store)

    assert len(collected.samples) == 54 and not [s for s in collected.samples if s.name.startswith("8/")]
    assert sorted((entry.name, entry.reason) for entry in collected.skipped) == [
        ("3/link.png", "skipped: not a regular file"),
        ("3/pipe.png", "skipped: not a regular file"),
        ("8", "skipped: a label folder must not be a link"),
    ]


def test_duplicates_count_once_and_conflicting_labels_are_left_out(feedback_root, mnist_test):
    one, other = png_of(mnist_test.images[2]), png_of(mnist_test.images[3])
    for name in ("a.png", "b.png"):
        (feedback_root / "1").mkdir(exist_ok=True)
        (feedback_root / "1" / name).write_bytes(one)
    for label in ("4", "9"):
        (feedback_root / label).mkdir(exist_ok=True)
        (feedback_root / label / "same.png").write_bytes(other)

    collected = feedback_set.load_feedback(feedback_root)

    assert [s.name for s in collected.samples] == ["1/a.png"] and collected.duplicates == 1
    assert collected.conflicts == [feedback_set.Conflict(["4/same.png", "9/same.png"], [4, 9])]


def test_holdout_is_stable_as_the_store_grows():
    def sample(i: int, label: int) -> feedback_set.FeedbackSample:
        return feedback_set.FeedbackSample(label, hashlib.sha256(str(i).encode()).hexdigest(), f"{label}/{i}", "draw", np.zeros((28, 28), np.float32))

    small = [sample(i, i % 10) for i in range(200)]
    grown = small + [sample(i, i % 10) for i in range(200, 600)]
    train_small, held_small = feedback_set.split_holdout(small)
    train_grown, held_grown = feedback_set.split_holdout(grown)

    assert {s.sha256 for s in held_small} <= {s.sha256 for s in held_grown}
    assert not {s.sha256 for s in train_grown} & {s.sha256 for s in held_grown}
    assert 0.1 < len(held_grown) / len(grown) < 0.3
    assert all(any(s.label == label for s in held_grown) for label in range(10))


def test_too_few_samples_are_all_used_for_training_and_the_report_says_so():
    few = [feedback_set.FeedbackSample(i % 10, f"{i:064x}", f"{i % 10}/{i}", "draw", np.zeros((28, 28), np.float32)) for i in range(12)]
    train_part, held = feedback_set.split_holdout(few)
    assert len(train_part) == 12 and held == []
    summary = feedback_set.summarize_feedback(feedback_set.Feedback(few), train_part, held)
    assert "too few" in summary.holdout_note


def test_replay_balances_the_labels_of_each_batch():
    """Each whole batch holds the ten digits equally and non-digits in the base training's share, whatever the feedback holds."""
    from digit_classifier.train import NON_DIGIT_SHARE

    for skewed in (np.array([8] * 30 + [9] * 10), np.array([8] * 30 + [config.NOT_A_DIGIT_LABEL] * 10)):
        shares = finetune.replay_label_shares(skewed)
        per_batch = finetune.FEEDBACK_PER_BATCH * np.bincount(skewed, minlength=11) / len(skewed)
        per_batch += (finetune.BATCH_SIZE - finetune.FEEDBACK_PER_BATCH) * shares
        assert shares.sum() == pytest.approx(1.0)
        assert np.allclose(per_batch[:10], finetune.BATCH_SIZE * (1 - NON_DIGIT_SHARE) / 10)
        assert per_batch[10] == pytest.approx(finetune.BATCH_SIZE * NON_DIGIT_SHARE)


# The whole loop ----------------------------------------------------------------------------


def test_empty_store_says_so_and_creates_no_version(model_dir, feedback_root):
    versions_before = sorted(p.name for p in (model_dir / "versions").iterdir())
    result = run_cli("finetune", model_dir=model_dir, feedback_dir=feedback_root)
    assert result.returncode == 0, result.stderr
    assert "No usable feedback" in result.stdout and "nothing to fine-tune" in result.stdout
    assert sorted(p.name for p in (model_dir / "versions").iterdir()) == versions_before


@pytest.mark.slow
def test_promotion_is_refused_when_mnist_accuracy_drops(model_dir, store):
    current = file_hashes(model_dir)
    store_before = file_hashes(store)

    result = finetune.finetune(store, model_dir, max_mnist_drop=-1.0, **FAST)  # demands a 1 pp MNIST gain

    assert result.promoted is False and "MNIST test" in result.reason
    assert "Kept" in result.message
    assert file_hashes(store) == store_before
    version_dir = model_dir / "versions" / result.version
    assert {k: v for k, v in file_hashes(model_dir).items() if result.version not in k and k != ".lock"} == current
    assert os.readlink(model_dir / "current") == f"versions/{json.loads((model_dir / 'metadata.json').read_text())['version']}"
    metadata = json.loads((version_dir / "metadata.json").read_text())
    base = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["kind"] == "finetuned" and metadata["parent"] == base["version"]
    assert metadata["feedback"]["count"] == 60 and metadata["feedback"]["sha256"] == feedback_set.load_feedback(store).sha256
    assert metadata["data_sha256"] == base["data_sha256"] and metadata["promoted"] is False
    assert metadata["metrics"]["after"]["mnist_test_accuracy"] == metadata["test_accuracy"]
    for key in ("created", "preprocessing_version", "parameters"):
        assert metadata[key], key


@pytest.mark.slow
def test_promotion_then_rollback_restores_the_previous_version(model_dir, store):
    from digit_classifier.model import load_classifier

    base_meta = json.loads((model_dir / "metadata.json").read_text())
    base_bytes = {name: (model_dir / name).read_bytes() for name in versions.VERSION_FILES}
    store_before = file_hashes(store)
    replaced_before = versions.read_history(model_dir).stack_below(base_meta["version"])  # what the committed model replaced

    result = finetune.finetune(store, model_dir, max_mnist_drop=100.0, min_holdout_gain=-100.0, **FAST)

    assert result.promoted is True and file_hashes(store) == store_before
    version_dir = model_dir / "versions" / result.version
    for name in versions.VERSION_FILES:  # the weights and their LiteRT export, as one unit
        assert (model_dir / name).read_bytes() == (version_dir / name).read_bytes() != base_bytes[name]
    current = json.loads((model_dir / "metadata.json").read_text())
    assert current["version"] == result.version
    assert current["litert_export"]["images"] == 10_000 and current["litert_export"]["max_probability_difference"] <= 1e-4
    assert versions.read_history(model_dir).stack_below(result.version) == replaced_before + [base_meta["version"]]
    assert versions.find_base(model_dir).name == base_meta["version"]
    tuned, base = load_classifier(version_dir).model, load_classifier(model_dir / "versions" / base_meta["version"]).model
    for layer in base.layers:
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()))
        assert same == (layer.__class__.__name__ == "BatchNormalization" or not layer.get_weights()), layer.name

    assert versions.rollback(model_dir) == versions.Rollback(result.version, base_meta["version"])

    assert {name: (model_dir / name).read_bytes() for name in versions.VERSION_FILES} == base_bytes
    restored = json.loads((model_dir / "metadata.json").read_text())
    assert restored == base_meta and versions.read_history(model_dir).stack_below(base_meta["version"]) == replaced_before
    listing = run_cli("models", "--json", model_dir=model_dir, feedback_dir=store)
    listed = json.loads(listing.stdout)
    assert [v["version"] for v in listed if v["current"]] == [base_meta["version"]]
    assert {v["version"] for v in listed} == {base_meta["version"], result.version, *replaced_before}


@pytest.mark.slow
def test_cli_json_reports_before_and_after_and_warns_about_skipped_files(model_dir, store):
    (store / "6" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    store_before, model_before = file_hashes(store), file_hashes(model_dir)

    result = run_cli("finetune", "--json", "--dry-run", "--epochs", "1", "--steps-per-epoch", "5", model_dir=model_dir, feedback_dir=store)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for side in ("before", "after"):
        assert {
            "mnist_test_accuracy", "feedback_holdout_accuracy", "feedback_train_accuracy",
            "mnist_test_samples", "feedback_holdout_samples", "feedback_train_samples",
        } <= set(report[side])
        assert report[side]["mnist_test_samples"] == 10_000
        assert report[side]["feedback_holdout_samples"] + report[side]["feedback_train_samples"] == 60
    assert report["promoted"] is False and report["version"] is None
    assert "warning:" in result.stderr and "6/broken.png" in result.stderr
    assert file_hashes(store) == store_before and file_hashes(model_dir) == model_before


# The optdigits demo ------------------------------------------------------------------------


def test_demo_refuses_a_folder_that_already_holds_one(tmp_path, capsys):
    from digit_classifier.__main__ import main

    (tmp_path / "wrong_predictions").mkdir()
    assert main(["finetune-demo", "--work-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error:") and "already holds a demo" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong_predictions"]


@pytest.mark.slow
def test_demo_reports_the_loop_end_to_end_and_touches_nothing_outside_its_folder(trained_model, tmp_path):
    from digit_classifier import finetune_demo
    from digit_classifier.__main__ import demo_lines

    model_before = file_hashes(config.model_dir())

    summary = finetune_demo.simulate(tmp_path / "demo", epochs=1)

    assert file_hashes(config.model_dir()) == model_before
    report = json.loads(json.dumps(summary.as_json()))
    assert {"work_dir", "source", "feedback_pool", "mistakes_saved", "heldout", "heldout_error_reduction", "mnist_test", "accepted", "finetune"} <= set(report)
    assert report["mistakes_saved"] == report["finetune"]["feedback"]["count"] > 0
    assert report["heldout"]["n"] + report["feedback_pool"] == 1797
    assert report["mnist_test"]["before"] == report["finetune"]["before"]["mnist_test_accuracy"]
    assert report["mnist_test"]["drop_pp"] == pytest.approx(100 * (report["mnist_test"]["before"] - report["mnist_test"]["after"]))
    text = "\n".join(demo_lines(summary))
    assert f"Feedback pool {report['feedback_pool']} images -> {report['mistakes_saved']} mistakes" in text
    assert "MNIST test (10000)" in text and text.splitlines()[-1] in ("Acceptance: passed", "Acceptance: NOT passed")


# Corrections made from numbers --------------------------------------------------------------


def number_corrections(root: Path, mnist_test, classifier, numbers: int = 6) -> list[int]:
    """Pictures of 3-digit numbers read by the model, each corrected through the app's save for numbers as if the
    model had misread its first and last digits: real crops of real digits, filed under their true labels. Plus
    one number typed with another length (kept in unmatched/, never for training). -> the labels of the crops."""
    from dataclasses import replace

    from digit_classifier import realinputs
    from digit_classifier.predict import read_image
    from digit_classifier.preprocess import PreprocessError

    rng = np.random.default_rng(11)
    labels: list[int] = []
    while len(labels) < 2 * numbers:
        indices = rng.choice(len(mnist_test.labels), 3, replace=False)
        picture = realinputs.render_number([mnist_test.images[i] for i in indices], rng, "paper")
        text = "".join(str(mnist_test.labels[i]) for i in indices)
        try:
            reading = read_image(classifier, picture)
        except PreprocessError:
            continue  # the reader refused this rendering: it gives no crops to correct
        if reading.text != text:
            continue  # a misread number's crops would be filed under what the test typed, not what they show
        misread = [replace(d, label=(d.label + 1) % 10) if i in (0, 2) else d for i, d in enumerate(reading.digits)]
        result = feedback.save_number_correction(picture, misread, text, source="upload", root=root)
        labels.extend(item.label for item in result.crops)
    feedback.save_number_correction(picture, reading.digits, text + "1", source="draw", root=root)
    return labels


@pytest.mark.slow
def test_corrections_made_from_numbers_are_used_by_finetune(model_dir, feedback_root, mnist_test, classifier):
    labels = number_corrections(feedback_root, mnist_test, classifier)
    assert {path.name for path in feedback_root.iterdir()} >= {"sources", "unmatched"}

    result = finetune.finetune(feedback_root, model_dir, dry_run=True, **FAST)

    assert result.feedback.count == len(labels) == 12  # the crops only: no source picture, no unmatched number
    assert result.feedback.per_label == {**{str(d): labels.count(d) for d in range(10)}, "not_a_digit": 0}
    assert result.feedback.skipped == [] and result.feedback.per_source == {"upload": 12}
    assert result.before is not None and result.after is not None
    assert result.before.feedback_train_samples + result.before.feedback_holdout_samples == 12


def test_sources_and_unmatched_folders_are_never_read_for_training(feedback_root, mnist_test):
    seven = png_of(mnist_test.images[np.flatnonzero(mnist_test.labels == 7)[0]])
    for folder in (feedback.SOURCES_DIR, feedback.UNMATCHED_DIR):
        (feedback_root / folder).mkdir()
        (feedback_root / folder / "seven.png").write_bytes(seven)  # a readable digit, yet not in a digit folder
    collected = feedback_set.load_feedback(feedback_root)
    assert collected.samples == [] and collected.skipped == []


def save_non_digits(root: Path, count: int) -> list[str]:
    """`count` generated non-digits saved as the app saves a picture corrected to Not a digit; -> their kinds."""
    from digit_classifier import nondigits

    drawn = nondigits.evaluation_images(count, seed=3)
    for image in drawn.images:
        digit = np.round(image * 255).astype(np.uint8)
        probabilities = np.full(10, 0.05)
        probabilities[4] = 0.55
        feedback.save_correction(
            png_of(digit), config.NOT_A_DIGIT, predicted_label=4, confidence=0.55, probabilities=probabilities,
            source="draw", predicted_status="ok", root=root,
        )
    return drawn.kinds


def test_not_a_digit_corrections_are_non_digit_samples(feedback_root, mnist_test):
    save_non_digits(feedback_root, 3)
    build_store(feedback_root, mnist_test, per_label=1)
    collected = feedback_set.load_feedback(feedback_root)
    assert collected.per_label()["not_a_digit"] == 3
    assert sorted(s.label for s in collected.samples).count(config.NOT_A_DIGIT_LABEL) == 3
    _, labels = feedback_set.as_arrays(collected.samples)
    from digit_classifier.train import soft_targets

    targets = soft_targets(labels)
    assert np.allclose(targets[labels == config.NOT_A_DIGIT_LABEL], 0.1)
    assert np.array_equal(targets[labels != config.NOT_A_DIGIT_LABEL].argmax(1), labels[labels != config.NOT_A_DIGIT_LABEL])


@pytest.mark.slow
def test_finetune_with_not_a_digit_corrections_runs_and_reports_the_not_a_digit_rate(model_dir, store):
    save_non_digits(store, 30)
    store_before, model_before = file_hashes(store), file_hashes(model_dir)

    result = run_cli("finetune", "--dry-run", "--epochs", "1", "--steps-per-epoch", "5", model_dir=model_dir, feedback_dir=store)
    assert result.returncode == 0, result.stderr
    assert "hold-out non-digits flagged" in result.stdout

    report = json.loads(run_cli("finetune", "--json", "--dry-run", "--epochs", "1", "--steps-per-epoch", "5",
                                model_dir=model_dir, feedback_dir=store).stdout)
    usable = feedback_set.load_feedback(store).per_label()["not_a_digit"]  # a few dots may hold no readable mark
    assert usable >= 25 and report["feedback"]["per_label"]["not_a_digit"] == usable
    for side in ("before", "after"):
        measured = report[side]
        assert measured["feedback_holdout_non_digits"] + measured["feedback_train_non_digits"] == usable
        assert measured["feedback_holdout_non_digits"] > 0
        assert 0.0 <= measured["feedback_holdout_not_a_digit_rate"] <= 1.0
    assert "non-digits flagged" in report["reason"]
    assert file_hashes(store) == store_before and file_hashes(model_dir) == model_before

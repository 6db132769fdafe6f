"""The command line: JSON schemas, error lines, exit codes (run as a user would, in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digit_classifier import config


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digit_classifier", *map(str, args)],
        cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist_test):
    """Five MNIST test digits as black-on-white PNGs, plus bad files."""
    folder = tmp_path_factory.mktemp("cli")
    good = []
    for i in range(5):
        path = folder / f"digit_{i}_label_{mnist_test.labels[i]}.png"
        Image.fromarray(255 - mnist_test.images[i]).resize((84, 84)).save(path)
        good.append(path)
    not_image = folder / "notes.png"
    not_image.write_text("this is not an image")
    truncated = folder / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:60])
    blank = folder / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    return {"good": good, "labels": mnist_test.labels[:5].tolist(), "not_image": not_image, "truncated": truncated, "blank": blank}


def test_predict_prints_one_json_object_per_image(images):
    result = run_cli("predict", *images["good"])
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in images["good"]]
    assert [line["label"] for line in lines] == images["labels"]
    for line in lines:
        assert set(line) == {"path", "label", "status", "confidence", "probabilities", "text", "digits"}
        assert line["text"] == str(line["label"]) and len(line["digits"]) == 1
        digit = line["digits"][0]
        assert line["status"] == digit["status"] == "ok"  # clear digits, confidently read
        assert {key: digit[key] for key in ("label", "status", "confidence", "probabilities")} == {
            key: line[key] for key in ("label", "status", "confidence", "probabilities")}
        dark = np.asarray(Image.open(line["path"])) < 128  # the digit's ink, in the file's own pixels
        rows, cols = np.flatnonzero(dark.any(1)), np.flatnonzero(dark.any(0))
        x0, y0, x1, y1 = digit["box"]
        assert abs(x0 - cols[0]) <= 3 and abs(y0 - rows[0]) <= 3 and abs(x1 - cols[-1] - 1) <= 3 and abs(y1 - rows[-1] - 1) <= 3
        assert len(line["probabilities"]) == 10 and abs(sum(line["probabilities"]) - 1) < 1e-3
        assert line["confidence"] == max(line["probabilities"])


def test_bad_inputs_get_error_lines_and_the_others_go_on(images):
    paths = [images["good"][0], images["not_image"], images["truncated"], images["blank"], images["good"][1], "missing.png"]
    result = run_cli("predict", *paths)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths]
    assert [("error" in line) for line in lines] == [False, True, True, True, False, True]
    errors = [line for line in lines if "error" in line]
    assert all(set(line) == {"path", "error"} for line in errors)
    assert "not an image" in errors[0]["error"] and "truncated" in errors[1]["error"]
    assert "no digit" in errors[2]["error"].lower() and "does not exist" in errors[3]["error"]


def test_predict_takes_a_folder(images):
    result = run_cli("predict", images["good"][0].parent)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 8 and result.returncode == 1


@pytest.mark.slow
def test_a_large_folder_is_read_by_worker_processes_in_order(tmp_path, mnist_test):
    from digit_classifier.preprocess import PARALLEL_FROM

    count = PARALLEL_FROM + 10
    for i in range(count):
        Image.fromarray(255 - mnist_test.images[i]).save(tmp_path / f"{i:04d}.png")
    (tmp_path / "0100.png").write_text("not an image")
    outputs = {workers: run_cli("predict", tmp_path, "--workers", workers) for workers in (1, 2)}
    assert outputs[1].returncode == outputs[2].returncode == 1
    assert outputs[1].stdout == outputs[2].stdout
    lines = [json.loads(line) for line in outputs[2].stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(tmp_path / f"{i:04d}.png") for i in range(count)]
    assert "not an image" in lines[100]["error"]
    right = sum(line.get("label") == mnist_test.labels[i] for i, line in enumerate(lines))
    assert right >= 0.98 * count


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_must_be_a_positive_whole_number(images, workers):
    result = run_cli("predict", images["good"][0], "--workers", workers)
    assert result.returncode == 2 and "--workers" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_evaluate_json_is_one_object_matching_the_metadata():
    result = run_cli("evaluate", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"accuracy", "n", "per_class", "confusion_matrix"} <= set(report)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.dtype.kind == "i" and matrix.sum() == report["n"] == 10_000
    metadata = json.loads(config.metadata_path().read_text())
    assert report["accuracy"] == pytest.approx(metadata["test_accuracy"], abs=5e-4)
    assert report["accuracy"] >= 0.996


@pytest.mark.slow
def test_missing_model_is_a_clear_error(tmp_path):
    result = run_cli("evaluate", "--model", tmp_path / "none.keras")
    assert result.returncode == 2
    assert "No model at" in result.stderr and "Traceback" not in result.stderr


def test_usage_error_without_a_command():
    result = run_cli()
    assert result.returncode == 2 and "usage" in result.stderr


def test_a_worker_that_dies_gives_an_error_line_not_a_traceback(tmp_path, mnist_test, monkeypatch, capsys):
    from digit_classifier import worker
    from digit_classifier.__main__ import main
    from digit_classifier.preprocess import PARALLEL_FROM

    for i in range(PARALLEL_FROM):
        Image.fromarray(255 - mnist_test.images[i]).save(tmp_path / f"{i:04d}.png")
    import shutil

    monkeypatch.setattr(worker.sys, "executable", shutil.which("false"))  # every worker process dies at once
    assert main(["predict", str(tmp_path), "--workers", "2"]) == 1
    assert "error: a preprocessing worker process ended unexpectedly" in capsys.readouterr().err


def test_models_and_rollback_answer_without_loading_tensorflow(tmp_path):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(config.model_dir(), model_dir, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    script = (
        "import sys\n"
        "from digit_classifier.__main__ import main\n"
        f"listed = main(['models', '--model-dir', {str(model_dir)!r}])\n"
        f"rolled = main(['rollback', '--model-dir', {str(model_dir)!r}])\n"
        "print('exit codes', listed, rolled, 'tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=120)
    # the committed model replaced the one trained on digits only, which `rollback` makes current again
    current = json.loads((config.model_dir() / "metadata.json").read_text())["version"]
    assert result.stdout.splitlines()[-1] == "exit codes 0 0 tensorflow loaded: False", result.stdout + result.stderr
    assert f"(was {current})" in result.stdout
    assert json.loads((model_dir / "metadata.json").read_text())["version"] != current

"""`make submission`: the zip holds the folder the assignment asks for, nothing it should not, and runs unzipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from digit_classifier import __version__, config
from tools import make_submission

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (config.REPO_ROOT / ".git").exists(),
    reason="the submission is built from what git tracks: needs git and a git checkout",
)

# What the assignment asks for (app, model files, requirements, README, notebooks, the package, the corrections)
# and what the folder needs to run its own tests and benchmarks.
REQUIRED = [
    "app.py",
    "requirements.txt",
    "requirements-dev.txt",
    "README.md",
    "pyproject.toml",
    "Makefile",
    "model/model.keras",
    "model/metadata.json",
    "digit_classifier/__init__.py",
    "digit_classifier/__main__.py",
    "wrong_predictions/README.md",
    "tools/make_submission.py",
    "input/SHA256SUMS",
]
REQUIRED_FOLDERS = ["app_pages", "notebooks", "docs", "tests", "benchmarks", "input"]
NEVER = {".git", ".venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".ruff_cache", "dist"}


def unzip(archive: Path, into: Path) -> Path:
    """-> the one top folder the zip unpacks to."""
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(into)
    (top,) = into.iterdir()
    return top


def files_under(top: Path) -> set[str]:
    return {path.relative_to(top).as_posix() for path in top.rglob("*") if path.is_file()}


def save_correction(store: Path, digit: int, image) -> PurePosixPath:
    """A correction as the app leaves it, plus a half-written temporary file of an interrupted atomic write."""
    folder = store / str(digit)
    folder.mkdir(parents=True)
    Image.fromarray(image).save(folder / "0123456789abcdef.png")
    (folder / "0123456789abcdef.json").write_text(json.dumps({"true_label": digit}))
    (folder / ".0123456789abcdef.png.x1y2.tmp").write_bytes(b"half")
    return PurePosixPath("wrong_predictions", str(digit), "0123456789abcdef.png")


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory, mnist_test) -> tuple[Path, make_submission.Submission, PurePosixPath]:
    work = tmp_path_factory.mktemp("submission")
    correction = save_correction(work / "store", int(mnist_test.labels[1]), 255 - mnist_test.images[1])
    submission = make_submission.build(work / "dist", store=work / "store")
    return unzip(submission.path, work / "unzipped"), submission, correction


def test_zip_is_named_by_version_and_unpacks_to_one_folder(unzipped):
    top, submission, _ = unzipped
    assert submission.path.name == f"digit-classifier-{__version__}.zip"
    assert top.name == f"digit-classifier-{__version__}"
    assert files_under(top) == set(submission.files)


def test_zip_holds_what_the_assignment_asks_for(unzipped):
    top, _, correction = unzipped
    names = files_under(top)
    assert not [name for name in REQUIRED if name not in names]
    assert not [folder for folder in REQUIRED_FOLDERS if not any(name.startswith(f"{folder}/") for name in names)]
    assert str(correction) in names and str(correction.with_suffix(".json")) in names
    saved = top.parent.parent / "store" / correction.relative_to("wrong_predictions")
    assert (top / correction).read_bytes() == saved.read_bytes()
    assert (top / "model/model.keras").read_bytes() == (config.REPO_ROOT / "model/model.keras").read_bytes()
    notebooks = sorted(top.glob("notebooks/*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        cells = json.loads(notebook.read_text())["cells"]
        outputs = [cell.get("outputs") for cell in cells if cell["cell_type"] == "code"]
        assert any(outputs), f"{notebook.name} has no outputs"


def test_zip_leaves_out_caches_environments_and_temporary_files(unzipped):
    top, _, correction = unzipped
    names = files_under(top)
    assert not [name for name in names if NEVER & set(PurePosixPath(name).parts)]
    assert not [name for name in names if name.startswith(("benchmarks/out/", "tests/artifacts/"))]
    assert not [name for name in names if name.endswith(".pyc")]
    assert not [name for name in names if name.startswith(f"{correction.parent}/.")]


@pytest.mark.slow  # 11 s: the child process imports TensorFlow and loads the model
def test_predict_runs_from_the_unzipped_folder(unzipped, mnist_test, tmp_path):
    top, _, _ = unzipped
    image = tmp_path / "digit.png"
    Image.fromarray(mnist_test.images[0]).save(image)
    # Only the unzipped folder: no path or store settings of this process leak into the child.
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIGIT_")} | {"PYTHONPATH": ""}
    imported = subprocess.run(
        [sys.executable, "-c", "import digit_classifier; print(digit_classifier.__file__)"],
        cwd=top, env=env, capture_output=True, text=True, check=True,
    )
    assert Path(imported.stdout.strip()).resolve().is_relative_to(top.resolve())
    result = subprocess.run(
        [sys.executable, "-m", "digit_classifier", "predict", str(image)],
        cwd=top, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    answer = json.loads(line)
    assert answer["label"] == int(mnist_test.labels[0])
    assert answer["path"] == str(image)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_links_are_stored_as_the_files_they_point_to_and_ignored_paths_stay_out(tmp_path):
    """On a small repository of its own: a tracked link in model/, tracked files under excluded folders,
    an untracked file, a hidden temporary file in the store."""
    repo = tmp_path / "repo"
    (repo / "model" / "versions").mkdir(parents=True)
    (repo / "model" / "versions" / "v2.keras").write_bytes(b"the model's bytes")
    (repo / "model" / "model.keras").symlink_to(Path("versions") / "v2.keras")
    (repo / "app.py").write_text("print('app')\n")
    for cached in ("benchmarks/out/run.json", "pkg/__pycache__/mod.cpython-311.pyc", "dist/old.zip"):
        (repo / cached).parent.mkdir(parents=True)
        (repo / cached).write_text("not for the zip")
    git(repo, "init", "-q")
    git(repo, "add", "-f", ".")
    (repo / "notes.txt").write_text("untracked")
    store = tmp_path / "store"
    save_correction(store, 4, np.zeros((28, 28), np.uint8))

    submission = make_submission.build(tmp_path / "dist", root=repo, store=store)
    top = unzip(submission.path, tmp_path / "unzipped")

    assert files_under(top) == {
        "app.py",
        "model/model.keras",
        "model/versions/v2.keras",
        "wrong_predictions/4/0123456789abcdef.png",
        "wrong_predictions/4/0123456789abcdef.json",
    }
    assert not (top / "model/model.keras").is_symlink()
    assert (top / "model/model.keras").read_bytes() == b"the model's bytes"
    assert submission.untracked_left_out == ("notes.txt",)


def test_a_dangling_link_is_refused_and_no_zip_is_left(tmp_path):
    repo = tmp_path / "repo"
    (repo / "model").mkdir(parents=True)
    (repo / "model" / "model.keras").symlink_to("versions/gone.keras")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    with pytest.raises(make_submission.SubmissionError, match="model/model.keras"):
        make_submission.build(tmp_path / "dist", root=repo, store=tmp_path / "no-store")
    assert not (tmp_path / "dist").exists()


def test_outside_a_git_checkout_the_error_says_so(tmp_path):
    with pytest.raises(make_submission.SubmissionError, match="not a git checkout"):
        make_submission.build(tmp_path / "dist", root=tmp_path, store=tmp_path / "no-store")

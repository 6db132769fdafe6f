"""The model folder: versions as immutable folders, `current` swapped in one step, damaged models refused.

Everything runs on a copy of the committed model folder. Only the last test loads TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from digit_classifier import config, versions
from digit_classifier.versions import ModelStoreError, ModelUnavailableError


class Killed(BaseException):
    """Stands for SIGKILL: raised right after an install step has done its work."""


def copy_model_dir(target: Path) -> Path:
    """The committed model folder with its current version only and no history: each test builds the history it needs."""
    shutil.copytree(config.model_dir(), target, symlinks=True, ignore=shutil.ignore_patterns(".lock", versions.HISTORY_FILE))
    for folder in (target / "versions").iterdir():
        if folder.name != versions.current_name(target):
            shutil.rmtree(folder)
    return target


@pytest.fixture
def model_dir(tmp_path) -> Path:
    return copy_model_dir(tmp_path / "model")


def base_name(model_dir: Path) -> str:
    return versions.current_name(model_dir)


def add_version(model_dir: Path, name: str, parent: str) -> versions.Version:
    """A fine-tuned version holding the base weights (versions.py never looks inside them)."""
    base = versions.resolve_current(model_dir) if versions.current_name(model_dir) == parent else versions.check_version(model_dir, parent)
    metadata = {**base.metadata, "version": name, "kind": "finetuned", "parent": parent, "created": f"2027-01-01T00:00:0{len(name) % 10}+00:00"}
    return versions.save_version(model_dir, metadata, copy_files_of(base))


def copy_files_of(version: versions.Version):
    """write_files for save_version: the files of `version`, weights and export alike."""
    def write_files(folder: Path) -> None:
        for file_name in versions.VERSION_FILES:
            shutil.copyfile(version.path / file_name, folder / file_name)
    return write_files


def run_cli(*args: str, model_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digit_classifier", *map(str, args)],
        cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DIGIT_MODEL_DIR": str(model_dir)},
    )


# The committed layout ----------------------------------------------------------------------


def test_the_committed_model_is_a_version_folder_behind_the_current_link():
    model_dir = config.model_dir()
    name = versions.current_name(model_dir)
    assert os.readlink(model_dir / "current") == f"versions/{name}"
    assert os.readlink(model_dir / "model.keras") == "current/model.keras"
    assert os.readlink(model_dir / "metadata.json") == "current/metadata.json"
    version = versions.resolve_current(model_dir)
    assert version.metadata["version"] == name and version.metadata["kind"] == "base"
    assert config.model_path().read_bytes() == version.model_file.read_bytes()
    tracked = subprocess.run(["git", "ls-files", "-s", "model"], cwd=config.REPO_ROOT, capture_output=True, text=True).stdout
    if tracked:  # in a git checkout: the links are committed as links (mode 120000), so a clone has them
        modes = {line.split("\t")[1]: line.split()[0] for line in tracked.splitlines()}
        assert modes["model/current"] == modes["model/model.keras"] == modes["model/metadata.json"] == "120000"


# Damaged models ----------------------------------------------------------------------------

DAMAGE = {
    "corrupt-metadata": lambda folder: (folder / "metadata.json").write_text('{"version": "base'),
    "empty-metadata": lambda folder: (folder / "metadata.json").write_text(""),
    "list-metadata": lambda folder: (folder / "metadata.json").write_text("[]"),
    "wrong-schema": lambda folder: (folder / "metadata.json").write_text(json.dumps({"version": "other", "kind": "base"})),
    "no-hashes": lambda folder: (folder / "metadata.json").write_text(
        json.dumps({k: v for k, v in json.loads((folder / "metadata.json").read_text()).items() if k != "files"})
    ),
    "truncated-model": lambda folder: (folder / "model.keras").write_bytes((folder / "model.keras").read_bytes()[:5000]),
    "missing-model": lambda folder: (folder / "model.keras").unlink(),
    "model-is-a-link": lambda folder: ((folder / "model.keras").unlink(), (folder / "model.keras").symlink_to("/etc/passwd")),
}


def damage(model_dir: Path, kind: str) -> None:
    folder = versions.resolve_current(model_dir).path
    DAMAGE[kind](folder)


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_model_is_one_clear_error_and_never_marked_current(model_dir, kind):
    damage(model_dir, kind)
    with pytest.raises(ModelUnavailableError) as error:
        versions.resolve_current(model_dir)
    assert "\n" not in str(error.value) and str(model_dir) in str(error.value)
    assert not any(entry.current for entry in versions.list_versions(model_dir))


@pytest.mark.parametrize("kind", ["corrupt-metadata", "list-metadata", "truncated-model"])
def test_the_cli_says_so_in_one_line_with_exit_2(model_dir, kind, tmp_path):
    damage(model_dir, kind)
    image = tmp_path / "digit.png"
    image.write_bytes(b"not needed: the model is checked first")
    predict = run_cli("predict", image, model_dir=model_dir)
    assert predict.returncode == 2 and predict.stdout == ""
    [line] = [line for line in predict.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in predict.stderr and ("not valid" in line or "does not match" in line)
    models = run_cli("models", model_dir=model_dir)
    assert models.returncode == 0 and "Traceback" not in models.stderr
    assert "unusable" in models.stdout and not [row for row in models.stdout.splitlines() if row.startswith("*")]
    rollback = run_cli("rollback", model_dir=model_dir)
    assert rollback.returncode == 1 and "Traceback" not in rollback.stderr and rollback.stderr.startswith("error:")


@pytest.mark.parametrize("file_name", ["model.keras", "model.tflite"])
def test_predict_with_a_model_that_is_a_text_file_is_one_line(tmp_path, file_name):
    text = tmp_path / file_name
    text.write_text("not a model")
    result = run_cli("predict", text, "--model", text, model_dir=config.model_dir())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = {  # predict serves LiteRT exports only: a bare .keras file has no checked export beside it
        "model.keras": f"error: {text} is not part of a model version, so it has no checked LiteRT export beside it",
        "model.tflite": f"error: {text} cannot be loaded by LiteRT: ",
    }[file_name]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(expected)


# Rollback takes only a listed version -----------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "../x", "/etc", "versions/../x", "", ".staging-1", "nonexistent"])
def test_rollback_to_anything_but_a_listed_version_is_refused(model_dir, tmp_path, name):
    outside = tmp_path / "x"
    outside.mkdir()
    shutil.copytree(versions.resolve_current(model_dir).path, outside, dirs_exist_ok=True)
    before = os.readlink(model_dir / "current")
    with pytest.raises(ModelStoreError, match="not a saved version"):
        versions.rollback(model_dir, to=name)
    assert os.readlink(model_dir / "current") == before
    result = run_cli("rollback", "--to", name, model_dir=model_dir)
    assert result.returncode == 1 and "not a saved version" in result.stderr and "Traceback" not in result.stderr


def test_rollback_works_while_the_current_model_is_damaged(model_dir):
    base = base_name(model_dir)
    add_version(model_dir, "ft-a", base)
    versions.promote_version(model_dir, "ft-a")
    damage(model_dir, "truncated-model")
    assert versions.rollback(model_dir) == versions.Rollback("ft-a", base)
    assert versions.resolve_current(model_dir).name == base


# A version installs as one unit -------------------------------------------------------------

INSTALL_STEPS = [
    (versions, "_write_history"),
    (os, "symlink"),
    (os, "replace"),
    (versions, "_fsync_dir"),
    (versions, "ensure_convenience_links"),
]


@pytest.mark.parametrize("owner, step", INSTALL_STEPS, ids=[step for _, step in INSTALL_STEPS])
def test_a_kill_after_any_install_step_leaves_a_whole_version_and_rollback_works(model_dir, monkeypatch, owner, step):
    base = base_name(model_dir)
    add_version(model_dir, "ft-a", base)
    versions.promote_version(model_dir, "ft-a")
    add_version(model_dir, "ft-b", base)
    real = getattr(owner, step)

    def then_killed(*args, **kwargs):
        real(*args, **kwargs)
        raise Killed(step)

    monkeypatch.setattr(owner, step, then_killed)
    with pytest.raises(Killed):
        versions.promote_version(model_dir, "ft-b")
    monkeypatch.undo()

    current = versions.resolve_current(model_dir)  # whole: its metadata matches its weights
    assert current.name in {"ft-a", "ft-b"}
    assert json.loads((model_dir / "metadata.json").read_text()) == current.metadata
    expected_back = {"ft-b": "ft-a", "ft-a": base}[current.name]
    assert versions.rollback(model_dir) == versions.Rollback(current.name, expected_back)
    assert versions.resolve_current(model_dir).name == expected_back
    assert not [p.name for p in model_dir.iterdir() if p.name.startswith(versions.LINK_PREFIX)], "orphans are cleaned"
    assert versions.rollback(model_dir, to="ft-b").current == "ft-b"


def test_a_kill_while_saving_a_version_leaves_no_version_and_the_next_run_cleans_up(model_dir, monkeypatch):
    base = versions.resolve_current(model_dir)

    def write_then_killed(folder: Path) -> None:
        shutil.copyfile(base.model_file, folder / versions.MODEL_FILE)
        raise Killed("after writing the weights")

    metadata = {**base.metadata, "version": "ft-killed", "kind": "finetuned", "parent": base.name}
    # shutil.rmtree in save_version's own cleanup does not run after a real SIGKILL: simulate that too
    monkeypatch.setattr(versions.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(Killed):
        versions.save_version(model_dir, metadata, write_then_killed)
    monkeypatch.undo()
    (model_dir / "versions" / "tmpq1w2e3r4").mkdir()  # what a killed save left before versions were staged
    leftovers = sorted(p.name for p in (model_dir / "versions").iterdir() if p.name.startswith((".staging-", "tmp")))
    assert len(leftovers) == 2

    assert [entry.name for entry in versions.list_versions(model_dir)] == [base.name]
    add_version(model_dir, "ft-next", base.name)
    assert sorted(p.name for p in (model_dir / "versions").iterdir()) == sorted([base.name, "ft-next"])


def test_an_interrupted_promotion_keeps_the_history_right_for_a_second_rollback(model_dir):
    base = base_name(model_dir)
    for name in ("ft-a", "ft-b"):
        add_version(model_dir, name, base)
        versions.promote_version(model_dir, name)
    assert versions.rollback(model_dir) == versions.Rollback("ft-b", "ft-a")
    assert versions.rollback(model_dir) == versions.Rollback("ft-a", base)
    with pytest.raises(ModelStoreError, match="Nothing to roll back"):
        versions.rollback(model_dir)


def test_the_current_model_loads_after_an_interrupted_install(model_dir, monkeypatch):
    from digit_classifier.model import load_classifier

    base = base_name(model_dir)
    add_version(model_dir, "ft-a", base)
    real = os.replace

    def then_killed(*args, **kwargs):
        real(*args, **kwargs)
        if str(args[1]).endswith(versions.CURRENT):
            raise Killed("after the swap")

    monkeypatch.setattr(os, "replace", then_killed)
    with pytest.raises(Killed):
        versions.promote_version(model_dir, "ft-a")
    monkeypatch.undo()
    classifier = load_classifier(model_dir=model_dir)
    assert classifier.version == "ft-a" and classifier.path == model_dir / "versions" / "ft-a" / "model.keras"


def test_history_records_the_install_time_in_the_one_timestamp_format(model_dir):
    from digit_classifier.timestamps import parse_utc

    add_version(model_dir, "ft-a", base_name(model_dir))
    versions.promote_version(model_dir, "ft-a")
    installed_at = json.loads((model_dir / versions.HISTORY_FILE).read_text())["installed_at"]
    assert installed_at.endswith("Z") and parse_utc(installed_at) is not None

"""Build dist/digit-classifier-<version>.zip: the project as one folder, as the assignment asks for it.

What goes in, under one top folder `digit-classifier-<version>/` (so unzipping gives one folder):
  * every file git tracks, as it is in the working tree (uncommitted edits count, files deleted there are left out);
  * the files directly in model/ as they are on disk (the current model, even if a newer one is not tracked yet);
  * everything in the corrections store (wrong_predictions/, or DIGIT_FEEDBACK_DIR): the app's corrections
    are not tracked by git, and they are part of what is handed in.
Left out whatever git says: virtualenvs, caches, benchmarks/out/, dist/, .git, hidden files in the store and in
model/ (half-written temporary files of the atomic writes).

A symbolic link is stored as the file it points to: Python's zipfile and the Windows Explorer unpack a stored
link as a small text file holding its target, which would leave model/model.keras unloadable.

    .venv/bin/python -m tools.make_submission [--out DIR] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from digit_classifier import __version__, config

NAME = "digit-classifier"
EXCLUDED_PARTS = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".ruff_cache", "dist"}
)
EXCLUDED_PREFIXES = (PurePosixPath("benchmarks/out"), PurePosixPath("tests/artifacts"))
STORE = PurePosixPath("wrong_predictions")
MODEL = PurePosixPath("model")


class SubmissionError(Exception):
    """The zip cannot be built; nothing was written."""


@dataclass(frozen=True)
class Submission:
    path: Path
    version: str
    files: tuple[str, ...]  # paths inside the top folder, sorted
    size_bytes: int
    untracked_left_out: tuple[str, ...]  # files git does not track (and does not ignore) outside the store and model/


def excluded(relative: PurePosixPath) -> bool:
    return (
        any(part in EXCLUDED_PARTS for part in relative.parts)
        or relative.suffix == ".pyc"
        or any(relative.is_relative_to(prefix) for prefix in EXCLUDED_PREFIXES)
    )


def _git_files(root: Path, *options: str) -> list[PurePosixPath]:
    try:
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", *options], capture_output=True, check=True
        ).stdout
    except FileNotFoundError as error:
        raise SubmissionError("git is not installed: the submission is built from the files git tracks") from error
    except subprocess.CalledProcessError as error:
        reason = error.stderr.decode(errors="replace").strip()
        raise SubmissionError(f"{root} is not a git checkout: {reason}") from error
    return [PurePosixPath(name) for name in listing.decode().split("\0") if name]


def _visible_files(folder: Path, recursive: bool) -> list[PurePosixPath]:
    """Files in `folder` (links followed), relative to it; hidden ones left out."""
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return [
        PurePosixPath(path.relative_to(folder).as_posix())
        for path in found
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def collect(root: Path, store: Path) -> tuple[dict[PurePosixPath, Path], list[PurePosixPath]]:
    """-> ({path inside the zip: file on disk}, untracked files left out)."""
    sources: dict[PurePosixPath, Path] = {}
    for relative in _git_files(root):
        path = root / relative
        if path.is_file() or path.is_symlink():  # a dangling link is kept here, to be refused with its name
            sources[relative] = path
    for relative in _visible_files(root / MODEL, recursive=False):
        sources[MODEL / relative] = root / MODEL / relative
    for relative in _visible_files(store, recursive=True):
        sources[STORE / relative] = store / relative
    sources = {relative: path for relative, path in sources.items() if not excluded(relative)}
    untracked = [
        relative for relative in _git_files(root, "--others", "--exclude-standard")
        if relative not in sources and not excluded(relative)
    ]
    return sources, untracked


def build(out_dir: Path, root: Path = config.REPO_ROOT, store: Path | None = None) -> Submission:
    """Write `out_dir/digit-classifier-<version>.zip` (replacing an older one) and describe it."""
    store = config.feedback_dir() if store is None else store
    sources, untracked = collect(root, store)
    pointers = {relative: os.readlink(path) for relative, path in sources.items() if path.is_symlink() and path.resolve().is_dir()}
    for relative, path in sources.items():
        if relative not in pointers and not path.resolve().is_file():  # a dangling link
            raise SubmissionError(f"{relative} is a link to {path.resolve()}, which is not a file")
    top = f"{NAME}-{__version__}"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{top}.zip"
    partial = target.with_name(f".{target.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in sorted(sources):
                if relative in pointers:  # model/current: unzip tools drop links, so it goes in as a pointer file
                    archive.writestr(f"{top}/{relative}", pointers[relative] + "\n")
                else:
                    archive.write(sources[relative], f"{top}/{relative}")  # write() follows links: the content goes in
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return Submission(
        path=target,
        version=__version__,
        files=tuple(str(relative) for relative in sorted(sources)),
        size_bytes=target.stat().st_size,
        untracked_left_out=tuple(str(relative) for relative in untracked),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=config.REPO_ROOT / "dist", help="the zip's folder (default: dist/)")
    parser.add_argument("--store", type=Path, default=None, help="the corrections (default: wrong_predictions/)")
    args = parser.parse_args(argv)
    try:
        submission = build(args.out, store=args.store)
    except SubmissionError as error:
        print(f"make submission: {error}", file=sys.stderr)
        return 1
    corrections = sum(name.startswith(f"{STORE}/") and name != f"{STORE}/README.md" for name in submission.files)
    print(f"{submission.path}: {len(submission.files)} files ({corrections} in {STORE}/ besides its README), "
          f"{submission.size_bytes / 1e6:.1f} MB")
    if submission.untracked_left_out:
        print("left out, not tracked by git: " + ", ".join(submission.untracked_left_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

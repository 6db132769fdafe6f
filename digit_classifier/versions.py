"""Model versions: each one an immutable folder, "current" a link swapped in one step. No TensorFlow here.

Layout of a model folder (``model/`` unless DIGIT_MODEL_DIR says otherwise)::

    versions/<version>/model.keras      weights and architecture (training, fine-tuning, evaluation)
    versions/<version>/model.tflite     the same model exported for LiteRT (the app and `predict`; see inference.py)
    versions/<version>/metadata.json    provenance, and under "files" the SHA-256 and size of every other file
    current -> versions/<version>       the version in use: a relative symlink
    model.keras -> current/model.keras, model.tflite -> current/model.tflite,
    metadata.json -> current/metadata.json      for people and notebooks
    history.json                        the rollback stack (see `install`)

A version is a unit: the files named by ``VERSION_FILES`` plus ``metadata.json``. It is
written into a hidden staging folder ``versions/.staging-*``, fsynced, and renamed into
place whole; it is never changed afterwards. Making a version current replaces the
``current`` symlink by one rename(2), so a reader sees the old version or the new one,
never weights from one and metadata from the other. Readers resolve ``current`` once
and read every file from that folder; the metadata's hashes are checked on load.

Writers (saving a version, installing, rolling back) hold ``.lock`` in the model folder;
under it every staging folder or temporary link left by a killed run is an orphan, and
is removed. Reading only JSON files and hashing, `python -m digit_classifier models`
and `rollback` answer at once instead of waiting for TensorFlow to load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import config
from .atomic import atomic_write_json
from .timestamps import utc_now

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
LITERT_FILE = "model.tflite"
VERSION_FILES = (MODEL_FILE, LITERT_FILE)  # the files of a version besides its metadata; every new version has all
CURRENT = "current"
HISTORY_FILE = "history.json"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
LINK_PREFIX = ".current-"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_METADATA_BYTES = 1 << 20  # the committed base model's metadata is 2 KB
MAX_EXPORT_BYTES = 64 << 20  # the committed base model's export is 1.9 MB
KINDS = ("base", "finetuned")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelStoreError(RuntimeError):
    """The model folder refuses a change (saving, promoting, rolling back); the message is meant for a person."""


class ModelUnavailableError(RuntimeError):
    """The model cannot be used (missing, damaged, or not a model); the message is one line for a person."""


@dataclass(frozen=True)
class Version:
    """A checked version: its folder's files are present and match the hashes in its metadata."""

    name: str
    path: Path  # versions/<name>
    metadata: dict

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE


@dataclass(frozen=True)
class VersionEntry:
    """One line of `models`: `problem` says why a version cannot be used (None when it can)."""

    name: str
    metadata: dict
    current: bool
    problem: str | None = None

    def as_json(self) -> dict:
        return {**self.metadata, "version": self.name, "current": self.current, "problem": self.problem}


@dataclass(frozen=True)
class Rollback:
    previous: str | None
    current: str


@dataclass
class _History:
    """history.json: the stack below the version installed last, and below the one it replaced."""

    version: str | None = None
    previous_versions: list[str] = field(default_factory=list)
    replaced: str | None = None
    replaced_previous: list[str] = field(default_factory=list)

    def stack_below(self, current: str | None) -> list[str]:
        """The rollback stack under `current`, whether or not the last install got as far as the swap."""
        if current is not None and current == self.version:
            return list(self.previous_versions)
        if current is not None and current == self.replaced:
            return list(self.replaced_previous)
        return []


# Paths and names -------------------------------------------------------------------------


def versions_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "versions"


def version_dir(model_dir: Path, name: str) -> Path:
    return versions_dir(model_dir) / check_name(name)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not VERSION_NAME.fullmatch(name) or _is_leftover(name):
        raise ModelStoreError(f"{name!r} is not a version name (letters, digits, '.', '_' and '-', not starting with 'tmp').")
    return name


def _is_leftover(name: str) -> bool:
    """A staging folder; `tmp*` ones were left by killed saves before versions were staged as ``.staging-*``."""
    return name.startswith(STAGING_PREFIX) or name.startswith("tmp")


# Reading and checking --------------------------------------------------------------------


def current_name(model_dir: Path) -> str | None:
    """The version `current` points at, or None when it is missing or points anywhere but versions/<name>.

    `current` is a link; where links do not survive (a zip unpacked by most tools), a small regular
    file holding the same target, `versions/<name>`, is read the same way."""
    pointer = Path(model_dir) / CURRENT
    try:
        target = os.readlink(pointer)
    except OSError:
        target = _pointer_file(pointer)
        if target is None:
            return None
    parts = target.split("/")
    if len(parts) == 2 and parts[0] == "versions" and VERSION_NAME.fullmatch(parts[1]):
        return parts[1]
    return None


def _pointer_file(pointer: Path) -> str | None:
    """The text of `pointer` when it is a small regular file (never a link, a FIFO or a device)."""
    try:
        if not stat.S_ISREG(os.lstat(pointer).st_mode) or os.lstat(pointer).st_size > 256:
            return None
        return pointer.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def resolve_current(model_dir: Path | None = None, tolerate: tuple[str, ...] = ()) -> Version:
    """The current version, checked (but for the files in `tolerate`, see `check_folder`); raises
    ModelUnavailableError saying why it cannot be used."""
    model_dir = Path(model_dir or config.model_dir())
    link = model_dir / CURRENT
    name = current_name(model_dir)
    if name is None:
        if not os.path.lexists(link):
            raise ModelUnavailableError(f"No trained model in {model_dir}: train one with `python -m digit_classifier train`.")
        raise ModelUnavailableError(f"{link} must be a link to versions/<version>.")
    return check_version(model_dir, name, tolerate)


def check_version(model_dir: Path, name: str, tolerate: tuple[str, ...] = ()) -> Version:
    """versions/<name> with its metadata validated and every file it names present and matching."""
    folder = versions_dir(model_dir) / name
    if not VERSION_NAME.fullmatch(name) or not _is_real_dir(folder):
        raise ModelUnavailableError(f"Version {name} is missing: expected the folder {folder}.")
    return check_folder(folder, name, tolerate)


def check_folder(folder: Path, name: str | None = None, tolerate: tuple[str, ...] = ()) -> Version:
    """A version folder anywhere (`predict --model DIR`), checked as `check_version` does.

    Files named in `tolerate` are not checked here: the caller checks them (`export_problem`)."""
    metadata = read_metadata(folder / METADATA_FILE)
    problem = metadata_problem(metadata, name)
    if problem:
        raise ModelUnavailableError(f"{folder / METADATA_FILE} is not valid: {problem}.")
    for file_name, expected in metadata["files"].items():
        if file_name in tolerate:
            continue
        digest, size = file_digest(folder / file_name)
        if (digest, size) != (expected["sha256"], expected["bytes"]):
            raise ModelUnavailableError(
                f"{folder / file_name} does not match its metadata ({size} bytes, expected {expected['bytes']}): "
                "the file was changed or damaged."
            )
    return Version(metadata["version"], folder, metadata)


def export_problem(folder: Path, metadata: dict) -> str | None:
    """Why the version's LiteRT export cannot be served (missing, or not the file its metadata names), or None."""
    expected = metadata.get("files", {}).get(LITERT_FILE)
    if expected is None:
        return "is not part of this version (it was saved before versions had a LiteRT export)"
    try:
        found = file_digest(folder / LITERT_FILE)
    except ModelUnavailableError:
        return "is missing"
    if found != (expected["sha256"], expected["bytes"]):
        return f"does not match its metadata ({found[1]} bytes, expected {expected['bytes']}): it is stale or damaged"
    return None


def read_metadata(path: Path) -> dict:
    """A metadata file as a JSON object; never follows a link, never blocks on a FIFO, refuses huge files."""
    data = read_regular_file(path, MAX_METADATA_BYTES)
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelUnavailableError(f"{path} is not valid: it is not JSON ({_first_line(error)}).") from None
    if not isinstance(metadata, dict):
        raise ModelUnavailableError(f"{path} is not valid: it must hold a JSON object, not {type(metadata).__name__}.")
    return metadata


def metadata_problem(metadata: dict, name: str | None) -> str | None:
    """What is wrong with a version's metadata (schema and names), or None."""
    version = metadata.get("version")
    if not isinstance(version, str) or not VERSION_NAME.fullmatch(version):
        return f"'version' must be a version name, not {version!r}"
    if name is not None and version != name:
        return f"'version' says {version!r} but the folder is {name!r}"
    if metadata.get("kind") not in KINDS:
        return f"'kind' must be one of {list(KINDS)}, not {metadata.get('kind')!r}"
    parent = metadata.get("parent")
    if parent is not None and not (isinstance(parent, str) and VERSION_NAME.fullmatch(parent)):
        return f"'parent' must be a version name or null, not {parent!r}"
    files = metadata.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        return f"'files' must give the SHA-256 and size of {MODEL_FILE}"
    for file_name, entry in files.items():
        if file_name not in VERSION_FILES:
            return f"'files' names {file_name!r}, which is not a file of a version"
        if not (
            isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"])
            and isinstance(entry.get("bytes"), int) and not isinstance(entry["bytes"], bool) and entry["bytes"] >= 0
        ):
            return f"'files' entry of {file_name} must be {{'sha256': 64 hex digits, 'bytes': a size}}"
    return None


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file that is not a link, at most `limit` of them; ModelUnavailableError otherwise."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ModelUnavailableError(f"{path} is larger than {limit} bytes.")
    return data


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a regular file that is not a link."""
    digest, size = hashlib.sha256(), 0
    with os.fdopen(_open_regular(path), "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ModelUnavailableError(f"{path} is missing.") from None
    except OSError as error:
        raise ModelUnavailableError(f"{path} cannot be read: {error.strerror or error} (a link is never followed).") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ModelUnavailableError(f"{path} is not a regular file.")
    os.set_blocking(fd, True)
    return fd


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# Listing -----------------------------------------------------------------------------------


def list_versions(model_dir: Path | None = None) -> list[VersionEntry]:
    """Every version folder, oldest first; only a current version whose files are present and match is marked."""
    model_dir = Path(model_dir or config.model_dir())
    current = current_name(model_dir)
    entries = []
    for name in _version_names(model_dir):
        metadata, problem = {}, None
        try:
            metadata = read_metadata(versions_dir(model_dir) / name / METADATA_FILE)
            problem = metadata_problem(metadata, name)
            if problem is None and name == current:
                check_version(model_dir, name)
        except ModelUnavailableError as error:
            problem = str(error)
        entries.append(VersionEntry(name, metadata, name == current and problem is None, problem))
    entries.sort(key=lambda entry: (str(entry.metadata.get("created", "")), entry.name))
    return entries


def _version_names(model_dir: Path) -> list[str]:
    folder = versions_dir(model_dir)
    if not _is_real_dir(folder):
        return []
    with os.scandir(folder) as entries:
        return sorted(
            entry.name for entry in entries
            if VERSION_NAME.fullmatch(entry.name) and not _is_leftover(entry.name) and entry.is_dir(follow_symlinks=False)
        )


def _is_base(meta: dict) -> bool:
    return meta.get("kind") == "base"


def find_base(model_dir: Path) -> Version:
    """The base model of the current one (following `parent`), else the newest usable base version."""
    usable = {entry.name: entry.metadata for entry in list_versions(model_dir) if entry.problem is None}
    name, seen = current_name(model_dir), set()
    while name in usable and not _is_base(usable[name]) and name not in seen:
        seen.add(name)
        name = usable[name].get("parent")
    if name not in usable or not _is_base(usable[name]):
        bases = [candidate for candidate, meta in usable.items() if _is_base(meta)]
        if not bases:
            raise ModelStoreError(f"No usable base model in {model_dir}: train one with `python -m digit_classifier train`.")
        name = max(bases, key=lambda candidate: (str(usable[candidate].get("created", "")), candidate))
    try:
        return check_version(model_dir, name)
    except ModelUnavailableError as error:
        raise ModelStoreError(f"The base model {name} cannot be used: {error}") from None


def new_version_name(model_dir: Path, created: datetime, feedback_sha256: str) -> str:
    stem = f"ft-{created:%Y%m%d-%H%M%S}-{feedback_sha256[:6]}"
    name, attempt = stem, 1
    while os.path.lexists(versions_dir(model_dir) / name):
        attempt += 1
        name = f"{stem}-{attempt}"
    return name


# Writing: one version as a unit, then one atomic swap ---------------------------------------


@contextlib.contextmanager
def _writer_lock(model_dir: Path) -> Iterator[None]:
    """One writer at a time per model folder; what a killed writer left behind is removed first."""
    model_dir = Path(model_dir)
    versions_dir(model_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(model_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        clean_orphans(model_dir)
        yield
    finally:
        os.close(fd)


def clean_orphans(model_dir: Path) -> list[str]:
    """Remove staging folders, temporary links and temporary files of killed writers; -> their names.

    Call only under the writer lock, where no other writer can be busy with them.
    """
    removed = []
    for folder, is_orphan in (
        (versions_dir(model_dir), _is_leftover),
        (Path(model_dir), lambda name: name.startswith(LINK_PREFIX) or (name.startswith(f".{HISTORY_FILE}.") and name.endswith(".tmp"))),
    ):
        if not _is_real_dir(folder):
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if not is_orphan(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def save_version(model_dir: Path, metadata: dict, write_files: Callable[[Path], None]) -> Version:
    """Write a new version as one unit: `write_files(folder)` writes VERSION_FILES there, then the
    metadata (with their hashes) is added and the whole folder renamed into versions/<version>."""
    model_dir = Path(model_dir)
    name = check_name(metadata.get("version"))
    with _writer_lock(model_dir):
        target = versions_dir(model_dir) / name
        if os.path.lexists(target):
            raise ModelStoreError(f"Version {name} already exists in {versions_dir(model_dir)}.")
        staging = versions_dir(model_dir) / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        staging.mkdir()
        try:
            write_files(staging)
            files = {}
            for file_name in VERSION_FILES:
                _fsync_file(staging / file_name)
                digest, size = file_digest(staging / file_name)
                files[file_name] = {"sha256": digest, "bytes": size}
            complete = {**{k: v for k, v in metadata.items() if k != "files"}, "files": files}
            problem = metadata_problem(complete, name)
            if problem:
                raise ModelStoreError(f"Cannot save version {name}: {problem}.")
            atomic_write_json(staging / METADATA_FILE, complete)
            _fsync_dir(staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(versions_dir(model_dir))
    return Version(name, target, complete)


def install(model_dir: Path, name: str, previous_versions: list[str]) -> Version:
    """Make versions/<name> current, with `previous_versions` as its rollback stack.

    Steps: check the version; write history.json (the new stack and the one it replaces,
    so the stack is right whether or not a kill comes before the swap); point a fresh
    temporary link at the version; rename it over `current` (the one step readers see);
    make sure the convenience links exist.
    """
    model_dir = Path(model_dir)
    with _writer_lock(model_dir):
        version = check_version(model_dir, name)
        replaced = current_name(model_dir)
        history = _History(name, list(previous_versions), replaced, read_history(model_dir).stack_below(replaced))
        _write_history(model_dir, history)
        _point_current_at(model_dir, name)
        ensure_convenience_links(model_dir)
    return version


def _point_current_at(model_dir: Path, name: str) -> None:
    temporary = model_dir / f"{LINK_PREFIX}{secrets.token_hex(6)}"
    os.symlink(f"versions/{name}", temporary)
    try:
        os.replace(temporary, model_dir / CURRENT)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(model_dir)


def ensure_convenience_links(model_dir: Path) -> None:
    """model.keras, metadata.json (and every other version file) -> current/<file>; a regular file there is left alone."""
    for file_name in (METADATA_FILE, *VERSION_FILES):
        link, target = Path(model_dir) / file_name, f"{CURRENT}/{file_name}"
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if os.path.lexists(link) and not link.is_symlink():
            continue
        temporary = Path(model_dir) / f"{LINK_PREFIX}{secrets.token_hex(6)}"
        os.symlink(target, temporary)
        os.replace(temporary, link)


def read_history(model_dir: Path) -> _History:
    """history.json, or an empty history when it is missing or damaged (rollback then needs --to)."""
    try:
        raw = json.loads(read_regular_file(Path(model_dir) / HISTORY_FILE, MAX_METADATA_BYTES))
    except (ModelUnavailableError, ValueError):
        return _History()
    if not isinstance(raw, dict):
        return _History()

    def name(value) -> str | None:
        return value if isinstance(value, str) and VERSION_NAME.fullmatch(value) else None

    def names(value) -> list[str]:
        return [item for item in value if name(item)] if isinstance(value, list) else []

    replaced = raw.get("replaced") if isinstance(raw.get("replaced"), dict) else {}
    return _History(name(raw.get("version")), names(raw.get("previous_versions")), name(replaced.get("version")), names(replaced.get("previous_versions")))


def _write_history(model_dir: Path, history: _History) -> None:
    document = {
        "version": history.version,
        "previous_versions": history.previous_versions,
        "installed_at": utc_now(),
        "replaced": {"version": history.replaced, "previous_versions": history.replaced_previous},
    }
    atomic_write_json(Path(model_dir) / HISTORY_FILE, document)


def promote_version(model_dir: Path, name: str) -> Version:
    """Make `name` current, keeping the version it replaces on the rollback stack."""
    current = current_name(model_dir)
    stack = read_history(model_dir).stack_below(current)
    return install(model_dir, name, stack + ([current] if current and current != name else []))


def rollback(model_dir: Path | None = None, to: str | None = None) -> Rollback:
    """Make the version the current one replaced current again, or `to`, which must be a version `models` lists."""
    model_dir = Path(model_dir or config.model_dir())
    listed = {entry.name: entry for entry in list_versions(model_dir)}
    if not listed:
        raise ModelStoreError(f"No model versions in {model_dir}: train one with `python -m digit_classifier train`.")
    current = current_name(model_dir)
    stack = read_history(model_dir).stack_below(current)
    if to is not None:
        if to not in listed:
            raise ModelStoreError(f"{to!r} is not a saved version: `python -m digit_classifier models` lists them.")
        if to == current and listed[to].current:
            raise ModelStoreError(f"{to} is already the current model.")
        target, remaining = to, stack + ([current] if current in listed and current != to else [])
    elif stack:
        target, remaining = stack[-1], stack[:-1]
    elif current in listed and listed[current].metadata.get("parent") in listed:
        target, remaining = listed[current].metadata["parent"], []
    else:
        raise ModelStoreError(f"Nothing to roll back to: {current or 'the current model'} replaced no other version.")
    if listed.get(target) is None or listed[target].problem:
        reason = listed[target].problem if target in listed else "it is missing"
        raise ModelStoreError(f"Cannot roll back to {target}: {reason}")
    export = export_problem(versions_dir(model_dir) / target, listed[target].metadata)
    if export:  # the app and `predict` serve the export: a version they would refuse is not installed
        raise ModelStoreError(f"Cannot roll back to {target}: its {LITERT_FILE} {export}.")
    try:
        install(model_dir, target, remaining)
    except ModelUnavailableError as error:
        raise ModelStoreError(f"Cannot roll back to {target}: {error}") from None
    return Rollback(current, target)


def _fsync_file(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_NOFOLLOW)


def _fsync_dir(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


"""Model versions: list them, install one as the current model, roll back. No TensorFlow here.

Layout of a model folder (``model/`` unless DIGIT_MODEL_DIR says otherwise)::

    model.keras, metadata.json          the current model and its metadata
    versions/<version>.keras, .json     every version ever saved (base and fine-tuned)

The current model's ``metadata.json`` keeps ``previous_versions``, the versions
it replaced, most recent last: `rollback()` restores the last of them. Reading
only JSON files and copying bytes, `python -m digit_classifier models` and
`rollback` answer at once instead of waiting for TensorFlow to load.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from . import config
from .atomic import atomic_write_bytes


class FinetuneError(RuntimeError):
    """Fine-tuning or rollback cannot go on; the message is meant for a person."""


def metadata_file_for(path: Path) -> Path:
    """`model/model.keras` -> `model/metadata.json`; `versions/<v>.keras` -> `versions/<v>.json`."""
    path = Path(path)
    if path.name == config.model_path().name:
        return path.with_name(config.metadata_path().name)
    return path.with_suffix(".json")


def model_file(model_dir: Path) -> Path:
    return model_dir / config.model_path().name


def versions_dir(model_dir: Path) -> Path:
    return model_dir / "versions"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def list_versions(model_dir: Path | None = None) -> list[dict]:
    """Metadata of every saved version, oldest first, each with "current": True for the model in use."""
    model_dir = Path(model_dir or config.model_dir())
    current = read_json(metadata_file_for(model_file(model_dir))).get("version")
    versions = [read_json(path) for path in sorted(versions_dir(model_dir).glob("*.json"))]
    versions = [meta for meta in versions if meta.get("version")]
    if current and current not in {meta["version"] for meta in versions}:
        versions.append(read_json(metadata_file_for(model_file(model_dir))))
    versions.sort(key=lambda meta: (str(meta.get("created", "")), meta["version"]))
    return [{**meta, "current": meta["version"] == current} for meta in versions]


def _is_base(meta: dict) -> bool:
    return meta.get("kind") == "base" or ("kind" not in meta and not meta.get("parent"))


def find_base(model_dir: Path) -> tuple[Path, dict]:
    """The base model of the current one (following `parent`), else the newest base version."""
    current = read_json(metadata_file_for(model_file(model_dir)))
    by_version = {meta["version"]: meta for meta in list_versions(model_dir)}
    meta, seen = current, set()
    while meta and not _is_base(meta) and meta.get("version") not in seen:
        seen.add(meta.get("version"))
        meta = by_version.get(meta.get("parent"), {})
    if meta and not _is_base(meta):
        meta = {}
    if not meta:
        bases = [meta for meta in by_version.values() if _is_base(meta)]
        if not bases:
            raise FinetuneError(f"No base model in {model_dir}: train one with `python -m digit_classifier train`.")
        meta = bases[-1]
    path = versions_dir(model_dir) / f"{meta['version']}.keras"
    if not path.is_file() and meta.get("version") == current.get("version"):
        path = model_file(model_dir)
    if not path.is_file():
        raise FinetuneError(f"The base model {meta['version']} is missing: expected {path}.")
    return path, meta


def new_version_name(model_dir: Path, created: datetime, feedback_sha256: str) -> str:
    stem = f"ft-{created:%Y%m%d-%H%M%S}-{feedback_sha256[:6]}"
    name, attempt = stem, 1
    while (versions_dir(model_dir) / f"{name}.keras").exists():
        attempt += 1
        name = f"{stem}-{attempt}"
    return name


def install(model_dir: Path, version: str, previous_versions: list[str]) -> dict:
    """Make versions/<version> the current model: model.keras, then metadata.json, each replaced atomically."""
    source = versions_dir(model_dir) / f"{version}.keras"
    if not source.is_file():
        raise FinetuneError(f"Version {version} is missing: expected {source}.")
    metadata = {
        **read_json(metadata_file_for(source)),
        "installed_at": utc_now(),
        "previous_versions": previous_versions,
    }
    atomic_write_bytes(model_file(model_dir), source.read_bytes())
    atomic_write_bytes(metadata_file_for(model_file(model_dir)), (json.dumps(metadata, indent=2) + "\n").encode())
    return metadata


def promote_version(model_dir: Path, version: str) -> dict:
    current = read_json(metadata_file_for(model_file(model_dir)))
    history = list(current.get("previous_versions", []))
    if current.get("version"):
        history.append(current["version"])
    return install(model_dir, version, history)


def rollback(model_dir: Path | None = None, to: str | None = None) -> dict:
    """Restore the version the current model replaced (or `to`); -> {"from", "to"}."""
    model_dir = Path(model_dir or config.model_dir())
    if not model_file(model_dir).is_file():
        raise FinetuneError(f"No model in {model_dir}: train one with `python -m digit_classifier train`.")
    current = read_json(metadata_file_for(model_file(model_dir)))
    history = list(current.get("previous_versions", []))
    if to and to == current.get("version"):
        raise FinetuneError(f"{to} is already the current model.")
    if to:
        target, remaining = to, history + ([current["version"]] if current.get("version") else [])
    elif history:
        target, remaining = history[-1], history[:-1]
    elif current.get("parent"):
        target, remaining = current["parent"], []
    else:
        raise FinetuneError(f"Nothing to roll back to: {current.get('version', 'the current model')} replaced no other version.")
    install(model_dir, target, remaining)
    return {"from": current.get("version"), "to": target}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# The whole loop --------------------------------------------------------------------------


def version_lines(versions: list[dict]) -> list[str]:
    """`models` output: one line per version, the current one marked with *."""
    lines = [f"  {'version':30} {'kind':10} {'parent':22} {'created':26} {'MNIST test':>10}  feedback"]
    for meta in versions:
        accuracy = meta.get("test_accuracy")
        shown = f"{100 * accuracy:8.2f} %" if isinstance(accuracy, (int, float)) else f"{'-':>10}"
        count = meta.get("feedback", {}).get("count", "-")
        marker = "*" if meta["current"] else " "
        note = "" if meta.get("kind") != "finetuned" or meta.get("promoted") else "  (not promoted)"
        lines.append(f"{marker} {meta['version']:30} {meta.get('kind', '?'):10} {str(meta.get('parent') or '-'):22} {str(meta.get('created', '-')):26} {shown}  {count}{note}")
    return lines

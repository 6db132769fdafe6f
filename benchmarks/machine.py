"""What every benchmark shares: the machine it ran on (printed first) and where its results go."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from digit_classifier.atomic import atomic_write_json
from digit_classifier.timestamps import utc_now


OUT = Path(__file__).resolve().parent / "out"  # each script also writes its figures here, as JSON (not committed)


def save(name: str, results: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    atomic_write_json(path, results)
    return path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict:
    return {
        "date": utc_now(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "streamlit": _version("streamlit"),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def describe(info: dict | None = None) -> str:
    info = info or machine()
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Python {info['python']}, "
        f"TensorFlow {info['tensorflow']}, ai-edge-litert {info.get('ai_edge_litert')}; load average {info['load_average'][0]:.2f} ({info['date']})"
    )

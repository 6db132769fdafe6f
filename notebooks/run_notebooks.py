"""Execute the notebooks top to bottom, in order, and save their outputs in place.

    python notebooks/run_notebooks.py                          # all of them, in order (make notebooks)
    python notebooks/run_notebooks.py 02_training.ipynb        # only some
    DIGIT_NOTEBOOK_FAST=1 python notebooks/run_notebooks.py    # the quick version the tests run

A normal run trains the full recipe in 02: see the README's Notebooks section for how long each takes.
The notebooks run with notebooks/ as their working directory, as in Jupyter Lab.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parent
NOTEBOOKS = tuple(sorted(path.name for path in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")))  # 01_ ... 05_, in order
CELL_TIMEOUT = 3600  # seconds; the full training cell is the longest


def execute(path: Path, timeout: int = CELL_TIMEOUT) -> nbformat.NotebookNode:
    """Run every cell of `path` in a fresh python3 kernel (working directory notebooks/); return the executed notebook."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    )
    client.execute()
    return notebook


def main(names: list[str]) -> int:
    for name in names or NOTEBOOKS:
        path = NOTEBOOKS_DIR / Path(name).name
        started = time.perf_counter()
        print(f"{path.name}: running ...", flush=True)
        notebook = execute(path)
        nbformat.write(notebook, path)
        print(f"{path.name}: done in {time.perf_counter() - started:.0f} s, {path.stat().st_size / 1e3:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

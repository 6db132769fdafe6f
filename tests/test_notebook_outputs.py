"""The committed notebooks, as a reader opens them: their saved outputs are legible, clean and small.

No kernel runs here (tests/test_notebooks.py executes them): this reads the .ipynb files. Every figure is a PNG
of at least 100 dpi, read from the PNG's own pHYs chunk (matplotlib writes the figure's dpi there); no cell
shows an error or anything written to stderr; the notebooks weigh 6 MB at most together; each has its FAST
switch at the top.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
MIN_DPI = 100
MAX_TOTAL_BYTES = 6_000_000
INCH = 0.0254  # metres


def png_dpi(png: bytes) -> tuple[float, float] | None:
    """(x, y) dots per inch from a PNG's pHYs chunk; None when it has none or its unit is not the metre."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position = 8
    while position + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        body = png[position + 8 : position + 8 + length]
        if kind == b"pHYs":
            x, y, unit = struct.unpack(">IIB", body)
            return (x * INCH, y * INCH) if unit == 1 else None
        if kind == b"IDAT":  # pHYs must come before the image data
            return None
        position += 12 + length
    return None


def figures_of(notebook) -> list[tuple[int, bytes]]:
    return [
        (index, base64.b64decode(output["data"]["image/png"]))
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]


def test_the_dpi_reader_reads_what_matplotlib_writes(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for dpi in (72, 110):
        figure, _ = plt.subplots(figsize=(2, 1), dpi=dpi)
        figure.savefig(tmp_path / "f.png", format="png")
        plt.close(figure)
        x, y = png_dpi((tmp_path / "f.png").read_bytes())
        assert round(x) == round(y) == dpi


def test_there_are_five_chapters():
    assert [path.name[:3] for path in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_saved_figure_is_at_least_100_dpi(path: Path):
    notebook = nbformat.read(path, as_version=4)
    found = figures_of(notebook)
    assert found, f"{path.name} has no saved figure: run `make notebooks`"
    low = [(index, png_dpi(png)) for index, png in found if (png_dpi(png) or (0, 0))[0] < MIN_DPI - 0.5]
    assert not low, f"{path.name}: figures below {MIN_DPI} dpi (cell, dpi): {low}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_saved_outputs_have_no_error_or_stderr(path: Path):
    notebook = nbformat.read(path, as_version=4)
    bad = [
        f"cell {index}: {output.get('ename') or output.get('text', '')[:200]}"
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error" or (output.get("output_type") == "stream" and output.get("name") == "stderr")
    ]
    assert not bad, f"{path.name}: {bad}"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), f"{path.name} was saved with cells not run: run `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_fast_switch_is_the_first_code_cell(path: Path):
    first = next(cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
    switch = [line for line in first.source.splitlines() if line.startswith("FAST = ")]
    assert switch and "DIGIT_NOTEBOOK_FAST" in switch[0], f"{path.name}: the first code cell must set FAST from DIGIT_NOTEBOOK_FAST"


def test_notebooks_weigh_at_most_6_mb_together():
    total = sum(path.stat().st_size for path in NOTEBOOKS)
    assert total <= MAX_TOTAL_BYTES, f"the notebooks weigh {total / 1e6:.1f} MB together (at most {MAX_TOTAL_BYTES / 1e6:.0f} MB)"

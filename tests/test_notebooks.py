"""The notebooks run top to bottom in FAST mode, offline, without error, and leave the repository as it was.

One test per notebook (`-k 05_real` runs one). Each notebook is copied to a temporary folder and executed there (never in place)
with DIGIT_NOTEBOOK_FAST=1: a one-epoch training run on 2,000 images, small
realistic sets, a one-epoch fine-tuning simulation. About 1-3 minutes each on 2 cores.
The kernel cannot open network connections (a sitecustomize refuses every
connection that is not to this machine), and the feedback store it sees is empty,
so notebook 04 takes its simulation path whatever wrong_predictions/ holds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.notebooks

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_preprocessing.ipynb", "02_training.ipynb", "03_evaluation.ipynb", "04_finetuning.ipynb", "05_real_pictures.ipynb")
CELL_TIMEOUT = 600

NO_NETWORK = textwrap.dedent(
    '''
    """Loaded by the notebook kernel under test: refuse every connection that leaves this machine."""
    import socket

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


    def _local(address):
        if not isinstance(address, tuple):  # a Unix socket path
            return True
        return address[0] in ("localhost", "::1") or str(address[0]).startswith("127.")


    def _guarded(method):
        def connect(self, address):
            if not _local(address):
                raise OSError(f"network access is disabled in the notebook tests (tried {address!r})")
            return method(self, address)

        return connect


    socket.socket.connect = _guarded(_connect)
    socket.socket.connect_ex = _guarded(_connect_ex)
    '''
)


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout


def error_outputs(notebook) -> list[str]:
    return [
        f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
        for index, cell in enumerate(notebook.cells)
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


@pytest.fixture
def fast_offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment the kernels inherit: FAST mode, no network, an empty feedback store. -> work folder."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    store = tmp_path / "wrong_predictions"
    store.mkdir()
    monkeypatch.setenv("DIGIT_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("DIGIT_FEEDBACK_DIR", str(store))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{REPO_ROOT}")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    work = tmp_path / "notebooks"
    work.mkdir()
    return work


def notebook_bytes() -> dict[str, bytes]:
    return {name: (REPO_ROOT / "notebooks" / name).read_bytes() for name in NOTEBOOKS}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode_without_errors(name: str, trained_model, fast_offline_env: Path):
    before, committed_outputs = git_status(), notebook_bytes()
    copy = fast_offline_env / name
    shutil.copy(REPO_ROOT / "notebooks" / name, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(fast_offline_env)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    nbformat.write(notebook, copy)
    assert not error_outputs(notebook), f"{name}: {error_outputs(notebook)}"
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "FAST mode" in printed, f"{name} did not run in FAST mode"
    executed = [cell.execution_count for cell in notebook.cells if cell.cell_type == "code"]
    assert executed == list(range(1, len(executed) + 1)), f"{name}: cells did not all run in order"
    after = git_status()
    changed = sorted(set(before.splitlines()) ^ set(after.splitlines()))
    assert after == before, f"running {name} changed the repository (git status --porcelain): {changed}"
    assert notebook_bytes() == committed_outputs, "the notebooks in notebooks/ were modified: they must run from a copy"


def test_kernel_used_by_the_notebooks_is_this_python():
    """nbclient starts the kernel "python3"; it must be this environment's Python, where the package's dependencies are."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    executable = Path(spec.argv[0])
    if executable.name.startswith("python") and executable.is_absolute():
        assert executable.resolve().parent == Path(sys.executable).resolve().parent, (
            f"kernel python3 runs {executable}, not {sys.executable}: "
            f"run `{sys.executable} -m ipykernel install --sys-prefix`"
        )

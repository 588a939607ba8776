"""The notebooks in notebooks/: committed without outputs, and each runs from top to bottom.

They are executed with nbclient in a fresh kernel whose working folder is a
temporary one; they write only under temporary folders of their own.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_walkthrough.ipynb", "02_tracers.ipynb", "03_cohort.ipynb")
CELL_TIMEOUT_S = 300


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_three_notebooks_are_committed_without_outputs():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in _code_cells(nb):
            assert cell.outputs == [] and cell.execution_count is None, f"{name} has outputs: strip them"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_draws_a_figure(name, tmp_path, monkeypatch):
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the kernel's temporary folders, removed with tmp_path
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on a failing cell
    outputs = [out for cell in _code_cells(nb) for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs)
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"]  # nothing beside the notebook's temporary folder
    assert len(list((tmp_path / "tmp").iterdir())) >= 1
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in outputs)
    if name == "01_walkthrough.ipynb":
        assert "label map read back on the PET grid: True" in text
        assert "quality: ok" in text
    if name == "03_cohort.ipynb":
        assert '"done": 2' in text and '"failed": 1' in text

"""notebooks/05_dynamics.ipynb executed end to end at a small size against the test database."""

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.notebook]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_dynamics.ipynb"


def test_dynamics_notebook(db, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("NEUROFIT_CTD_SCALE", "0.08")  # the kernel inherits it: ~64 trials, 2 epochs
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    summary = ast.literal_eval("".join(o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result"))
    assert summary["n_models"] == 2 and summary["finite"]
    assert 0 <= summary["bit_accuracy"] <= 1 and summary["n_points"] >= 1
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # trajectories, fixed points, metric bars

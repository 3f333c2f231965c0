"""notebooks/04_deepdraw.ipynb executed end to end against the test database, at a small size."""

import ast
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.notebook]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04_deepdraw.ipynb"


def test_deepdraw_notebook(db, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("NEUROFIT_DEEPDRAW_SMALL", "1")  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    summary = ast.literal_eval("".join(o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result"))
    assert summary["n_layers"] == 5 and summary["n_tests"] > 0
    assert summary["trained_accuracy"] > summary["untrained_accuracy"]
    assert summary["last_similarity_trained"] > summary["last_similarity_untrained"]
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # accuracy + oracle similarity, CKA, tuned fractions + preferred directions
    assert os.environ["NEUROFIT_DEEPDRAW_SMALL"] == "1"

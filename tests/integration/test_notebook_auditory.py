"""notebooks/06_auditory.ipynb executed end to end against the test database, at the small size."""

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.notebook]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_auditory.ipynb"


def test_auditory_notebook(db, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from neurofit import schemas

    # The kernel inherits the environment: the small simulation, one thread.
    monkeypatch.setenv("NEUROFIT_STRF_SIZE", "small")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    summary = ast.literal_eval("".join(o["data"]["text/plain"] for o in cell.outputs
                                       if o.get("output_type") == "execute_result"))
    assert summary["size"] == "small"
    assert summary["n_trained"] == summary["n_keys"] == 6  # ridge on both datasets, four networks on natural-like
    scores = summary["cc_norm"]
    assert set(scores) == {"L (ridge)", "L", "LN", "NRF", "2D-CNN"}
    assert summary["ceiling"] >= 0.98  # the true rates: CCnorm is calibrated
    assert summary["drc_recovery"] >= 0.9  # ridge recovers the true STRFs from white sounds
    assert scores["LN"] > scores["L"] + 0.03 and scores["2D-CNN"] > scores["L"] + 0.03
    assert min(scores["LN"], scores["2D-CNN"]) >= 0.9
    assert summary["leaderboard_models"] == sorted(scores, key=scores.get, reverse=True)  # ranked by CCnorm
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # true vs fitted STRFs; CCnorm per model
    notebook_data = schemas.Dataset & {"comment": "neurofit strf demo"}
    assert len(schemas.TrainedModel & notebook_data.keys()) == 6  # the kernel wrote to the test database

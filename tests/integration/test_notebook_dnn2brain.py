"""notebooks/07_dnn_to_brain.ipynb executed end to end against the test database, at the demo size (about a minute of CPU)."""

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.notebook]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "07_dnn_to_brain.ipynb"


def _forget_analyses():
    """Remove the notebook's dnn2brain rows: the session's teardown drops neurofit's schema, which
    MariaDB refuses while rows of a lab schema reference it."""
    from neurofit import schemas

    schemas.activate(extra_schemas=["neurofit.schemas.dnn2brain"])
    from neurofit.schemas import dnn2brain

    for table in (dnn2brain.RegionSet, dnn2brain.ModelRDMSet, dnn2brain.SearchlightRDMs):
        (table & f"{table.primary_key[0]} LIKE 'dnn2brain%%'").delete(prompt=False)


def test_dnn_to_brain(db, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from neurofit import schemas

    # The kernel inherits the environment: one thread. The demo's own sizes: smaller training
    # leaves the classifier too weak to win the category ROI.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        _forget_analyses()
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    summary = ast.literal_eval("".join(o["data"]["text/plain"] for o in cell.outputs
                                       if o.get("output_type") == "execute_result"))
    assert summary["depth_roi_network"] == "depth" and summary["depth_roi_group"] == "3D"
    assert summary["category_roi_network"] == "classifier" and summary["category_roi_group"] == "semantic"
    assert summary["evc_group"] == "2D"
    assert summary["depth_unique_ratio"] >= 3 and summary["category_unique_ratio"] >= 3
    assert summary["depth_significant"]
    assert summary["searchlight_agreement"] > 0.6
    assert summary["n_nifti_maps"] == 4 + 3 + 2  # R² per network, unique per group, two winner maps
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # R² with noise ceilings, partition, searchlight slice
    # The notebook wrote to the test database: its encoders are trained rows there.
    assert len(schemas.TrainedModel & (schemas.Dataset & {"comment": "neurofit dnn2brain demo"}).keys()) == 4

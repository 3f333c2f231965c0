"""Notebooks are executed end to end against the test database, as a user would run them."""

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow, pytest.mark.notebook]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    # Raises CellExecutionError (with the cell and traceback) if any cell fails.
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return notebook


def _last_value(notebook) -> dict:
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    text = "".join(o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result")
    return ast.literal_eval(text)


def test_getting_started(db, tmp_path):
    from neurofit import schemas

    notebook = _execute("01_getting_started.ipynb", tmp_path)
    summary = _last_value(notebook)
    assert summary["mean_single_trial_correlation"] > 0.15
    assert summary["mean_single_trial_correlation"] < summary["ceiling"] + 0.05
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # learning curves and per-neuron correlations
    # The notebook wrote to the same database the tests use.
    notebook_data = schemas.Dataset & {"comment": "getting-started notebook"}
    assert len(schemas.TrainedModel & notebook_data.keys()) == 4


def test_analysis(db, tmp_path):
    notebook = _execute("02_analysis.ipynb", tmp_path)
    summary = _last_value(notebook)
    assert summary["n_layers"] == 3  # the demo's small model: 2 core layers and the output
    assert summary["best_layer"] == "output"  # the readout predicts the population, so its RDM matches best
    assert 0.3 < summary["best_similarity"] <= summary["noise_ceiling_upper"] + 0.05
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # RDM heatmaps, comparison, CKA matrix, preferred directions
    assert summary["max_fraction_tuned"] > 0.1  # some units of the trained model are direction tuned


def test_dlgn_movies(db, tmp_path):
    notebook = _execute("03_dlgn_movies.ipynb", tmp_path)
    summary = _last_value(notebook)
    assert summary["n_models"] == 4  # two cores x two seeds
    assert summary["n_rows"] == 4 * 2 * 10  # models x sessions x neurons
    assert 0.15 < summary["mean_single_trial_correlation"] < summary["ceiling"] + 0.05
    assert summary["min_recovery_auc"] > 0.75  # both cores find the laser-modulated neurons
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # traces; correlations and recovery
    assert any("column 'responses'" in o.get("text", "") for o in outputs)  # the malformed DataFrame was refused

"""A database made by the previous release (commit d09410c) is upgraded in place and keeps working.

The previous release's own code (from git) creates a schema, trains a model and probes it; this
release then activates the same schema, upgrades its tables, reads the old rows and populates
everything that is left. Runs on every backend (the ALTER statements differ).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefix_schemas import drop_prefix_schemas

pytestmark = [pytest.mark.db, pytest.mark.slow]

PREVIOUS_RELEASE = "d09410c"
ROOT = Path(__file__).resolve().parents[2]

OLD_RELEASE_SCRIPT = """
import json, numpy as np, torch
torch.set_num_threads(1)
from neurofit import schemas
schemas.activate()
data = schemas.Dataset.add("neurofit.synthetic_responses", {"n_neurons": 6, "n_train_images": 40,
    "n_validation_images": 10, "n_test_images": 6, "n_repeats": 2, "image_size": 12, "batch_size": 16})
model = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 3, "layers": 1})
trainer = schemas.Trainer.add("neurofit.poisson", {"max_epochs": 1})
keys = schemas.TrainingSelection.add_grid(data, model, trainer, [1, 2])
schemas.populate(["TrainedModel", "Performance"], keys[0], display_progress=False, suppress_errors=False)
rng = np.random.default_rng(0)
schemas.StimulusSet.add("old_images", rng.standard_normal((8, 1, 12, 12)),
                        {"direction": rng.standard_normal((8, 2))})
schemas.ProbeSelection.add(keys[0], "old_images")
schemas.populate(["Activations", "RDM"], display_progress=False, suppress_errors=False)
print(json.dumps({"key": keys[0], "trained": len(schemas.TrainedModel()), "rdms": len(schemas.RDM())}))
"""

NEW_RELEASE_SCRIPT = """
import json, logging, torch
torch.set_num_threads(1)
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from neurofit import schemas
from neurofit.schemas import extensions, migrate
schemas.activate()
old = json.loads(OLD_KEY)
row = (schemas.TrainedModel & old).fetch1()
model = schemas.load_model(old, device="cpu")
again = [str(c) for c in migrate.migrate(extensions.active_schemas(), dry_run=True)]
result = schemas.populate(display_progress=False, suppress_errors=False)
print(json.dumps({
    "n_parameters": row["n_parameters"], "provides": row["provides"],
    "loaded": type(model).__name__, "pending_after_upgrade": again,
    "trained": len(schemas.TrainedModel()), "performance": len(schemas.Performance()),
    "old_layers_axes": sorted(set((schemas.Activations.Layer & old).to_arrays("axes"))),
    "rdm_methods": sorted(set(schemas.RDM().to_arrays("rdm_method"))),
    "comparison_methods": len(schemas.ComparisonMethod()),
    "status": schemas.status().reset_index().to_dict("records"),
    "computed": {name: r["success_count"] for name, r in result.items()},
}))
"""


def _previous_release(tmp_path: Path) -> Path:
    """The previous release's code as an importable ``neurofit`` namespace; fails without git history."""
    source = tmp_path / "release"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE], capture_output=True)
    if archive.returncode != 0:
        pytest.fail(f"cannot read release {PREVIOUS_RELEASE} from git ({archive.stderr.decode()[:200]}); "
                    "the upgrade test needs the repository's history (clone without --depth)")
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    package = tmp_path / "namespace" / "neurofit"
    package.mkdir(parents=True)
    for folder in ("schemas", "pipelines", "models", "datasets"):
        (package / folder).symlink_to(source / folder)
    return package.parent


def _run(script: str, prefix: str, pythonpath: Path | None = None) -> dict:
    env = {**os.environ, "NEUROFIT_PREFIX": prefix, "OMP_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # ahead of the installed neurofit
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"log": done.stderr}


def _drop(prefix: str) -> None:
    drop_prefix_schemas(prefix)


def test_a_database_of_the_previous_release_is_upgraded_and_keeps_working(db, tmp_path):
    prefix = f"test_{uuid.uuid4().hex[:8]}_old_"
    try:
        old = _run(OLD_RELEASE_SCRIPT, prefix, _previous_release(tmp_path))
        assert old["trained"] == 1 and old["rdms"] > 0
        new = _run(NEW_RELEASE_SCRIPT.replace("OLD_KEY", repr(json.dumps(old["key"]))), prefix)

        # The upgrade said what it changed, and nothing is left to change.
        assert "upgraded TrainedModel: adds attribute(s) n_parameters, provides" in new["log"], new["log"]
        assert "upgraded Activations.Layer: adds attribute(s) axes, time_centres" in new["log"]
        assert new["pending_after_upgrade"] == []
        # Old rows read as what they are: not recorded, and a responses dataset.
        assert new["n_parameters"] is None and new["provides"] == "responses"
        assert new["loaded"] == "GaussianReadoutCNN"
        assert new["old_layers_axes"] == [""]  # recorded before axes were
        # populate works on the upgraded database: the second seed trains and everything is scored.
        assert new["trained"] == 2 and new["performance"] == 2
        assert new["computed"]["TrainedModel"] == 1 and new["computed"]["Performance"] == 1
        assert new["rdm_methods"] == ["correlation", "euclidean"]
        from neurofit.pipelines.analysis.rdm_comparison import COMPARISON_METHODS

        assert new["comparison_methods"] == len(COMPARISON_METHODS)
        assert all(row["error"] == 0 and row["pending"] == 0 for row in new["status"]), new["status"]
    finally:
        _drop(prefix)

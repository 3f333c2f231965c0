"""A lab's own package plugs into neurofit through entry points only, end to end.

``tests/lab_package`` (acme-lab) adds a classification dataset, a model, a trainer on the shared
training loop, an analysis and a table of its own that depends on `TrainedModel`. It is installed
here with pip; neurofit's code never imports or names it. A `neurofit worker` then computes all
of it, and `neurofit status` lists the lab's table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab_package"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """acme-lab installed with pip into a folder of its own (its entry points included)."""
    target = tmp_path_factory.mktemp("acme_site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(LAB)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("acme_lab-*.dist-info/entry_points.txt")), "pip installed no entry points"
    return target


def _neurofit(site, *args):
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _python(site, code):
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def test_neurofit_never_names_the_lab_package():
    for folder in ("schemas", "pipelines", "models", "datasets"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "acme" not in path.read_text().lower(), path


def test_a_lab_package_runs_end_to_end_through_entry_points(db, site, monkeypatch):
    from neurofit import schemas

    monkeypatch.syspath_prepend(str(site))  # entry points are found on sys.path at each lookup
    dataset = schemas.Dataset.add("acme.blobs", {"n_per_class": 40})
    model = schemas.Model.add("acme.mlp", {"hidden": 12})
    trainer = schemas.Trainer.add("acme.cross_entropy", {"max_epochs": 6})
    keys = schemas.TrainingSelection.add_grid(dataset, model, trainer, [1, 2])
    analysis = schemas.Analysis.add("acme.class_recall", {})
    schemas.ScoreSelection.add(keys, analysis)
    try:
        worker = _neurofit(site, "worker", "--where", "dataset_fn = 'acme.blobs'", "--device", "cpu")
        assert worker.returncode == 0, worker.stdout + worker.stderr

        assert len(schemas.TrainedModel & keys) == 2
        assert set((schemas.TrainedModel & keys).to_arrays("provides")) == {"labels"}
        accuracy = (schemas.TaskPerformance & keys).to_arrays("accuracy")
        assert len(accuracy) == 2 and min(accuracy) > 0.9  # 3 separable classes; chance is 1/3
        # Performance (neural responses) does not apply: not even a job was made.
        assert not (schemas.Performance.key_source & keys)
        assert not (schemas.Performance.jobs & keys)
        assert len(schemas.Score & keys) == 2 and len(schemas.Score.Unit & keys) == 2 * 3
        assert len(schemas.DatasetArtefact & dataset) == 1  # the class centres, stored once

        counts = _python(site, (
            "from neurofit import schemas\nschemas.activate()\n"
            "from acme_lab.tables import WeightNorm\n"
            "print(len(WeightNorm()), min(WeightNorm().to_arrays('weight_norm')) > 0)"
        ))
        assert counts == "2 True"
        status = _neurofit(site, "status")
        assert status.returncode == 0, status.stderr
        line = next(row for row in status.stdout.splitlines() if row.startswith("WeightNorm"))
        assert line.split()[1] == "2", status.stdout  # done
    finally:
        # The lab's rows go first, while its schema still exists: later deletes then never meet a
        # dependency graph that names the dropped schema's tables.
        for table, row in ((schemas.Dataset, dataset), (schemas.Model, model), (schemas.Trainer, trainer)):
            (table & row).delete(prompt=False)
        _python(site, (
            "from neurofit import schemas\nschemas.activate()\n"
            "import acme_lab.tables as t\nt.schema.drop(prompt=False)"
        ))


def test_a_delete_after_another_process_dropped_a_lab_schema(db, site, monkeypatch):
    """This process's dependency graph still names the lab's tables after another process drops them."""
    from neurofit import schemas

    monkeypatch.syspath_prepend(str(site))
    dataset = schemas.Dataset.add("acme.blobs", {"n_per_class": 41})
    _python(site, "from neurofit import schemas\nschemas.activate()\nimport acme_lab.tables")  # creates it
    (schemas.Dataset & dataset).delete(prompt=False)  # the graph now holds the lab's schema
    dataset = schemas.Dataset.add("acme.blobs", {"n_per_class": 41})
    _python(site, (
        "from neurofit import schemas\nschemas.activate()\n"
        "import acme_lab.tables as t\nt.schema.drop(prompt=False)"
    ))
    (schemas.Dataset & dataset).delete(prompt=False)
    assert not (schemas.Dataset & dataset)

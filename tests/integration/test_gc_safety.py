"""`neurofit gc --delete` may run at any time: beside a worker it never deletes a live row's file.

DataJoint writes a row's file inside the insert transaction, before the row commits; a collector
that sees the file but not yet the row would take it for an orphan. Every wait is bounded.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
N_JOBS = 40
N_DELETED = 5


@pytest.fixture(autouse=True)
def chaos_builders(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")


def _select(seeds, log_dir):
    from neurofit import schemas

    dataset = schemas.Dataset.add("chaos_builders.build_tiny_data", {})
    model = schemas.Model.add("chaos_builders.build_tiny_model", {})
    # A log_dir of its own gives this test a trainer hash no other test's jobs share.
    trainer = schemas.Trainer.add("chaos_builders.train_sleepy", {"log_dir": str(log_dir), "epochs": 1, "seconds": 0.0})
    return schemas.TrainingSelection.add_grid(dataset, model, trainer, seeds)


def _start_worker(trainer_hash, log):
    env = {**os.environ, "NEUROFIT_ALLOWED_MODULES": "chaos_builders", "NEUROFIT_CHECKPOINT_INTERVAL": "0",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "neurofit.schemas.cli", "worker", "TrainedModel", "--heartbeat", "0.5",
         "--poll", "1", "--device", "cpu", "--where", f"trainer_hash = '{trainer_hash}'"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _weights_file(key) -> tuple[str, Path]:
    """The store-relative path of one row's weights, and the file it names."""
    from neurofit import schemas

    ref = (schemas.TrainedModel & key).fetch1("weights")
    return ref.path, Path(ref.full_path)


def _lost(keys) -> list[int]:
    """Seeds of trained rows whose weights can no longer be read."""
    from datajoint.errors import DataJointError

    from neurofit import schemas

    lost = []
    for key in keys:
        try:
            schemas.TrainedModel().fetch_weights(key)
        except (DataJointError, OSError):  # MissingExternalFile: the file is gone
            lost.append(key["seed"])
    return lost


@pytest.mark.db
@pytest.mark.slow
def test_gc_looped_beside_a_worker_loses_no_weights_and_still_removes_orphans(db, tmp_path):
    from neurofit import schemas

    keys = _select(list(range(900, 900 + N_JOBS)), tmp_path)
    schemas.TrainedModel.jobs.refresh()  # job rows exist before the worker and gc start
    log_path = tmp_path / "worker.out"
    started = time.monotonic()
    sweeps = 0
    with open(log_path, "w") as log:
        worker = _start_worker(keys[0]["trainer_hash"], log)
        try:
            deadline = time.monotonic() + 240
            while worker.poll() is None:
                assert time.monotonic() < deadline, f"the worker did not finish in 240 s\n{log_path.read_text()[-3000:]}"
                schemas.collect_garbage(dry_run=False)  # what `neurofit gc --delete` runs: default grace period
                sweeps += 1
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait(timeout=30)
    elapsed = time.monotonic() - started
    output = log_path.read_text()[-3000:]
    assert worker.returncode == 0, output
    assert len(schemas.TrainedModel & keys) == N_JOBS, output
    assert sweeps >= 3, f"gc ran only {sweeps} times beside the worker"
    lost = _lost(keys)
    print(f"\n{sweeps} gc sweeps beside the worker over {elapsed:.1f} s; rows that lost their weights: {len(lost)}/{N_JOBS}")
    assert lost == [], f"{len(lost)} of {N_JOBS} rows lost their weights to gc: seeds {lost}"

    # Real orphans: the files of deleted rows. Old ones go at the default grace period, young ones
    # are kept until it has passed (or grace=0 says nobody is writing).
    doomed = keys[:N_DELETED]
    stored = [_weights_file(key) for key in doomed]
    files = [path for _, path in stored]
    (schemas.TrainingSelection & doomed).delete(prompt=False)
    old, young = files[:3], files[3:]
    two_hours_ago = time.time() - 2 * 3600
    for path in old:
        os.utime(path, (two_hours_ago, two_hours_ago))
    first = schemas.collect_garbage(dry_run=False)
    assert not any(f.exists() for f in old) and all(f.exists() for f in young)
    assert first["kept_young"] >= len(young)
    assert {relative for relative, _ in stored[:3]} <= set(first["paths"])
    cli = subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", "gc", "--delete", "--grace", "0"],
                         capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert not any(f.exists() for f in young), [str(f) for f in young if f.exists()]
    assert int(cli.stdout.split("deleted ")[1].split()[0]) >= len(young), cli.stdout
    assert _lost(keys[N_DELETED:]) == []


def test_file_ages_come_from_local_and_bucket_listings():
    from datetime import datetime, timezone

    from neurofit.schemas.storage import _modified

    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert _modified({"name": "f", "mtime": 1700000000.5}) == 1700000000.5  # local files
    assert _modified({"Key": "k", "LastModified": moment}) == moment.timestamp()  # S3 through s3fs
    assert _modified({"name": "g", "updated": "2026-01-02T03:04:05Z"}) == moment.timestamp()  # GCS
    assert _modified({"name": "no time"}) is None  # never counted as old


@pytest.mark.parametrize("value", [-1, "soon", float("nan")])
def test_a_bad_grace_period_is_refused_with_its_fix(value, monkeypatch):
    from neurofit.schemas.storage import grace_minutes

    with pytest.raises(ValueError, match="minutes >= 0"):
        grace_minutes(value)
    monkeypatch.setenv("NEUROFIT_GC_GRACE", str(value))
    with pytest.raises(ValueError, match="NEUROFIT_GC_GRACE"):
        grace_minutes()


def test_the_grace_period_defaults_to_an_hour_and_follows_the_environment(monkeypatch):
    from neurofit.schemas.storage import grace_minutes

    monkeypatch.delenv("NEUROFIT_GC_GRACE", raising=False)
    assert grace_minutes() == 60
    monkeypatch.setenv("NEUROFIT_GC_GRACE", "5")
    assert grace_minutes() == 5 and grace_minutes(0) == 0

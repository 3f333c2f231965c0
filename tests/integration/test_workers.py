"""Chaos tests: real worker processes killed, preempted and cut off from the database.

Every wait is bounded; a test that would hang fails instead.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
DATA = ("chaos_builders.build_tiny_data", {})
MODEL = ("chaos_builders.build_tiny_model", {})


@pytest.fixture(autouse=True)
def chaos_builders(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")


_outputs = []


def start_worker(trainer, *args, log=None):
    """A worker subprocess; its output goes to ``log`` or a temporary file shown on failure."""
    if log is None:
        import tempfile

        log = tempfile.NamedTemporaryFile("w+", prefix="neurofit_worker_", suffix=".out", delete=False)
        _outputs.append(log.name)
    env = {**os.environ, "NEUROFIT_ALLOWED_MODULES": "chaos_builders", "NEUROFIT_CHECKPOINT_INTERVAL": "0",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "neurofit.schemas.cli", "worker", "TrainedModel", "--heartbeat", "0.5",
         "--dead-after", "3", "--poll", "1", "--device", "cpu", "--where", only(trainer), *args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def only(keys) -> str:
    """A --where restriction to one test's jobs: other tests leave selections behind."""
    key = keys[0] if isinstance(keys, list) else keys
    return f"trainer_hash = '{key['trainer_hash']}'"


def worker_output() -> str:
    return "\n".join(f"--- {path}\n{Path(path).read_text()[-2500:]}" for path in _outputs)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{worker_output()}")


def select(seeds, tmp_path, **trainer):
    from neurofit import schemas

    dataset = schemas.Dataset.add(*DATA)
    model = schemas.Model.add(*MODEL)
    trainer = schemas.Trainer.add("chaos_builders.train_sleepy", {"log_dir": str(tmp_path), **trainer})
    return schemas.TrainingSelection.add_grid(dataset, model, trainer, seeds)


def events(tmp_path, seed):
    path = tmp_path / f"{seed}.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def stop(process, timeout=30):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def test_three_workers_one_killed_every_key_completes_exactly_once(db, tmp_path):
    from neurofit import schemas

    seeds = list(range(100, 130))
    keys = select(seeds, tmp_path, epochs=3, seconds=0.3)
    workers = [start_worker(keys, "--wait") for _ in range(3)]
    try:
        victim = workers[0]

        def victim_mid_training():
            for seed in seeds:
                lines = events(tmp_path, seed)
                if any(pid == str(victim.pid) and event == "start" and int(epoch) >= 2 for pid, event, epoch in lines) \
                        and not any(event == "finished" for _, event, _ in lines):
                    return seed
            return None

        def victim_ready():
            assert victim.poll() is None, f"the victim exited early\n{worker_output()}"
            return victim_mid_training() is not None

        wait_for(victim_ready, 90, "the victim to be mid-training")
        killed_seed = victim_mid_training()
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        wait_for(lambda: len(schemas.TrainedModel & keys) == 30, 120, "all 30 keys to complete")
    finally:
        for worker in workers[1:]:
            assert stop(worker) == 0, worker_output()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()

    finished = Counter(seed for seed in seeds for _, event, _ in events(tmp_path, seed) if event == "finished")
    assert all(finished[seed] == 1 for seed in seeds), finished
    # The killed job resumed from its checkpoint: the epoch it was in ran again, earlier ones did not.
    starts = Counter(int(epoch) for pid, event, epoch in events(tmp_path, killed_seed) if event == "start")
    assert starts[1] == 1 and max(starts.values()) <= 2
    # No partial rows, nothing stuck, nothing left behind.
    for key in keys:
        assert len(schemas.TrainedModel.Epoch & key) == 3
    assert not (schemas.TrainedModel.jobs.reserved & keys) and not (schemas.TrainedModel.jobs.errors & keys)
    assert not (schemas.Checkpoint & keys)
    assert (schemas.Worker & {"pid": victim.pid}).fetch1("status") == "dead"
    schemas.collect_garbage(dry_run=False, grace=0)  # the workers have stopped
    assert schemas.collect_garbage(dry_run=True, grace=0)["orphaned_files"] == 0
    assert all(len(schemas.TrainedModel().fetch_weights(k)) > 0 for k in keys[:3])


def test_sigterm_puts_the_job_back_and_it_resumes_without_repeating_epochs(db, tmp_path):
    from neurofit import schemas

    key = select([200], tmp_path, epochs=6, seconds=0.4)[0]
    worker = start_worker(key)
    wait_for(lambda: any(e == "start" and int(n) >= 3 for _, e, n in events(tmp_path, 200)), 60, "epoch 3")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0  # a clean exit
    assert not (schemas.TrainedModel & key)
    job = (schemas.TrainedModel.jobs & key).fetch1()
    assert job["status"] == "pending"
    done_epochs = (schemas.Checkpoint & key).fetch1("epoch")
    assert 3 <= done_epochs < 6

    second = start_worker(key)
    assert second.wait(timeout=60) == 0
    assert len(schemas.TrainedModel.Epoch & key) == 6
    starts = Counter(int(n) for _, e, n in events(tmp_path, 200) if e == "start")
    assert starts == Counter(range(1, 7)), starts  # every epoch ran exactly once
    pids = {pid for pid, e, n in events(tmp_path, 200) if e == "start" and int(n) > done_epochs}
    assert pids == {str(second.pid)}


def test_a_failing_job_stops_after_its_retry_budget_with_its_traceback(db, tmp_path):
    from neurofit import schemas

    key = select([300], tmp_path, fail=True)[0]
    worker = start_worker(key, "--max-attempts", "2")
    assert worker.wait(timeout=60) == 0
    assert [e for _, e, _ in events(tmp_path, 300)].count("start") == 2  # tried twice, then gave up
    job = (schemas.TrainedModel.jobs & key).fetch1()
    assert job["status"] == "error"
    assert "planted failure" in job["error_message"] and "RuntimeError" in job["error_stack"]
    attempts = [r["attempts"] for r in schemas.JobAttempt.to_dicts() if r["job_key"]["seed"] == 300]
    assert attempts == [2]
    shown = subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", "status"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(HERE)}, timeout=120)
    assert "planted failure" in shown.stdout
    (schemas.TrainingSelection & key).delete(prompt=False)


@pytest.mark.skipif(os.environ.get("NEUROFIT_TEST_BACKEND", "embedded") != "embedded",
                    reason="restarts the embedded server; the shared servers are not restarted by tests")
def test_workers_reconnect_after_the_database_restarts(db, tmp_path, neurofit_home):
    from neurofit import schemas
    from neurofit.schemas import connection

    seeds = list(range(400, 406))
    keys = select(seeds, tmp_path, epochs=2, seconds=0.5)
    log = open(tmp_path / "worker.out", "w")
    worker = start_worker(keys, "--wait", log=log)
    try:
        wait_for(lambda: len(schemas.TrainedModel & keys) >= 2, 60, "two keys before the restart")
        assert connection.stop_embedded()
        time.sleep(3)  # the worker is cut off, mid-job or between jobs
        connection._start_embedded(connection.home())
        import datajoint as dj

        dj.conn().connect()
        wait_for(lambda: len(schemas.TrainedModel & keys) == 6, 120, "all keys after the restart")
    finally:
        code = stop(worker)
        log.close()
    assert code == 0, (tmp_path / "worker.out").read_text()[-3000:]
    finished = Counter(s for s in seeds for _, e, _ in events(tmp_path, s) if e == "finished")
    assert all(finished[s] >= 1 for s in seeds)
    assert not (schemas.TrainedModel.jobs.reserved & keys)


def test_submitit_array_of_workers_with_the_local_executor(db, tmp_path):
    from neurofit import schemas

    keys = select(list(range(500, 506)), tmp_path, epochs=2, seconds=0.1)
    env = {**os.environ, "NEUROFIT_ALLOWED_MODULES": "chaos_builders",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "neurofit.schemas.cli", "submit", "--workers", "2", "--executor", "local",
         "--folder", str(tmp_path / "submitit"), "--where", only(keys), "--follow"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("computed") == 2  # both workers reported a summary
    assert len(schemas.TrainedModel & keys) == 6
    finished = Counter(s for s in range(500, 506) for _, e, _ in events(tmp_path, s) if e == "finished")
    assert set(finished.values()) == {1}


def test_cpu_workers_leave_gpu_trainers_to_gpu_workers(db, tmp_path):
    import chaos_builders

    from neurofit import schemas
    from neurofit.pipelines.registry import register

    @register("trainer", "tests.needs_gpu", requires_gpu=True)
    def needs_gpu(model, data, seed, context, *, epochs=1):
        return chaos_builders.train_sleepy(model, data, seed, context, epochs=epochs, seconds=0.0)

    dataset, model = schemas.Dataset.add(*DATA), schemas.Model.add(*MODEL)
    key = schemas.TrainingSelection.add_grid(dataset, model, schemas.Trainer.add("tests.needs_gpu", {}), [600])[0]
    summary = schemas.run_worker("TrainedModel", key, device="cpu", progress=False)
    assert summary.done["TrainedModel"] == 0 and not (schemas.TrainedModel & key)
    assert (schemas.TrainedModel.jobs & key).fetch1("status") == "pending"  # left for a GPU worker
    summary = schemas.run_worker("TrainedModel", key, device="cpu", skip_gpu_trainers=False, progress=False)
    assert summary.done["TrainedModel"] == 1

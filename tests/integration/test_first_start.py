"""First starts: many processes on a brand-new schema (or a fresh NEUROFIT_HOME) at once, and
repairing a schema that such starts, or a killed process, left half-created.

Every process here is a real `neurofit` command in its own interpreter; the test process only
looks at and damages the schemas with SQL, and drops them afterwards. `benchmarks/first_start.py`
runs the same first start for more rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prefix_schemas import drop_prefix_schemas

pytestmark = [pytest.mark.db, pytest.mark.slow]

ROUNDS = int(os.environ.get("NEUROFIT_TEST_FIRST_START_ROUNDS", "2"))
PROCESSES = 8

# Imports (torch: seconds) happen before the start signal, so that the processes reach the
# database within milliseconds of each other, as workers of a SLURM array do.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import neurofit.schemas.cli
    from neurofit.schemas import _schema
    getattr(_schema, "declare_tables", lambda: None)()  # the table modules import torch
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    ready.touch()
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    sys.exit(neurofit.schemas.cli.main(sys.argv[3:]))
""")


def child_env(prefix: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "NEUROFIT_PREFIX": prefix, "OMP_NUM_THREADS": "1", **extra}


def neurofit(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def start_together(n: int, env: dict[str, str], folder: Path, *args: str) -> list[subprocess.CompletedProcess]:
    """Run ``neurofit ARGS`` in n processes released at the same moment; wait for all."""
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    processes = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(folder / f"ready{i}"), str(go), *args],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    try:
        deadline = time.monotonic() + 300
        while sum((folder / f"ready{i}").exists() for i in range(n)) < n:
            assert time.monotonic() < deadline, "the processes did not get ready within 300 s"
            assert all(p.poll() is None for p in processes), "a process exited before the start signal"
            time.sleep(0.05)
        go.touch()
        results = []
        for process in processes:
            out, err = process.communicate(timeout=300)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def crashes(results) -> list[str]:
    return [r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
            for r in results if r.returncode != 0]


@pytest.fixture
def new_schema(db):
    """Names for schemas only subprocesses create; every one of them is dropped afterwards."""
    names = []

    def make() -> tuple[str, str]:
        prefix = f"test_{uuid.uuid4().hex[:8]}_"
        names.append(f"{prefix}neurofit")
        return prefix, names[-1]

    yield make
    for name in names:
        drop_prefix_schemas(name[: -len("neurofit")])


def problems(name: str) -> list[str]:
    import datajoint as dj

    from neurofit.schemas import integrity, schema

    return [str(p) for p in integrity.find_problems(dj.conn(), name, integrity.expected(schema))]


def test_processes_started_together_on_a_new_schema_all_succeed(new_schema, tmp_path):
    for round_index in range(ROUNDS):
        prefix, name = new_schema()
        env = child_env(prefix)
        results = start_together(PROCESSES, env, tmp_path / f"round{round_index}", "status")
        assert not crashes(results), f"round {round_index + 1}: {crashes(results)}"
        assert all("TrainedModel" in r.stdout for r in results)
        after = neurofit(env, "status")
        assert after.returncode == 0, after.stderr
        assert problems(name) == []


def test_two_processes_on_a_fresh_home_both_start_the_embedded_database(tmp_path):
    if os.environ.get("NEUROFIT_TEST_BACKEND", "embedded") != "embedded":
        pytest.skip("the embedded database only")
    from neurofit.schemas import connection

    for round_index in range(ROUNDS):
        home = tmp_path / f"home{round_index}"
        env = child_env(f"test_{uuid.uuid4().hex[:8]}_", NEUROFIT_HOME=str(home), NEUROFIT_DATABASE="embedded")
        try:
            results = start_together(2, env, tmp_path / f"round{round_index}", "status")
            assert not crashes(results), f"round {round_index + 1}: {crashes(results)}"
            assert results[0].stdout.splitlines()[0] == results[1].stdout.splitlines()[0]  # one server
        finally:
            connection.stop_embedded(home)


def test_the_embedded_database_is_started_by_one_process_at_a_time(tmp_path):
    if os.environ.get("NEUROFIT_TEST_BACKEND", "embedded") != "embedded":
        pytest.skip("the embedded database only")
    import fcntl

    from neurofit.schemas import connection

    home = tmp_path / "home"
    home.mkdir()
    env = child_env("unused_", NEUROFIT_HOME=str(home), NEUROFIT_DATABASE="embedded")
    code = ("import sys; from pathlib import Path; from neurofit.schemas import connection; "
            "Path(sys.argv[1]).touch(); connection.configure(); print('started')")
    child = None
    try:
        with open(home / "postgres.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process is starting the server
            child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ready")], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 300
            while not (tmp_path / "ready").exists():
                assert child.poll() is None and time.monotonic() < deadline, child.communicate()
                time.sleep(0.05)
            time.sleep(2)
            assert child.poll() is None, "it did not wait for the lock"
            assert not (home / "postgres").exists(), "it initialised the database while another process held the lock"
            fcntl.flock(lock, fcntl.LOCK_UN)
            out, err = child.communicate(timeout=300)
        assert child.returncode == 0 and out.strip() == "started", err
        assert (home / "postgres" / "PG_VERSION").exists()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        connection.stop_embedded(home)


def damage(name: str) -> None:
    """Leave the schema as concurrent or killed first starts left it (see benchmarks/first_start.py).

    - a lineage row copied from a parent whose own row was not written yet (the state behind
      "different lineages" in every later command);
    - a table's lineage rows, a part table and a job table never written (a killed process);
    - on PostgreSQL, a table killed right after CREATE TABLE (no index, no lineage rows), and
      one whose column comments (holding the types) were never written.
    """
    import datajoint as dj

    conn = dj.conn()
    q = conn.adapter.quote_identifier
    lineage = f"{q(name)}.{q('~lineage')}"
    conn.query(f"UPDATE {lineage} SET lineage = %s WHERE table_name = %s AND attribute_name = %s",
               args=(f"{name}.probe_selection.dataset_fn", "__activations", "dataset_fn"))
    conn.query(f"DELETE FROM {lineage} WHERE table_name = %s", args=("__r_d_m",))
    conn.query(f"DROP TABLE {q(name)}.{q('__performance__condition')}")
    conn.query(f"DROP TABLE {q(name)}.{q('~~tuning')}")
    if conn.adapter.backend == "postgresql":
        conn.query(f"DROP INDEX {q(name)}.{q('idx_training_selection_model_fn_model_hash')}")
        conn.query(f"DELETE FROM {lineage} WHERE table_name = %s", args=("training_selection",))
        conn.query(f"COMMENT ON COLUMN {q(name)}.{q('__trained_model')}.{q('weights')} IS NULL")
        conn.query(f"COMMENT ON COLUMN {q(name)}.{q('__trained_model')}.{q('data_info')} IS NULL")


def test_a_half_created_schema_is_repaired_by_neurofit_repair_and_by_the_next_start(new_schema):
    import datajoint as dj

    prefix, name = new_schema()
    env = child_env(prefix)
    assert neurofit(env, "status").returncode == 0
    damage(name)
    assert any("probe_selection.dataset_fn" in p for p in problems(name))
    repaired = neurofit(env, "repair")
    assert repaired.returncode == 0, repaired.stderr
    report = repaired.stdout
    assert f"__activations.dataset_fn is {name}.probe_selection.dataset_fn, should be {name}.dataset.dataset_fn" in report
    assert "lineage of __r_d_m: wrote missing row(s) for " in report and "rdm_method" in report
    assert "created missing table __performance__condition" in report
    assert "created missing table ~~tuning" in report
    if dj.conn().adapter.backend == "postgresql":
        assert "__trained_model: restored comment of weights, comment of data_info" in report
        assert "training_selection: restored index idx_training_selection_model_fn_model_hash" in report
    assert problems(name) == []
    assert neurofit(env, "status").returncode == 0

    damage(name)  # again: this time the next ordinary start repairs it
    started = neurofit(env, "status")
    assert started.returncode == 0, started.stderr
    assert "repaired schema" in started.stderr  # logged as a warning
    assert problems(name) == []
    assert "complete, nothing to repair" in neurofit(env, "repair").stdout


def test_a_schema_being_created_makes_others_wait_and_then_fail_clearly(db, new_schema):
    from neurofit.schemas import activation, schema

    prefix, name = new_schema()
    started = time.monotonic()
    # Another process is "creating" the new schema, and "repairing" the test schema.
    with activation.creation_lock(name, db.backend), activation.creation_lock(schema.database, db.backend):
        waiting = neurofit(child_env(prefix, NEUROFIT_SCHEMA_LOCK_TIMEOUT="3"), "status")
        # A complete schema is bound without the lock, so later starts never wait for one another.
        complete = neurofit(child_env(schema.database.removesuffix("neurofit"), NEUROFIT_SCHEMA_LOCK_TIMEOUT="3"),
                            "status")
    assert waiting.returncode == 2, waiting.stderr
    assert f"error: another process has been creating or repairing schema {name!r}" in waiting.stderr
    assert "NEUROFIT_SCHEMA_LOCK_TIMEOUT" in waiting.stderr
    assert time.monotonic() - started >= 3
    assert complete.returncode == 0, complete.stderr
    assert neurofit(child_env(prefix), "status").returncode == 0  # lock released: it is created now

"""`neurofit admin init`: a worker role and a read-only analyst role do their jobs on a lab server.

Each role runs in a process of its own (its own DJ_USER): the worker trains, reports `status`
and runs `gc`; the analyst reports `status`, runs `gc` as a dry run, queries like a notebook,
and gets a clear error when it tries to write. Roles are server-wide: the test drops its own.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest


def test_backend() -> str:
    return os.environ.get("NEUROFIT_TEST_BACKEND", "embedded")


test_backend.__test__ = False

pytestmark = [pytest.mark.db, pytest.mark.slow]
HERE = Path(__file__).resolve().parent

ROLE_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, os, sys, tempfile, time
    from neurofit import schemas
    from neurofit.schemas import admin, cli
    role, trainer_hash, go = sys.argv[1], sys.argv[2], sys.argv[3]
    schemas.activate()  # the slow part, done while the other role's process works
    deadline = time.monotonic() + 300
    while go != "-" and not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.1)  # the analyst reads what the worker trained: wait for it
    report = {}
    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
        return code, out.getvalue(), err.getvalue()
    if role == "worker":
        report["worker"] = run("worker", "TrainedModel", "--device", "cpu", "--where", f"trainer_hash = '{trainer_hash}'")
    report["status"] = run("status")
    report["gc"] = run("gc", *(["--delete", "--grace", "0"] if role == "worker" else []))
    frame = (schemas.TrainedModel * schemas.Model & {"trainer_hash": trainer_hash}).to_pandas()   # a notebook query
    report["query_rows"] = len(frame)
    try:
        schemas.Trainer.add("chaos_builders.train_sleepy", {"log_dir": f"{role}-write", "epochs": 1})
        report["write"] = "ok"
    except Exception as error:
        report["write"] = f"{type(error).__name__}: {error}"
        report["write_is_privilege_error"] = admin.is_privilege_error(error)
    if role == "analyst":  # the same write from the command line: a message, no traceback
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
            json.dump({"log_dir": "analyst-cli-write", "epochs": 1}, config)
        try:
            report["cli_write"] = run("add", "trainer", "chaos_builders.train_sleepy", "--config", config.name)
        except BaseException as error:
            report["cli_write"] = ["raised", type(error).__name__, str(error)]
    print("REPORT " + json.dumps(report))
""")


def _drop_roles(names):
    import datajoint as dj

    conn = dj.conn()
    for name in names:
        if test_backend() == "postgres":
            exists = conn.query("SELECT 1 FROM pg_roles WHERE rolname = %s", args=(name,)).fetchone()
            if exists:
                conn.query(f'DROP OWNED BY "{name}"')
                conn.query(f'DROP ROLE "{name}"')
        else:
            conn.query(f"DROP USER IF EXISTS '{name}'@'%%'")


@pytest.fixture
def roles(db, monkeypatch):
    if test_backend() == "embedded":
        pytest.skip("roles are for a lab server: the embedded database has one local user")
    from neurofit.schemas import admin

    tag = uuid.uuid4().hex[:6]
    passwords = {"worker": f"w-{uuid.uuid4().hex}", "analyst": f"a-{uuid.uuid4().hex}"}
    monkeypatch.setenv(admin.WORKER_PASSWORD_ENV, passwords["worker"])
    monkeypatch.setenv(admin.ANALYST_PASSWORD_ENV, passwords["analyst"])
    names = {"worker": f"t{tag}_worker", "analyst": f"t{tag}_analyst"}
    plan = admin.init(os.environ["NEUROFIT_PREFIX"], worker=names["worker"], analyst=names["analyst"])
    yield plan, names, passwords
    _drop_roles(names.values())


def _start_as(role, names, passwords, trainer_hash, go="-"):
    """Start ROLE_SCRIPT as ``role``; with a ``go`` file it waits for that file after connecting."""
    env = {**os.environ, "DJ_USER": names[role], "DJ_PASS": passwords[role], "NEUROFIT_ALLOWED_MODULES": "chaos_builders",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", ROLE_SCRIPT, role, trainer_hash, str(go)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _report(process):
    stdout, stderr = process.communicate(timeout=300)
    lines = [line for line in stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, stdout[-3000:] + stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


def test_worker_and_analyst_roles(roles, monkeypatch, tmp_path):
    from neurofit import schemas
    from neurofit.schemas import admin

    plan, names, passwords = roles
    assert plan.worker.privileges == "SELECT, INSERT, UPDATE, DELETE"
    assert plan.analyst.privileges.startswith("SELECT") and "INSERT" not in plan.analyst.privileges
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")
    dataset = schemas.Dataset.add("chaos_builders.build_tiny_data", {})
    model = schemas.Model.add("chaos_builders.build_tiny_model", {})
    trainer = schemas.Trainer.add("chaos_builders.train_sleepy", {"log_dir": str(tmp_path), "epochs": 1, "seconds": 0.0})
    schemas.TrainingSelection.add_grid(dataset, model, trainer, [1, 2])

    # Both processes start at once (importing and connecting is most of their time); the
    # analyst goes on once the worker has finished.
    go = tmp_path / "worker-done"
    analyst_process = _start_as("analyst", names, passwords, trainer["trainer_hash"], go)
    try:
        worker = _report(_start_as("worker", names, passwords, trainer["trainer_hash"]))
    finally:
        go.touch()  # on a failure too: the analyst must not wait out its deadline
    analyst = _report(analyst_process)
    assert worker["worker"][0] == 0 and worker["status"][0] == 0 and worker["gc"][0] == 0
    assert worker["query_rows"] == 2  # it trained both
    assert "TrainedModel" in worker["status"][1] and "deleted" in worker["gc"][1]
    assert worker["write"] == "ok"

    assert analyst["status"][0] == 0 and "would delete" in analyst["gc"][1]
    assert analyst["query_rows"] == 2
    assert analyst["write_is_privilege_error"], analyst["write"]
    assert "Insufficient privileges" in analyst["write"] and "trainer" in analyst["write"].lower()
    code, _, stderr = analyst["cli_write"]
    assert code == 2, analyst["cli_write"]
    assert stderr.startswith("error: ") and "Insufficient privileges" in stderr and "trainer" in stderr.lower()
    assert "hint: " + admin.PRIVILEGE_HINT in stderr and "Traceback" not in stderr

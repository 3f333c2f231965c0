"""`neurofit server status|stop` and the idle shutdown of the embedded PostgreSQL.

The server is started the way every neurofit command starts it (`connection._start_embedded`,
called when a command connects), in a short-lived subprocess that declares no tables, and the idle
period is 2 s, so nothing waits long.
"""

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
import warnings

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]
IDLE_MINUTES = "0.033"  # 2 s: the shutdown code path is the one a 30-minute setting takes
START = "from neurofit.schemas.connection import _start_embedded, home; _start_embedded(home())"


def _env(home, **env):
    return {**os.environ, "NEUROFIT_HOME": str(home), "NEUROFIT_DATABASE": "embedded", "OMP_NUM_THREADS": "1", **env}


def _start(home, **env):
    """Start the embedded server (and its idle watcher when the env asks) the way a command does."""
    subprocess.run([sys.executable, "-c", START], env=_env(home, **env), check=True, timeout=300)


def _server(home, monkeypatch, *argv):
    """``neurofit server ...`` in this process (it never connects neurofit): (code, stdout, stderr)."""
    from neurofit.schemas import cli

    monkeypatch.setenv("NEUROFIT_HOME", str(home))
    monkeypatch.setenv("DJ_LOG_LEVEL", os.environ.get("DJ_LOG_LEVEL", "ERROR"))  # main sets it: restore after
    datajoint_level = logging.getLogger("datajoint").level
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        code = cli.main(["server", *argv])
    logging.getLogger("datajoint").setLevel(datajoint_level)
    return code, out.getvalue(), err.getvalue()


def _wait_stopped(home, seconds):
    # Looks at the pid file only: a look that connects would count as a client to the watcher.
    pid_file = home / "postgres" / "postmaster.pid"
    deadline = time.monotonic() + seconds
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not pid_file.exists()


@pytest.fixture
def home(tmp_path):
    if os.environ.get("NEUROFIT_TEST_BACKEND", "embedded") != "embedded":
        pytest.skip("the embedded server's lifecycle: tested on the embedded backend")
    yield tmp_path / "home"
    from neurofit.schemas.connection import stop_embedded

    stop_embedded(tmp_path / "home")


def test_status_stop_and_idle_shutdown(home, monkeypatch):
    import psycopg2

    from neurofit.schemas.connection import server_status

    assert "not running" in _server(home, monkeypatch, "status")[1]
    _start(home)  # no idle limit: it never stops by itself
    # It keeps running after the process that started it ended...
    state = server_status(home)
    assert state["running"] and state["clients"] == 0
    # ...while a client is connected: a watcher started now (2 s limit) must not stop it under one...
    client = psycopg2.connect(host=state["socket_dir"], port=state["port"], user="postgres", dbname="postgres")
    _start(home, NEUROFIT_SERVER_IDLE_MINUTES=IDLE_MINUTES)
    time.sleep(5)  # two idle periods and more, with the client connected
    assert server_status(home)["running"]
    code, shown, _ = _server(home, monkeypatch, "status")
    assert code == 0 and "running" in shown and "1 client(s)" in shown
    code, _, refused = _server(home, monkeypatch, "stop")
    assert code == 2 and "client(s) are connected" in refused and "--force" in refused
    client.close()
    # ...and stops by itself once nobody used it for the idle period.
    assert _wait_stopped(home, 30), "the idle watcher did not stop the server"
    # The next command starts it again; `server stop` stops it.
    _start(home)
    assert server_status(home)["running"]
    code, stopped, _ = _server(home, monkeypatch, "stop")
    assert code == 0 and "stopped" in stopped
    assert not server_status(home)["running"]

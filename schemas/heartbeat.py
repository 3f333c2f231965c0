"""Registry of live workers, their heartbeats, and recovery of jobs held by dead ones.

DataJoint's job table cannot tell a crashed worker's reservation from a live worker's long job
(a SIGKILLed worker leaves its job ``reserved`` forever; recovery by age would re-run live long
jobs). Each neurofit worker therefore registers itself and beats every few seconds from a
background thread with its own connection; a reservation whose (host, pid) belongs to a worker
whose last beat is older than a timeout is put back to pending by any live worker.
Reservations of processes that never registered (a notebook's ``populate()``) are left alone.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import uuid
from typing import Any

import datajoint as dj

from ._schema import schema

log = logging.getLogger(__name__)

PRUNE_AFTER = 7 * 24 * 3600.0  # seconds after which a cleanly stopped worker's row is deleted


def server_now(connection) -> str:
    """SQL for the database server's clock in epoch seconds: one clock for every worker."""
    if connection.adapter.backend == "postgresql":
        return "EXTRACT(EPOCH FROM CURRENT_TIMESTAMP)"
    return "UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3))"


@schema
class Worker(dj.Manual):
    """One worker process that ran or runs jobs, with its latest heartbeat."""

    definition = """
    worker_id: char(32)                    # random id of the worker process
    ---
    host: varchar(255)                     # platform.node(), as in the job table
    pid: int32                             # process id, as in the job table
    device: varchar(32)                    # torch device it computes on
    status: varchar(16)                    # running, stopped (clean exit) or dead (heartbeat lost)
    started: float64                       # server time at registration (epoch s)
    last_beat: float64                     # server time of the latest heartbeat (epoch s)
    current_job = "": varchar(1024)        # table and key of the job in progress, as text
    jobs_done = 0: int32                   # jobs completed
    """


class Heartbeat:
    """Registers this process as a worker and beats from a background thread.

    The thread uses its own connection (DataJoint connections are not shared across threads)
    and survives database restarts by reconnecting on the next beat.
    """

    def __init__(self, device: str, interval: float = 5.0):
        self.worker_id = uuid.uuid4().hex
        self.interval = interval
        self.device = device
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current_job = ""
        self._jobs_done = 0
        self._thread: threading.Thread | None = None
        self._connection = None

    @property
    def key(self) -> dict[str, str]:
        return {"worker_id": self.worker_id}

    def start(self) -> "Heartbeat":
        connection = Worker.connection
        now = connection.query(f"SELECT {server_now(connection)}").fetchone()[0]
        # Cleanly stopped workers hold no reservations: after a week their rows are only history.
        (Worker & {"status": "stopped"} & f"last_beat < {float(now) - PRUNE_AFTER}").delete_quick()
        Worker().insert1({
            **self.key, "host": platform.node(), "pid": os.getpid(), "device": self.device,
            "status": "running", "started": float(now), "last_beat": float(now),
        })
        self._thread = threading.Thread(target=self._run, name="neurofit-heartbeat", daemon=True)
        self._thread.start()
        return self

    def set_job(self, description: str, done: int | None = None) -> None:
        with self._lock:
            self._current_job = description[:1024]
            if done is not None:
                self._jobs_done = done

    def _own_connection(self):
        if self._connection is None:
            config = dj.config
            self._connection = dj.Connection(
                config["database.host"], config["database.user"], config["database.password"],
                config["database.port"], use_tls=config["database.use_tls"],
                backend=config["database.backend"],
            )
        return self._connection

    def beat(self, status: str = "running") -> None:
        """Write one heartbeat (also the final status)."""
        connection = self._own_connection()
        quote = connection.adapter.quote_identifier
        with self._lock:
            job, done = self._current_job, self._jobs_done
        connection.query(
            f"UPDATE {Worker.full_table_name} SET {quote('last_beat')} = {server_now(connection)}, "
            f"{quote('status')} = %s, {quote('current_job')} = %s, {quote('jobs_done')} = %s "
            f"WHERE {quote('worker_id')} = %s",
            args=(status, job, done, self.worker_id),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as error:  # the database may be restarting: try again next beat
                log.warning("heartbeat failed (%s); retrying in %.0f s", error, self.interval)
                try:
                    self._connection.close()
                except Exception:
                    pass
                self._connection = None

    def stop(self, status: str = "stopped") -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            self.set_job("")
            self.beat(status)
        except Exception as error:
            log.warning("could not record the worker's final status: %s", error)


def dead_workers(timeout: float) -> list[dict[str, Any]]:
    """Workers marked running whose last beat is older than ``timeout`` seconds; marks them dead."""
    connection = Worker.connection
    stale = Worker & {"status": "running"} & f"last_beat < {server_now(connection)} - {float(timeout)}"
    rows = stale.proj("host", "pid").to_dicts()
    for row in rows:
        quote = connection.adapter.quote_identifier
        connection.query(
            f"UPDATE {Worker.full_table_name} SET {quote('status')} = 'dead' WHERE {quote('worker_id')} = %s",
            args=(row["worker_id"],),
        )
    return rows


def recover_orphans(tables: dict[str, Any], timeout: float) -> int:
    """Put jobs reserved by dead workers back to pending. Returns how many were re-queued.

    Any live worker runs this; it is idempotent, so several doing it at once is harmless.
    """
    dead_workers(timeout)
    dead = {(r["host"], int(r["pid"])) for r in (Worker & {"status": "dead"}).proj("host", "pid").to_dicts()}
    # A pid can be reused on a host: never touch what a live worker with that (host, pid) holds.
    live = {(r["host"], int(r["pid"])) for r in (Worker & {"status": "running"}).proj("host", "pid").to_dicts()}
    owners = dead - live
    if not owners:
        return 0
    requeued = 0
    for name, table in tables.items():
        reserved = table.jobs.reserved.to_dicts()
        for job in reserved:
            if (job["host"], int(job["pid"])) in owners:
                key = {k: job[k] for k in table.primary_key}
                requeue(table, key)
                requeued += 1
                log.warning("re-queued %s %s: its worker %s:%s stopped beating", name, key, job["host"], job["pid"])
    return requeued


def requeue(table, key: dict[str, Any], delay: float = -1, jobs=None) -> None:
    """Make one job pending again (whatever its status), available after ``delay`` seconds."""
    jobs = jobs if jobs is not None else table.jobs
    (jobs & key).delete_quick()
    jobs.refresh(key, delay=delay)

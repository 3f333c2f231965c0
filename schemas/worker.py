"""`neurofit worker`: compute every pending job of every computed table, safe to kill at any moment.

A worker loops over the computed tables in dependency order, reserving one job at a time
through DataJoint's job table, until no work is left (or forever with ``wait``). On top of
DataJoint it adds:

- heartbeats, and recovery of jobs held by workers that stopped beating (`heartbeat`);
- preemption: SIGTERM/SIGINT ask the trainer to stop at the next epoch boundary, after its
  checkpoint is saved; the job goes back to pending (not error) and the worker exits cleanly.
  A second signal stops at once; the job still goes back to pending;
- checkpoints: a re-queued training resumes from its last epoch (`checkpoints`);
- a retry budget: a failing job is re-queued until it has failed ``max_attempts`` times, then
  its error (message and traceback) stays visible in ``neurofit status``;
- reconnection: when the database goes away (a restart), the worker waits, reconnects and
  re-queues the job it was running;
- device placement and skipping of trainers that need a GPU on CPU-only machines.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import datajoint as dj

from neurofit.pipelines import hashing, registry
from neurofit.pipelines.training import RunContext

from . import _runtime, heartbeat
from ._schema import schema
from .config import Trainer
from .populating import _tables, ensure_job_tables
from .restriction import parse_where

log = logging.getLogger(__name__)

PREEMPTED = "Preempted"


@schema
class JobAttempt(dj.Manual):
    """How often one job of one computed table has failed (preemptions do not count)."""

    definition = """
    table_name: varchar(64)                # computed table, e.g. TrainedModel
    job_hash: char(32)                     # md5 of the job's key (neurofit.pipelines.hashing)
    ---
    job_key: json                          # the job's key
    attempts: int32                        # failed attempts so far
    last_error: varchar(2000)              # message of the latest failure
    """


@dataclass
class WorkerSummary:
    """What one worker did."""

    done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    requeued: int = 0
    recovered: int = 0
    preempted: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        parts = [f"{n} {t}" for t, n in self.done.items() if n]
        text = f"computed {', '.join(parts) if parts else 'nothing'} in {self.seconds:.1f} s"
        if any(self.failed.values()):
            text += f"; failures: {', '.join(f'{n} {t}' for t, n in self.failed.items() if n)}"
        if self.recovered:
            text += f"; re-queued {self.recovered} job(s) of dead workers"
        if self.preempted:
            text += "; stopped by a signal: the job in progress is pending again and resumes from its checkpoint"
        return text


def choose_device(device: str | None) -> str:
    """``cuda:N``/``cpu`` as given, or for None/"auto" the GPU with the most free memory (else CPU)."""
    import torch

    if device not in (None, "auto"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but this machine has no CUDA GPU; use --device cpu")
        return device
    if not torch.cuda.is_available():
        return "cpu"
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    return f"cuda:{max(range(len(free)), key=free.__getitem__)}"


def default_threads(dead_after: float = 60.0) -> int:
    """This machine's cores divided by the workers alive on it (at least 1).

    Each worker's torch otherwise starts one thread per core: two workers on 2 cores then run
    4 threads, and a small GRU step was measured 3-30x slower than with 1 thread each.
    """
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    connection = heartbeat.Worker.connection
    now = connection.query(f"SELECT {heartbeat.server_now(connection)}").fetchone()[0]
    alive = len(heartbeat.Worker & {"host": platform.node(), "status": "running"}
                & f"last_beat > {float(now) - dead_after}")
    return max(1, cores // max(alive, 1))


def gpu_trainers() -> list[str]:
    """Trainer names in the database whose builder declares ``requires_gpu``."""
    names = []
    for name in sorted({row["trainer_fn"] for row in Trainer.proj().to_dicts()}):
        try:
            if registry.requirements("trainer", name).get("requires_gpu"):
                names.append(name)
        except registry.RegistryError:
            continue  # an unknown trainer fails in its job, with a clear message
    return names


def _job_text(name: str, key: dict[str, Any]) -> str:
    short = {k: (v[:8] if isinstance(v, str) and len(v) == 32 else v) for k, v in key.items() if not k.endswith("_fn")}
    return f"{name} {short}"


def _is_connection_error(error: BaseException) -> bool:
    text = f"{type(error).__module__}.{type(error).__name__}: {error}".lower()
    return isinstance(error, dj.errors.LostConnectionError) or any(
        marker in text for marker in (
            "lost connection", "server has gone away", "connection refused", "server closed the connection",
            "terminating connection", "connection already closed", "operationalerror", "interfaceerror",
            "can't connect", "could not connect", "broken pipe", "connection reset",
        )
    )


def _reconnect(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 1.0
    while True:
        try:
            connection = dj.conn()
            try:
                connection.close()
            except Exception:
                pass
            connection.connect()
            connection.query("SELECT 1")
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise ConnectionError(f"database unreachable for {timeout:.0f} s: {error}") from error
            log.warning("database unreachable (%s); retrying in %.0f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 15)


def _requeue_own(tables: dict[str, Any]) -> int:
    """After a lost connection: our reservations (or errors recorded meanwhile) back to pending."""
    import platform

    count = 0
    for table in tables.values():
        mine = table.jobs & {"host": platform.node(), "pid": os.getpid()}
        for job in (mine & "status in ('reserved', 'error')").to_dicts():
            heartbeat.requeue(table, {k: job[k] for k in table.primary_key})
            count += 1
    return count


def _record_failure(name: str, table, key: dict[str, Any], message: str, max_attempts: int, job_table) -> bool:
    """Count a failure; re-queue the job while attempts remain. Returns True if re-queued."""
    job_hash = hashing.config_hash({k: v for k, v in key.items()})
    row_key = {"table_name": name, "job_hash": job_hash}
    existing = JobAttempt & row_key
    attempts = (existing.fetch1("attempts") if existing else 0) + 1
    row = {**row_key, "job_key": hashing.to_queryable(key), "attempts": attempts, "last_error": message[:2000]}
    if existing:
        JobAttempt().update1(row)  # REPLACE is MySQL-only
    else:
        JobAttempt().insert1(row)
    if attempts < max_attempts:
        heartbeat.requeue(table, key, delay=min(2.0 ** (attempts - 1), 60.0), jobs=job_table)
        log.warning("%s failed (attempt %d of %d), re-queued: %s", _job_text(name, key), attempts, max_attempts, message)
        return True
    log.error("%s failed %d times, giving up: %s", _job_text(name, key), attempts, message)
    return False


def run_worker(
    tables: str | list[str] | None = None,
    restriction: Any = None,
    *,
    max_jobs: int | None = None,
    wait: bool = False,
    poll: float = 10.0,
    device: str | None = None,
    skip_gpu_trainers: bool | None = None,
    heartbeat_interval: float = 5.0,
    dead_after: float = 60.0,
    max_attempts: int = 3,
    reconnect_timeout: float = 600.0,
    progress: bool = True,
    threads: int | None = None,
    step_interval: int = 0,
) -> WorkerSummary:
    """Compute pending jobs until none is left (``wait``: keep polling). Call `activate` first.

    Args:
        tables: computed table name(s); default all, in dependency order.
        restriction: restriction on job keys: a dict, a text in the grammar of
            `neurofit.schemas.restriction` (anything else is refused), or a list of them (OR).
        max_jobs: stop after this many jobs (completed or failed).
        wait: keep polling for new work instead of exiting when none is left.
        poll: seconds between polls with ``wait``, and between job-queue refreshes.
        device: "cpu", "cuda:N", or None/"auto" for the GPU with most free memory.
        skip_gpu_trainers: leave jobs of trainers registered with ``requires_gpu=True`` to
            other workers (default: when this worker runs on the CPU).
        heartbeat_interval: seconds between heartbeats.
        dead_after: a worker silent this long is dead and its jobs are re-queued.
        max_attempts: failures of one job before its error is left for a person.
        reconnect_timeout: give up after the database was unreachable this long.
        progress: print one line per job.
        threads: torch CPU threads per job; default `default_threads` (this machine's cores
            divided by the live workers on it), re-evaluated before every job.
        step_interval: in long epochs, look for a stop request every this many training steps
            and checkpoint mid-epoch before stopping (0: at epoch boundaries only).

    Returns:
        A `WorkerSummary`.
    """
    started = time.monotonic()
    all_tables = _tables(None)  # any worker recovers any dead worker's jobs
    selected = {name: table for name, table in all_tables.items() if name in _tables(tables)}
    device = choose_device(device)
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for the default), got {threads}")
    context = RunContext(device=device, threads=threads, stop_requested=_runtime.stop_requested,
                         step_interval=step_interval)
    if skip_gpu_trainers is None:
        skip_gpu_trainers = device == "cpu"
    summary = WorkerSummary(done=dict.fromkeys(selected, 0), failed=dict.fromkeys(selected, 0))
    restrictions = [] if restriction is None else [safe_restriction(restriction)]
    skip = {}
    if skip_gpu_trainers and "TrainedModel" in selected:
        names = gpu_trainers()
        if names:
            # Names passed the registry's pattern (letters, digits, _ . -), so quoting is safe.
            skip["TrainedModel"] = "trainer_fn NOT IN ({})".format(", ".join(f"'{n}'" for n in names))
            log.warning("skipping trainers that need a GPU on this CPU worker: %s", names)

    # Job tables exist before workers compete (concurrent creation can crash PostgreSQL workers).
    ensure_job_tables(selected)
    # DataJoint builds a new Job object (several catalogue queries) on every `table.jobs`.
    jobs = {name: table.jobs for name, table in selected.items()}
    # A restriction scopes the worker to the tables it applies to ("seed = 1" skips tables without a seed).
    for name in list(selected):
        try:
            for r in restrictions:
                jobs[name].pending & r
        except dj.errors.DataJointError as error:
            log.info("%s is outside the restriction (%s); skipping it", name, error)
            del selected[name], jobs[name]
    if not selected:
        raise ValueError(f"the restriction {restriction!r} applies to none of the tables {list(_tables(tables))}")
    summary.done, summary.failed = dict.fromkeys(selected, 0), dict.fromkeys(selected, 0)
    for job_table in jobs.values():
        job_table.refresh(*restrictions, delay=-1)
    beat = heartbeat.Heartbeat(device, heartbeat_interval).start()
    _runtime.use(context)
    signals = _install_signal_handlers()
    last_refresh = time.monotonic()
    stale_queue = False  # a job finished since the last refresh: downstream jobs may be new
    last_recovery = 0.0
    jobs_run = 0
    try:
        while not _runtime.stop_requested():
            try:
                if time.monotonic() - last_recovery > heartbeat_interval:
                    summary.recovered += heartbeat.recover_orphans(all_tables, dead_after)
                    last_recovery = time.monotonic()
                if time.monotonic() - last_refresh > poll:
                    for job_table in jobs.values():
                        job_table.refresh(*restrictions, delay=-1)
                    last_refresh, stale_queue = time.monotonic(), False
                ran = False
                for name, table in selected.items():
                    pending = _pending(jobs[name], restrictions, skip.get(name)) & "scheduled_time <= CURRENT_TIMESTAMP(3)"
                    keys = pending.keys(order_by="priority ASC, scheduled_time ASC", limit=1)
                    if not keys:
                        continue
                    key = keys[0]
                    beat.set_job(_job_text(name, key))
                    if threads is None:
                        context.threads = default_threads(dead_after)
                    context.apply_threads()
                    job_started = time.monotonic()
                    # _populate1 reserves atomically and runs the three-part make; calling it
                    # directly (not populate()) keeps DataJoint's SIGTERM handler, which turns
                    # preemption into a permanent error, out of the way.
                    status = table()._populate1(key, jobs=jobs[name], suppress_errors=True, return_exception_objects=False)
                    ran, stale_queue = True, True
                    if status is True:
                        jobs_run += 1
                        summary.done[name] += 1
                        beat.set_job("", done=sum(summary.done.values()))
                        if progress:
                            print(f"{_job_text(name, key)}: done in {time.monotonic() - job_started:.1f} s", flush=True)
                    elif isinstance(status, tuple):
                        message = str(status[1])
                        if message.startswith(PREEMPTED):
                            heartbeat.requeue(table, key, jobs=jobs[name])
                            summary.preempted = True
                            break
                        jobs_run += 1
                        summary.failed[name] += 1
                        if _record_failure(name, table, key, message, max_attempts, jobs[name]):
                            summary.requeued += 1
                        if progress:
                            print(f"{_job_text(name, key)}: FAILED: {message.splitlines()[0][:200]}", flush=True)
                    break  # back to the first table: finished jobs unlock downstream ones
                if max_jobs is not None and jobs_run >= max_jobs:
                    break
                if not ran:
                    if stale_queue:
                        last_refresh = 0.0  # refresh now before deciding that nothing is left
                        continue
                    if not wait:
                        if not _retries_scheduled(jobs, restrictions, skip):
                            break
                        _runtime.stop_event.wait(1.0)  # a failed job's retry is work left
                        last_refresh = 0.0
                        continue
                    _runtime.stop_event.wait(poll)
            except SystemExit:
                raise
            except Exception as error:
                if not _is_connection_error(error):
                    raise
                log.warning("lost the database (%s); reconnecting", error)
                _reconnect(reconnect_timeout)
                summary.requeued += _requeue_own(selected)
    except SystemExit:
        # A second signal interrupted a job mid-way: it goes back to pending, not to error.
        summary.preempted = True
        try:
            _requeue_own(selected)
        except Exception as error:
            log.warning("could not re-queue the interrupted job (%s); a live worker will after %s s", error, dead_after)
    finally:
        if _runtime.stop_requested():
            summary.preempted = True
        _restore_signal_handlers(signals)
        _runtime.use(None)
        beat.stop("stopped")
        _runtime.stop_event.clear()
        summary.seconds = time.monotonic() - started
    return summary


def safe_restriction(restriction: Any) -> Any:
    """``restriction`` with every text parsed by `parse_where`, so it can only restrict.

    Dicts are quoted by DataJoint; a text reaches SQL only as rebuilt from its parsed conditions.
    """
    if isinstance(restriction, str):
        return parse_where(restriction)
    if isinstance(restriction, (list, tuple)):
        return [safe_restriction(r) for r in restriction]
    return restriction


def _pending(job_table, restrictions: list, skip: str | None):
    pending = job_table.pending
    for r in restrictions:
        pending = pending & r
    return pending if skip is None else pending & skip


def _retries_scheduled(jobs: dict[str, Any], restrictions: list, skip: dict[str, str]) -> bool:
    """Whether a job this worker may take is scheduled for later (a failed job's retry)."""
    return any(
        _pending(job_table, restrictions, skip.get(name)) & "scheduled_time > CURRENT_TIMESTAMP(3)"
        for name, job_table in jobs.items()
    )


def _install_signal_handlers():
    def handler(signum, frame):
        if _runtime.stop_requested():
            raise SystemExit(f"{signal.Signals(signum).name} received twice")
        log.warning("%s received: finishing at the next checkpoint", signal.Signals(signum).name)
        _runtime.stop_event.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(previous) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)

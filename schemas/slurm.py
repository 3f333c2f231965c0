"""`neurofit submit`: launch an array of workers on SLURM (or locally) through submitit.

Each array task runs `neurofit.schemas.worker.run_worker` against the same database. Because
workers are safe to kill, SLURM preemption and time limits only delay work: the worker catches
SIGTERM, checkpoints, puts its job back to pending and exits; any other worker resumes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Settings a task needs to reach the same database, store and builders as the submitter.
_FORWARDED_ENV = ("NEUROFIT_HOME", "NEUROFIT_PREFIX", "NEUROFIT_DATABASE", "NEUROFIT_ALLOWED_MODULES",
                  "DJ_HOST", "DJ_PORT", "DJ_USER", "DJ_PASS", "DJ_BACKEND", "DJ_STORES", "DJ_USE_TLS", "PYTHONPATH")


def _worker_task(prefix: str | None, environment: dict[str, str], worker_options: dict[str, Any]) -> str:
    """What one array task runs (module-level so submitit can pickle it)."""
    os.environ.update(environment)
    from . import activate
    from .worker import run_worker

    activate(prefix)
    return str(run_worker(**worker_options))


def submit(
    n_workers: int,
    *,
    executor: str = "slurm",
    folder: str | Path = "neurofit_jobs",
    prefix: str | None = None,
    time_minutes: int = 240,
    partition: str | None = None,
    gpus_per_worker: int = 0,
    cpus_per_worker: int = 4,
    memory_gb: int = 16,
    slurm_options: dict[str, Any] | None = None,
    worker_options: dict[str, Any] | None = None,
) -> list:
    """Submit ``n_workers`` workers as one job array; returns the submitit jobs.

    Args:
        n_workers: array size.
        executor: "slurm" (a cluster), or "local" (subprocesses on this machine, for testing).
        folder: where submitit keeps logs and pickles (must be on a shared file system for SLURM).
        prefix: neurofit schema prefix the workers activate.
        time_minutes: time limit of each task.
        partition: SLURM partition.
        gpus_per_worker: GPUs per task; each worker uses one device (``--device auto``).
        cpus_per_worker, memory_gb: resources per task.
        slurm_options: further ``slurm_*`` parameters for submitit (e.g. ``{"slurm_qos": "low"}``).
        worker_options: keyword arguments of `run_worker` (e.g. ``{"max_jobs": 10, "wait": True}``).
    """
    import submitit

    if n_workers < 1:
        raise ValueError("n_workers must be at least 1")
    folder = Path(folder).expanduser().resolve()
    if executor == "local":
        runner = submitit.LocalExecutor(folder=folder)
        runner.update_parameters(timeout_min=time_minutes)
    elif executor == "slurm":
        runner = submitit.AutoExecutor(folder=folder, cluster="slurm")
        parameters = {
            "timeout_min": time_minutes, "gpus_per_node": gpus_per_worker, "cpus_per_task": cpus_per_worker,
            "mem_gb": memory_gb, "slurm_array_parallelism": n_workers,
            # SIGTERM 120 s before the time limit: enough to finish an epoch and checkpoint.
            "slurm_signal_delay_s": 120,
            **({"slurm_partition": partition} if partition else {}),
            **(slurm_options or {}),
        }
        runner.update_parameters(**parameters)
    else:
        raise ValueError(f"executor {executor!r}: use 'slurm' or 'local'")
    environment = {name: os.environ[name] for name in _FORWARDED_ENV if name in os.environ}
    options = {"progress": True, **(worker_options or {})}
    return runner.map_array(_worker_task, [prefix] * n_workers, [environment] * n_workers, [options] * n_workers)

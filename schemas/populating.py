"""Running the computed tables and reporting where they stand."""

from __future__ import annotations

from typing import Any

from .extensions import computed_tables


def _tables(names) -> dict[str, Any]:
    """The computed tables called ``names`` (default: all), in dependency order."""
    tables = computed_tables()
    if names is None:
        return tables
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in tables]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; computed tables are {list(tables)}")
    return {n: t for n, t in tables.items() if n in names}


def ensure_job_tables(tables: dict[str, Any], attempts: int = 10) -> None:
    """Create the hidden job table of every computed table, tolerating a concurrent creator.

    Two processes creating one job table at the same moment crash one of them on PostgreSQL
    (duplicate relation); whoever loses waits and finds the table there.
    """
    import random
    import time

    for table in tables.values():
        for attempt in range(attempts):
            try:
                _ = table.jobs.is_declared  # declaring happens on first access
                break
            except Exception as error:
                text = str(error).lower()
                if attempt == attempts - 1 or not ("already exists" in text or "duplicate" in text):
                    raise
                time.sleep(random.uniform(0.1, 0.5))


def populate(
    tables: str | list[str] | None = None,
    *restrictions,
    display_progress: bool = True,
    suppress_errors: bool = True,
    max_calls: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Populate computed tables in dependency order with job reservation.

    Several processes (or machines) can run this at once against one database: each key is
    reserved by exactly one of them.

    Args:
        tables: names of computed tables (`neurofit.schemas.extensions.computed_tables`: neurofit's
            and those of activated lab schemas); default all.
        restrictions: DataJoint restrictions on the keys to compute.
        display_progress: show a progress bar per table.
        suppress_errors: record failures in the job table and go on (False: raise at once).
        max_calls: at most this many keys per table.

    Returns:
        ``{table: {"success_count": int, "error_list": [...]}}``.
    """
    results = {}
    selected = _tables(tables)
    ensure_job_tables(selected)
    for name, table in selected.items():
        results[name] = table.populate(
            *restrictions,
            reserve_jobs=True,
            suppress_errors=suppress_errors,
            display_progress=display_progress,
            max_calls=max_calls,
        )
    return results


def status(tables: str | list[str] | None = None):
    """One row per computed table: done, pending, reserved and error counts.

    Returns:
        A pandas DataFrame indexed by table name.
    """
    import pandas as pd

    rows = []
    for name, table in _tables(tables).items():
        todo = len(table.key_source - table)
        jobs = table.jobs
        reserved = len(jobs.reserved) if jobs.is_declared else 0
        errors = len(jobs.errors) if jobs.is_declared else 0
        rows.append(
            {
                "table": name,
                "done": len(table()),
                "pending": max(todo - reserved - errors, 0),
                "reserved": reserved,
                "error": errors,
            }
        )
    return pd.DataFrame(rows).set_index("table")


def errors(tables: str | list[str] | None = None):
    """Failed jobs with their messages, as a pandas DataFrame."""
    import pandas as pd

    frames = []
    for name, table in _tables(tables).items():
        if table.jobs.is_declared and len(table.jobs.errors):
            frame = table.jobs.errors.to_pandas().reset_index()
            frame.insert(0, "table", name)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


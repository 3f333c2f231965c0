"""Binding the declared tables to a database schema, safely when many processes start at once.

Creating a schema is many statements (a table, its indexes, comments and lineage rows, then the
next table). Several processes doing it at once crash each other (duplicate table, type or
schema) and can leave wrong lineage rows that break every later join. So `activate` first checks
that the schema is complete (a few catalog queries); only when something is missing does it take
a database lock (``pg_advisory_lock`` on PostgreSQL, ``GET_LOCK`` on MySQL/MariaDB) and create,
check and repair the schema while holding it. Later starts never wait for each other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from types import ModuleType

import datajoint as dj

from . import connection, extensions, integrity, migrate
from ._schema import declare_tables, schema

log = logging.getLogger(__name__)

PREFIX_ENV = "NEUROFIT_PREFIX"
LOCK_TIMEOUT_ENV = "NEUROFIT_SCHEMA_LOCK_TIMEOUT"
LOCK_TIMEOUT = 300.0  # seconds; creating the schema takes a few seconds, even on a busy server


# (take, release): pg_try_advisory_lock answers at once; GET_LOCK waits up to 1 s itself.
_LOCK_SQL = {
    "postgresql": ("SELECT pg_try_advisory_lock(hashtext(%s))", "SELECT pg_advisory_unlock(hashtext(%s))"),
    "mysql": ("SELECT GET_LOCK(%s, 1)", "SELECT RELEASE_LOCK(%s)"),
}


class SchemaError(ValueError):
    """The database schema cannot be created or repaired (the message says why and what to do)."""


def schema_name(prefix: str | None = None) -> str:
    """Database schema for a prefix: ``f"{prefix}neurofit"`` (prefix from ``NEUROFIT_PREFIX``)."""
    prefix = os.environ.get(PREFIX_ENV, "") if prefix is None else prefix
    if not re.fullmatch(r"[a-z0-9_]{0,40}", prefix):
        raise ValueError(
            f"prefix {prefix!r} may hold only lowercase letters, digits and '_' (at most 40), "
            "e.g. 'alice_' or 'lab_v1_'"
        )
    return f"{prefix}neurofit"


def activate(
    prefix: str | None = None, *, extra_schemas: Iterable[ModuleType | str] = (), upgrade: bool = True
) -> connection.Backend:
    """Connect (see `neurofit.schemas.connection.configure`) and create or bind the tables.

    Then the lab schema modules (the ``neurofit.schemas`` entry points, then ``extra_schemas``;
    see `neurofit.schemas.extensions`) are bound to ``f"{prefix}{schema_name}"``, and a
    database made by an earlier release is upgraded in place (`neurofit.schemas.migrate`: added
    attributes and lookup rows; each change is logged).

    Several users or projects share one server by using different prefixes. Activating again
    with the same prefix is a no-op; a different prefix in the same process is an error,
    because the table classes are bound to one schema. Any number of processes may activate a
    new schema at the same moment: one creates it, the others wait for it (at most
    ``$NEUROFIT_SCHEMA_LOCK_TIMEOUT`` seconds, default 300). A half-created schema (a process
    killed while creating it) is completed and repaired the same way.

    Args:
        prefix: schema prefix; default ``$NEUROFIT_PREFIX`` or none.
        extra_schemas: lab schema modules (or their import names) to activate as well.
        upgrade: upgrade tables of an earlier release (False: leave them, as ``neurofit migrate
            --dry-run`` does).

    Returns:
        The database backend in use.

    Raises:
        SchemaError: the lock was not free in time, or the schema could not be completed.
        neurofit.schemas.extensions.SchemaModuleError: a lab schema module cannot be used.
        neurofit.schemas.migrate.MigrationError: the database needs an upgrade this role may not make.
    """
    name = schema_name(prefix)
    backend = connection.configure()
    declare_tables()
    if schema.is_activated():
        if schema.database != name:
            raise RuntimeError(
                f"neurofit is already bound to schema {schema.database!r} in this process; "
                f"start a new process to use {name!r}"
            )
        _activate_labs(name, backend, extra_schemas)
        return backend
    _activate_neurofit(name, backend)
    _activate_labs(name, backend, extra_schemas)
    if upgrade:
        _upgrade(name, backend)
    return backend


def _activate_labs(name: str, backend: connection.Backend, extra: Iterable[ModuleType | str]) -> None:
    """Bind every lab schema module not yet active, creating its schema under the lock if needed."""
    from .populating import ensure_job_tables

    prefix = name[: -len("neurofit")]
    for module in extensions.lab_schema_modules(extra):
        if extensions.is_active(module):
            continue
        if callable(getattr(module, "activate", None)):
            module.activate(prefix)
        else:
            lab_name = extensions.lab_schema_name(module, prefix)
            want = integrity.expected(module.schema)
            if integrity.find_problems(dj.conn(), lab_name, want):
                with creation_lock(lab_name, backend.backend):
                    module.schema.activate(lab_name, create_schema=True, create_tables=True)
                    ensure_job_tables({cls.__name__: cls for cls in want.job_tables.values()})
            else:
                module.schema.activate(lab_name, create_schema=False, create_tables=True)
        extensions.mark_active(module)


def _upgrade(name: str, backend: connection.Backend) -> None:
    """Upgrade tables an earlier release made (a catalogue read when there is nothing to do)."""
    if not migrate.migrate(extensions.active_schemas(), dry_run=True, changes_only=True):
        return
    with creation_lock(name, backend.backend):
        migrate.migrate(extensions.active_schemas())  # planned again: another process may have done it


def _activate_neurofit(name: str, backend: connection.Backend) -> None:
    """Create (once, under the lock), repair or bind neurofit's own schema."""
    conn, want = dj.conn(), _expected()
    if integrity.find_problems(conn, name, want):
        with creation_lock(name, backend.backend):
            # Processes that waited find the schema complete: they bind it after releasing.
            fixes = _complete(name) if integrity.find_problems(conn, name, want) else None
        if fixes:
            log.warning("repaired schema %s: %s", name, "; ".join(fixes))
        if fixes is not None:
            return
    # Everything exists, so binding declares nothing and needs no lock: later starts never wait.
    schema.activate(name, create_schema=False, create_tables=True)


def repair(prefix: str | None = None) -> list[str]:
    """Check the schema and repair what a half-created one lacks; what was fixed, one line each.

    Missing tables and job tables are created, wrong or missing lineage rows rewritten, and on
    PostgreSQL missing column comments and indexes restored. No row is deleted. Safe to run
    while workers use the schema.

    Args:
        prefix: schema prefix; default ``$NEUROFIT_PREFIX`` or none.

    Raises:
        SchemaError: no such schema, or the lock was not free in time.
    """
    name = schema_name(prefix)
    backend = connection.configure()
    if schema.is_activated() and schema.database != name:
        raise RuntimeError(f"neurofit is bound to schema {schema.database!r} in this process; "
                           f"repair {name!r} from a new process")
    if not integrity.schema_exists(dj.conn(), name):
        raise SchemaError(f"schema {name!r} does not exist; any neurofit command (e.g. `neurofit status`) creates it")
    with creation_lock(name, backend.backend):
        return _complete(name)


def _expected() -> integrity.Expected:
    declare_tables()  # importing neurofit.schemas declares nothing by itself
    return integrity.expected(schema)


def _complete(name: str) -> list[str]:
    """Create or repair the schema and bind the tables to it; the caller holds the creation lock.

    Returns:
        What was repaired (empty for a brand-new schema, or one that was already complete).
    """
    from .populating import ensure_job_tables

    conn, want = dj.conn(), _expected()
    before = integrity.present_tables(conn, name) if integrity.schema_exists(conn, name) else set()
    # Lineage first: tables created below copy their parents' rows, and the headings that
    # binding loads must hold the right ones.
    lineage = integrity.repair_lineage(conn, name, set(want.tables)) if before else []
    fixes = _describe(lineage)
    if schema.is_activated():  # `repair` in a process that uses the schema: bind again
        for cls, context in schema.declare_list:
            schema._decorate_master(cls, context)  # reloads headings, declares missing tables
    else:
        schema.activate(name, create_schema=True, create_tables=True)
    # A table without lineage rows may have been killed before its indexes and comments too.
    fixes += integrity.complete_tables(conn, name, want.tables, {f.table for f in lineage if f.have is None})
    ensure_job_tables({cls.__name__: cls for cls in want.job_tables.values()})
    if before:  # else a new schema was created, not repaired
        fixes += [f"created missing table {t}" for t in (*want.tables, *want.job_tables) if t not in before]
    left = integrity.find_problems(conn, name, want)
    if left:
        raise SchemaError(
            f"schema {name!r} is still incomplete after creating and repairing it: "
            + "; ".join(map(str, left[:10]))
            + ". Check that this database user may create tables in it, then run `neurofit repair`"
        )
    return fixes


def _describe(lineage: list[integrity.LineageFix]) -> list[str]:
    """Wrong rows one by one, missing ones per table."""
    lines = [str(fix) for fix in lineage if fix.have is not None]
    missing: dict[str, list[str]] = {}
    for fix in lineage:
        if fix.have is None:
            missing.setdefault(fix.table, []).append(fix.column)
    lines += [f"lineage of {table}: wrote missing row(s) for {', '.join(columns)}" for table, columns in missing.items()]
    return lines


@contextlib.contextmanager
def creation_lock(name: str, backend: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the database lock that serialises creating schema ``name`` across processes.

    The lock is the database session's: if the holder dies, the server releases it.

    Raises:
        SchemaError: another session held it for ``timeout`` seconds (default
            ``$NEUROFIT_SCHEMA_LOCK_TIMEOUT`` or 300).
    """
    if timeout is None:
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV) or LOCK_TIMEOUT)
    conn, key = dj.conn(), f"neurofit:{name}"
    take_sql, release_sql = _LOCK_SQL["postgresql" if backend == "postgresql" else "mysql"]

    def take() -> bool:
        return conn.query(take_sql, args=(key,)).fetchone()[0] == 1  # True/1: taken; False/0/NULL: not

    deadline = time.monotonic() + timeout
    taken = take()
    if not taken:
        log.info("waiting for another process to finish creating schema %s", name)
    while not taken:
        if time.monotonic() > deadline:
            raise SchemaError(
                f"another process has been creating or repairing schema {name!r} for over {timeout:.0f} s "
                f"and still holds its lock; if it hangs, stop it (the lock is released when it ends), "
                f"or allow more time with {LOCK_TIMEOUT_ENV}=<seconds>"
            )
        if backend == "postgresql":
            time.sleep(0.1)
        taken = take()
    try:
        yield
    finally:
        conn.query(release_sql, args=(key,))

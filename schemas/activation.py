"""Binding the declared tables to a database schema."""

from __future__ import annotations

import os
import re

from . import connection
from ._schema import schema

PREFIX_ENV = "NEUROFIT_PREFIX"


def schema_name(prefix: str | None = None) -> str:
    """Database schema for a prefix: ``f"{prefix}neurofit"`` (prefix from ``NEUROFIT_PREFIX``)."""
    prefix = os.environ.get(PREFIX_ENV, "") if prefix is None else prefix
    if not re.fullmatch(r"[a-z0-9_]{0,40}", prefix):
        raise ValueError(
            f"prefix {prefix!r} may hold only lowercase letters, digits and '_' (at most 40), "
            "e.g. 'alice_' or 'lab_v1_'"
        )
    return f"{prefix}neurofit"


def activate(prefix: str | None = None) -> connection.Backend:
    """Connect (see `neurofit.schemas.connection.configure`) and create or bind the tables.

    Several users or projects share one server by using different prefixes. Activating again
    with the same prefix is a no-op; a different prefix in the same process is an error,
    because the table classes are bound to one schema.

    Args:
        prefix: schema prefix; default ``$NEUROFIT_PREFIX`` or none.

    Returns:
        The database backend in use.
    """
    name = schema_name(prefix)
    backend = connection.configure()
    if schema.is_activated():
        if schema.database != name:
            raise RuntimeError(
                f"neurofit is already bound to schema {schema.database!r} in this process; "
                f"start a new process to use {name!r}"
            )
        return backend
    schema.activate(name, create_schema=True, create_tables=True)
    from .populate import COMPUTED_TABLES, ensure_job_tables

    ensure_job_tables(COMPUTED_TABLES)
    return backend

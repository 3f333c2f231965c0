"""Upgrading a database made by an earlier neurofit release, in place and without losing a row.

Upgrades are additive: a new release may add tables (created by `activate` as usual), add
attributes to existing tables, and add rows to lookup tables. Every added attribute has a
default or is nullable, so the rows already there stay valid; the default states what an old
row means (``n_parameters = null``: not recorded). Nothing is ever dropped, renamed or retyped
here: a table whose stored attributes the release no longer declares is reported, not changed.

`activate` runs `migrate` on every start (a no-op when nothing changed, one catalogue query per
table) and logs each change. A role that may not alter tables gets an error naming the tables
and the fix (``neurofit migrate`` as the schema's owner); ``neurofit migrate --dry-run`` lists
the changes without making them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Iterable

import datajoint as dj
from datajoint.declare import prepare_declare
from datajoint.heading import Heading

log = logging.getLogger(__name__)

__all__ = ["MigrationError", "TableChange", "declared_tables", "migrate"]


class MigrationError(RuntimeError):
    """The database needs an upgrade this process cannot make (privileges, or not additive)."""


@dataclass
class TableChange:
    """What upgrading one table means.

    Attributes:
        table: the table's class name (``Master.Part`` for parts).
        added: attributes declared by this release that the stored table lacks.
        contents: lookup rows this release declares that the stored table lacks.
        undeclared: stored attributes this release no longer declares (reported, never dropped).
    """

    table: str
    added: list[str] = field(default_factory=list)
    contents: int = 0
    undeclared: list[str] = field(default_factory=list)
    _sql: list[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        parts = []
        if self.added:
            parts.append(f"adds attribute(s) {', '.join(self.added)}")
        if self.contents:
            parts.append(f"adds {self.contents} lookup row(s)")
        if self.undeclared:
            parts.append(f"keeps attribute(s) {', '.join(self.undeclared)} this release no longer declares")
        return f"{self.table}: {'; '.join(parts)}"


def declared_tables(schemas: Iterable[dj.Schema]) -> list[type]:
    """Every table class declared on the given schemas, part tables after their masters."""
    tables: list[type] = []
    for schema in schemas:
        for cls, _ in schema.declare_list:
            tables.append(cls)
            tables.extend(
                value for value in vars(cls).values()
                if isinstance(value, type) and issubclass(value, dj.Part)
            )
    return tables


def _name(table: type) -> str:
    master = getattr(table, "master", None)
    return f"{master.__name__}.{table.__name__}" if issubclass(table, dj.Part) and master is not None else table.__name__


_ATTRIBUTE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:=[^:]*)?:", re.MULTILINE)


def _declared_names(definition: str) -> set[str]:
    """Attribute names written in a definition (foreign-key attributes are not written there)."""
    lines = [line.split("#", 1)[0] for line in definition.splitlines() if not line.strip().startswith("->")]
    return set(_ATTRIBUTE.findall("\n".join(lines)))


def _stored_columns(connection, database: str) -> dict[str, set[str]]:
    """Every table's stored column names, in one catalogue query."""
    rows = connection.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
        args=(database,),
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def _plan(table: type, stored_columns: dict[str, set[str]], complete: bool) -> TableChange:
    change = TableChange(_name(table))
    instance = table()
    stored = stored_columns.get(instance.table_name)
    if stored is None:
        return change  # activate creates it
    if not complete and _declared_names(instance.definition) <= stored:
        return _plan_contents(table, instance, change)  # the common case: one catalogue read in all
    adapter = instance.connection.adapter
    context = getattr(instance, "declaration_context", None) or {}
    declared = prepare_declare(instance.definition, context, adapter)
    attribute_sql, column_comments = declared[2], declared[7]
    adapter.get_pending_enum_ddl(instance.database)  # drain: enums are not used by neurofit's tables
    quote = re.escape(adapter.quote_identifier("x")[0])
    name_of = re.compile(rf"^{quote}(?P<name>\w+){quote}")
    declared_names = []
    for sql in attribute_sql:
        name = name_of.match(sql).group("name")
        declared_names.append(name)
        if name in stored:
            continue
        if "DEFAULT" not in sql.upper() and " NULL" not in sql.upper().replace("NOT NULL", ""):
            raise MigrationError(
                f"{change.table}.{name} is new in this release but has neither a default nor null; "
                "an added attribute must say what existing rows mean (a bug in the release)"
            )
        change.added.append(name)
        change._sql.append(f"ALTER TABLE {instance.full_table_name} ADD COLUMN {sql}")
        comment = column_comments.get(name)
        ddl = adapter.column_comment_ddl(instance.full_table_name, name, comment) if comment else None
        if ddl:
            change._sql.append(ddl)
    change.undeclared = sorted(stored - set(declared_names))
    return _plan_contents(table, instance, change)


def _plan_contents(table: type, instance, change: TableChange) -> TableChange:
    contents = list(getattr(table, "contents", None) or [])
    if contents and issubclass(table, dj.Lookup):
        primary = instance.primary_key
        have = {tuple(row[k] for k in primary) for row in instance.proj().to_dicts()}
        change.contents = sum(_primary_values(row, primary, instance.heading.names) not in have for row in contents)
    return change


def _primary_values(row, primary: list[str], names: list[str]) -> tuple:
    """A lookup row's primary key values; DataJoint accepts rows as dicts or as tuples in heading order."""
    if isinstance(row, dict):
        return tuple(row[k] for k in primary)
    values = dict(zip(names, row))
    return tuple(values[k] for k in primary)


def migrate(schemas: Iterable[dj.Schema], *, dry_run: bool = False, changes_only: bool = False) -> list[TableChange]:
    """Add what this release declares and the database lacks: attributes and lookup rows.

    Args:
        schemas: the activated schemas (neurofit's and the lab's).
        dry_run: only report.
        changes_only: leave out tables whose only finding is an undeclared attribute.

    Returns:
        One `TableChange` per table that needed (or, with ``dry_run``, needs) a change.

    Raises:
        MigrationError: an added attribute without a default, or a role that may not alter tables.
    """
    schemas = list(schemas)
    tables = declared_tables(schemas)
    stored = {schema.database: _stored_columns(schema.connection, schema.database) for schema in schemas}
    planned = (_plan(t, stored[t.database], complete=not changes_only) for t in tables)
    changes = [c for c in planned if c.added or c.contents or (c.undeclared and not changes_only)]
    if dry_run:
        return changes
    by_name = {_name(t): t for t in tables}
    for change in changes:
        table = by_name[change.table]
        try:
            for sql in change._sql:
                table.connection.query(sql)
            if change.contents:
                table().insert(table.contents, skip_duplicates=True)
        except dj.errors.DataJointError as error:
            if "denied" in str(error).lower() or "permission" in str(error).lower() or isinstance(error, dj.errors.AccessError):
                raise MigrationError(
                    f"the database was made by an earlier neurofit release and needs an upgrade "
                    f"({change}), but this role may not alter tables. Run `neurofit migrate` once as "
                    "the schema's owner, then start again."
                ) from error
            raise
        if change.added:
            # Headings are cached per class: read the altered table again.
            table._heading = Heading(table_info=table().heading.table_info)
        if change.added or change.contents:
            log.warning("neurofit upgraded %s", change)
        if change.undeclared:
            log.warning("%s", change)
    return changes

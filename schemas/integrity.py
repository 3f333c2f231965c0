"""Is a neurofit schema complete? Finding and repairing a half-created one.

A schema is complete when every table neurofit declares exists, every computed table has its
job table, and DataJoint's ``~lineage`` rows (which it checks on every join) are all present and
right. On PostgreSQL DataJoint also writes each column's type (``<blob@neurofit>``, ``json``, ...)
in a comment, and the table's extra indexes, in statements that run after ``CREATE TABLE``.

A process killed while creating the schema, or several creating it at once, can leave any of
these out. The worst is a wrong lineage row: when a child table is declared while its parent's
rows are missing, DataJoint records the parent as the origin (``probe_selection.dataset_fn``
instead of ``dataset.dataset_fn``), the row is never corrected, and every join through it fails
with ``different lineages``. DataJoint's ``schema.rebuild_lineage()`` would fix it but reads
MySQL-only catalog columns and fails on PostgreSQL; `repair_lineage` derives the same rows from
DataJoint's own per-backend catalog queries (the ones its dependency graph uses).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import datajoint as dj
from datajoint.lineage import get_lineage, get_schema_lineages, insert_lineages
from datajoint.schemas import ordered_dir
from datajoint.user_tables import Part
from datajoint.utils import from_camel_case


@dataclass(frozen=True)
class Problem:
    """One thing missing or wrong in a schema.

    Attributes:
        kind: "schema", "table", "job table", "lineage" or "comments".
        table: the table it concerns (the schema's name for kind "schema").
        detail: what is wrong, in words.
    """

    kind: str
    table: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.table}: {self.detail}"


@dataclass(frozen=True)
class Expected:
    """What a complete schema holds, from the declared table classes (no database needed).

    Attributes:
        tables: table name -> class, masters and parts.
        job_tables: job table name -> computed or imported master class.
    """

    tables: dict[str, type]
    job_tables: dict[str, type]


def expected(schema: dj.Schema) -> Expected:
    """The tables a deferred ``schema`` declares, and the job tables of its computed tables."""
    tables: dict[str, type] = {}
    jobs: dict[str, type] = {}
    for cls, _context in schema.declare_list:
        tables[cls.table_name] = cls
        if issubclass(cls, (dj.Computed, dj.Imported)):
            jobs[f"~~{cls.table_name.lstrip('_')}"] = cls  # DataJoint's name for it
        for name in ordered_dir(cls):  # as DataJoint finds parts; other attributes need activation
            part = getattr(cls, name) if name[0].isupper() else None
            if inspect.isclass(part) and issubclass(part, Part):
                # Part.table_name needs the master set, which only activation does.
                tables[f"{cls.table_name}__{from_camel_case(part.__name__)}"] = part
    return Expected(tables, jobs)


def schema_exists(conn, database: str) -> bool:
    """True if the schema (PostgreSQL) or database (MySQL) exists."""
    return bool(conn.query(conn.adapter.schema_exists_sql(database)).rowcount)


def present_tables(conn, database: str) -> set[str]:
    """Every table in the schema, hidden ones (``~lineage``, ``~~jobs``) included."""
    return {row[0] for row in conn.query(conn.adapter.list_tables_sql(database)).fetchall()}


def _key_columns(conn, database: str) -> tuple[dict[str, set[str]], dict[tuple[str, str], tuple[str, str, str]]]:
    """Primary-key columns per table and the foreign-key map of a schema's visible tables.

    Returns:
        ``({table: {pk columns}}, {(table, column): (parent schema, parent table, parent column)})``.
    """
    adapter = conn.adapter
    names = adapter.quote_string(database)
    split = adapter.split_full_table_name
    primary: dict[str, set[str]] = {}
    for full_name, column in conn.query(adapter.load_primary_keys_sql(names, "'~%%'")).fetchall():
        db, table = split(full_name)
        if db == database:
            primary.setdefault(table, set()).add(column)
    foreign = {}
    for row in conn.query(adapter.load_foreign_keys_sql(names, "'~%%'"), as_dict=True).fetchall():
        row = {k.lower(): v for k, v in row.items()}
        db, table = split(row["referencing_table"])
        if db == database:
            foreign[(table, row["column_name"])] = (*split(row["referenced_table"]), row["referenced_column_name"])
    return primary, foreign


def expected_lineage(conn, database: str, keys=None) -> dict[tuple[str, str], str]:
    """The lineage every key and foreign-key column of the schema's tables should have.

    The rules are DataJoint's (`datajoint.lineage.rebuild_schema_lineage`): a foreign-key column
    inherits its parent column's lineage, any other primary-key column is its own origin.
    ``keys`` is `_key_columns`'s result, if the caller has it.
    """
    primary, foreign = keys or _key_columns(conn, database)
    resolved: dict[tuple[str, str], str] = {}

    def resolve(table: str, column: str) -> str:
        if (table, column) not in resolved:
            parent = foreign.get((table, column))
            if parent is None:
                resolved[(table, column)] = f"{database}.{table}.{column}"
            elif parent[0] == database:
                resolved[(table, column)] = resolve(parent[1], parent[2])
            else:  # another schema (a lab's linking module): trust its lineage, as declare does
                resolved[(table, column)] = get_lineage(conn, *parent) or ".".join(parent)
        return resolved[(table, column)]

    columns = {(t, c) for t, cs in primary.items() for c in cs} | set(foreign)
    return {key: resolve(*key) for key in sorted(columns) if not key[1].startswith("_")}


@dataclass(frozen=True)
class LineageFix:
    """A ``~lineage`` row that is missing (``have`` None) or wrong, and what it should be."""

    table: str
    column: str
    have: str | None
    want: str

    def __str__(self) -> str:
        return f"lineage of {self.table}.{self.column} is {self.have or 'missing'}, should be {self.want}"


def lineage_fixes(conn, database: str, keys=None) -> list[LineageFix]:
    """The ``~lineage`` rows to write for the schema's lineage to be complete and right."""
    stored = {}
    for qualified, lineage in get_schema_lineages(conn, database).items():
        _db, table, column = qualified.rsplit(".", 2)
        stored[(table, column)] = lineage
    return [
        LineageFix(table, column, stored.get((table, column)), want)
        for (table, column), want in expected_lineage(conn, database, keys).items()
        if stored.get((table, column)) != want
    ]


def _uncommented_columns(conn, database: str, keys=None) -> dict[str, list[str]]:
    """PostgreSQL: columns of visible tables that lack the comment holding their DataJoint type.

    Foreign-key columns have none (their type is the parent's); every other column of a neurofit
    table has one, because each definition line carries a type and a comment.
    """
    rows = conn.query(
        "SELECT c.relname, a.attname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid "
        "LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass "
        "AND d.objsubid = a.attnum "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
        "AND c.relname NOT LIKE '~%%' AND d.description IS NULL",
        args=(database,),
    ).fetchall()
    _primary, foreign = keys or _key_columns(conn, database)
    missing: dict[str, list[str]] = {}
    for table, column in rows:
        if (table, column) not in foreign:
            missing.setdefault(table, []).append(column)
    return missing


def find_problems(conn, database: str, want: Expected) -> list[Problem]:
    """Everything missing or wrong in ``database``; empty when the schema is complete."""
    if not schema_exists(conn, database):
        return [Problem("schema", database, "does not exist")]
    present = present_tables(conn, database)
    problems = [Problem("table", t, "missing") for t in want.tables if t not in present]
    problems += [Problem("job table", t, "missing") for t in want.job_tables if t not in present]
    keys = _key_columns(conn, database)
    # Only the schema's own tables count: a table someone else put in the schema is not ours to fix.
    ours = set(want.tables)
    problems += [Problem("lineage", f.table, f"{f.column} is {f.have or 'missing'}, should be {f.want}")
                 for f in lineage_fixes(conn, database, keys) if f.table in ours]
    if conn.adapter.backend == "postgresql":
        problems += [
            Problem("comments", table, f"column(s) {', '.join(sorted(columns))} lack their type comment")
            for table, columns in sorted(_uncommented_columns(conn, database, keys).items()) if table in ours
        ]
    return problems


def repair_lineage(conn, database: str, tables: set[str] | None = None) -> list[LineageFix]:
    """Write the right ``~lineage`` row for every key column that lacks it or has a wrong one.

    Args:
        tables: repair only these tables' rows (default: every table of the schema).

    Returns:
        The rows written.
    """
    fixes = [f for f in lineage_fixes(conn, database) if tables is None or f.table in tables]
    if fixes:
        insert_lineages(conn, database, [(f.table, f.column, f.want) for f in fixes])
    return fixes


def complete_tables(conn, database: str, tables: dict[str, type], suspects: set[str] = frozenset()) -> list[str]:
    """PostgreSQL: run the post-``CREATE TABLE`` statements that half-created tables lack.

    DataJoint writes a table's lineage rows after its indexes and comments, so a table killed
    during its declaration lacks lineage rows (``suspects``); one whose lineage DataJoint has
    since refilled shows by columns without their type comment. Only what is missing is added:
    an index that does not exist, a comment that is NULL. An existing comment is never
    overwritten, so a table declared by an older definition keeps the types it was created with.
    ``tables`` must be activated (bound to ``database``).

    Returns:
        One line per table repaired.
    """
    if conn.adapter.backend != "postgresql":
        return []
    from datajoint.declare import declare

    uncommented = _uncommented_columns(conn, database)
    repaired = []
    for table_name in sorted((set(uncommented) | set(suspects)) & set(tables)):
        cls = tables[table_name]  # other tables in the schema are not neurofit's: left alone
        *_, post_ddl = declare(cls.full_table_name, cls.definition, cls.declaration_context, conn.adapter,
                               config=conn._config)
        indexes = {row[0] for row in conn.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s", args=(database, table_name)
        ).fetchall()}
        done = []
        for ddl in post_ddl:
            index = re.match(r'CREATE (?:UNIQUE )?INDEX "([^"]+)"', ddl)
            column = re.match(r'COMMENT ON COLUMN "[^"]+"\."[^"]+"\."([^"]+)"', ddl)
            if index and index.group(1) not in indexes:
                conn.query(ddl)
                done.append(f"index {index.group(1)}")
            elif column and column.group(1) in uncommented.get(table_name, ()):
                conn.query(ddl)
                done.append(f"comment of {column.group(1)}")
        if done:
            reset_heading(cls)
            repaired.append(f"{table_name}: restored {', '.join(done)}")
    return repaired


def reset_heading(cls: type) -> None:
    """Make an activated table class reload its heading (types, lineage) from the database."""
    from datajoint.heading import Heading

    cls._heading = Heading(table_info={
        "conn": cls._connection, "database": cls.database, "table_name": cls.table_name,
        "context": cls.declaration_context,
    })

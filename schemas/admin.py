"""`neurofit admin init`: the schemas of a prefix, and least-privilege database roles for them.

A lab server has three kinds of users:

- the **owner** (the admin running ``neurofit admin init`` or ``neurofit migrate``) creates and
  alters tables;
- **workers** (and whoever adds configs and selects trainings) read and write rows of the
  prefix's schemas: ``SELECT, INSERT, UPDATE, DELETE`` on their tables and nothing else: no
  ``CREATE``, ``ALTER``, ``DROP``, ``TRUNCATE``, no other schema and no server-wide privilege;
- **analysts** (notebooks, dashboards) only read: ``SELECT`` (and on PostgreSQL ``REFERENCES``,
  without which PostgreSQL hides the tables' primary keys from the role; see below).

Job tables, heartbeats and checkpoints are rows of tables, so a worker needs no DDL once the
schemas exist; an upgrade that alters tables is run by the owner (``neurofit migrate``). The
database locks neurofit takes on a first start (``pg_advisory_lock``, ``GET_LOCK``) need no grant.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field

WORKER_PASSWORD_ENV = "NEUROFIT_WORKER_PASSWORD"
ANALYST_PASSWORD_ENV = "NEUROFIT_ANALYST_PASSWORD"
WORKER_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
ANALYST_PRIVILEGES = "SELECT"
# PostgreSQL's information_schema shows a table's key constraints only to roles holding some
# privilege other than SELECT, and DataJoint reads primary keys there: a SELECT-only role sees
# tables without keys and fails. REFERENCES is the least such privilege; using it (declaring a
# foreign key to a neurofit table) also needs CREATE on some schema, which the analyst has
# nowhere (PostgreSQL 15+ gives PUBLIC no CREATE on schema public; on 14 and older revoke it).
ANALYST_PRIVILEGES_POSTGRES = "SELECT, REFERENCES"
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
MYSQL_MAX_USER = 32  # MySQL 8's limit (MariaDB allows 80): names must work on both


class AdminError(ValueError):
    """A role or schema cannot be set up (the message says why and what to do)."""


@dataclass
class Role:
    """One database role neurofit sets up.

    Attributes:
        name: the role (PostgreSQL) or user (MySQL/MariaDB) name.
        privileges: table privileges it gets on every schema of the prefix.
        password: its password; None when an existing role keeps the one it has.
        created: False when the role existed before.
    """

    name: str
    privileges: str
    password: str | None
    created: bool = True


@dataclass
class Plan:
    """What ``admin init`` does: the schemas, the roles and the SQL that grants them."""

    backend: str
    schemas: list[str]
    worker: Role
    analyst: Role
    statements: list[str] = field(default_factory=list)


def schema_names(prefix: str | None) -> list[str]:
    """neurofit's schema and those of the installed lab schema modules, for ``prefix``."""
    from . import extensions
    from .activation import schema_name

    name = schema_name(prefix)
    labs = [extensions.lab_schema_name(module, name[: -len("neurofit")]) for module in extensions.lab_schema_modules()]
    return [name, *labs]


def role_name(text: str, what: str) -> str:
    """Check a role name: lowercase letters, digits and '_', at most 32 characters."""
    if not _ROLE_NAME.fullmatch(text):
        raise AdminError(
            f"{what} {text!r}: a role name is 1-32 lowercase letters, digits or '_' (not starting with a "
            f"digit; MySQL allows {MYSQL_MAX_USER} characters). Choose one with --{what.replace(' ', '-')}"
        )
    return text


def _password(env: str) -> tuple[str, bool]:
    """(password, given): from ``env`` if set, else a new random one."""
    given = os.environ.get(env, "")
    if given:
        if len(given) < 12:
            raise AdminError(f"${env} is shorter than 12 characters; use a longer password (or unset it for a random one)")
        return given, True
    return secrets.token_urlsafe(24), False


def _literal(text: str, backend: str) -> str:
    """A SQL string literal (passwords come from the admin's environment: quote, never trust)."""
    escaped = text.replace("'", "''")
    if backend == "mysql":
        escaped = escaped.replace("\\", "\\\\")
    return f"'{escaped}'"


def _postgres_sql(plan: Plan, database: str, reset_passwords: bool) -> list[str]:
    sql = []
    for role in (plan.worker, plan.analyst):
        password = _literal(role.password, "postgresql")
        # Created only if missing: running init again never changes a deployed worker's password
        # unless the admin sets one ($NEUROFIT_WORKER_PASSWORD / $NEUROFIT_ANALYST_PASSWORD).
        sql.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role.name}') THEN "
            f'CREATE ROLE "{role.name}" LOGIN PASSWORD {password}; END IF; END $$'
        )
        if reset_passwords and role.password is not None:
            sql.append(f'ALTER ROLE "{role.name}" PASSWORD {password}')
        sql.append(f'ALTER ROLE "{role.name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS')
        sql.append(f'GRANT CONNECT ON DATABASE "{database}" TO "{role.name}"')
    for schema in plan.schemas:
        for role in (plan.worker, plan.analyst):
            sql.append(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role.name}"')
            sql.append(f'GRANT {role.privileges} ON ALL TABLES IN SCHEMA "{schema}" TO "{role.name}"')
            # Tables the owner adds later (an upgrade, a new lab table) get the same grants.
            sql.append(
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT {role.privileges} ON TABLES TO "{role.name}"'
            )
        sql.append(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{plan.worker.name}"')
        sql.append(f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT USAGE, SELECT ON SEQUENCES TO "{plan.worker.name}"')
    return sql


def _mysql_sql(plan: Plan, host: str, reset_passwords: bool) -> list[str]:
    sql = []
    for role in (plan.worker, plan.analyst):
        password = _literal(role.password, "mysql")
        sql.append(f"CREATE USER IF NOT EXISTS '{role.name}'@'{host}' IDENTIFIED BY {password}")
        if reset_passwords and role.password is not None:
            sql.append(f"ALTER USER '{role.name}'@'{host}' IDENTIFIED BY {password}")
    for schema in plan.schemas:
        # '_' is a wildcard in database-level grants: escaped, a grant names exactly one schema.
        pattern = schema.replace("_", "\\_")
        for role in (plan.worker, plan.analyst):
            sql.append(f"GRANT {role.privileges} ON `{pattern}`.* TO '{role.name}'@'{host}'")
    return sql


def plan(prefix: str | None, backend: str, *, worker: str | None = None, analyst: str | None = None,
         database: str = "postgres", host: str = "%", existing: frozenset[str] = frozenset()) -> Plan:
    """The schemas, roles and SQL of ``admin init`` (nothing is executed).

    Args:
        prefix: schema prefix (default ``$NEUROFIT_PREFIX``).
        backend: "postgresql" or "mysql" (MySQL and MariaDB).
        worker, analyst: role names (default ``<prefix>neurofit_worker`` / ``_analyst``).
        database: the PostgreSQL database holding the schemas.
        host: MySQL/MariaDB host pattern the users may connect from.
        existing: role names that already exist (their passwords stay unless one is given).
    """
    from .activation import schema_name

    base = schema_name(prefix)
    worker = role_name(worker or f"{base}_worker", "worker role")
    analyst = role_name(analyst or f"{base}_analyst", "analyst role")
    if worker == analyst:
        raise AdminError(f"the worker and analyst roles are both {worker!r}; give them different names")
    if backend not in ("postgresql", "mysql"):
        raise AdminError(f"backend {backend!r}: roles are set up on PostgreSQL, MySQL or MariaDB")
    if not re.fullmatch(r"[A-Za-z0-9_.%-]{1,255}", host):
        raise AdminError(f"host pattern {host!r}: use a host name, an address or a pattern such as '%' or '10.0.%'")
    roles = []
    read_only = ANALYST_PRIVILEGES_POSTGRES if backend == "postgresql" else ANALYST_PRIVILEGES
    for name, privileges, env in ((worker, WORKER_PRIVILEGES, WORKER_PASSWORD_ENV),
                                  (analyst, read_only, ANALYST_PASSWORD_ENV)):
        password, _ = _password(env)  # an existing role's is only used by CREATE ... IF NOT EXISTS
        roles.append(Role(name, privileges, password, created=name not in existing))
    result = Plan(backend, schema_names(prefix), roles[0], roles[1])
    reset = bool(os.environ.get(WORKER_PASSWORD_ENV) or os.environ.get(ANALYST_PASSWORD_ENV))
    result.statements = (_postgres_sql(result, database, reset) if backend == "postgresql"
                         else _mysql_sql(result, host, reset))
    for role, env in ((result.worker, WORKER_PASSWORD_ENV), (result.analyst, ANALYST_PASSWORD_ENV)):
        if not role.created and not os.environ.get(env):
            role.password = None  # it keeps the password it has
    return result


def _existing_roles(names: list[str], backend: str, host: str) -> frozenset[str]:
    import datajoint as dj

    conn = dj.conn()
    found = set()
    for name in names:
        if backend == "postgresql":
            row = conn.query("SELECT 1 FROM pg_roles WHERE rolname = %s", args=(name,)).fetchone()
        else:
            row = conn.query("SELECT 1 FROM mysql.user WHERE user = %s AND host = %s", args=(name, host)).fetchone()
        if row:
            found.add(name)
    return frozenset(found)


def init(prefix: str | None = None, *, worker: str | None = None, analyst: str | None = None,
         host: str = "%") -> Plan:
    """Create the prefix's schemas (as the connected owner) and grant the two roles on them.

    Run it as a user that may create schemas and roles (the lab server's admin). Running it
    again is safe: it creates what is missing, grants again, and keeps the passwords of roles
    that exist unless ``$NEUROFIT_WORKER_PASSWORD`` / ``$NEUROFIT_ANALYST_PASSWORD`` are set.

    Returns:
        The executed `Plan`; roles it created carry their (new) passwords.

    Raises:
        AdminError: a name is not valid, the server is the embedded one's default user only, or
            the connected user may not create roles (the message names the statement).
    """
    import datajoint as dj

    from .activation import activate

    backend = activate(prefix)  # creates every schema and job table while we are the owner
    draft = plan(prefix, backend.backend, worker=worker, analyst=analyst, host=host)
    names = [draft.worker.name, draft.analyst.name]
    existing = _existing_roles(names, backend.backend, host)
    result = plan(prefix, backend.backend, worker=worker, analyst=analyst, host=host, existing=existing,
                  database=str(dj.config["database.name"] or "postgres"))
    conn = dj.conn()
    for statement in result.statements:
        try:
            conn.query(statement.replace("%", "%%"))  # the driver formats %s; the SQL has literal %
        except Exception as error:
            raise AdminError(
                f"could not run `{_redact(statement)}` as {dj.config['database.user']!r} ({error}). "
                "Run `neurofit admin init` as a user that may create roles and grant privileges "
                "(PostgreSQL: CREATEROLE and the schemas' owner; MySQL/MariaDB: CREATE USER and GRANT OPTION), "
                "or pass --print and give the SQL to your database admin"
            ) from error
    if backend.backend == "mysql":
        conn.query("FLUSH PRIVILEGES")
    return result


def _redact(statement: str) -> str:
    return re.sub(r"(PASSWORD|IDENTIFIED BY) '(?:[^']|'')*'", r"\1 '***'", statement)


def render(result: Plan) -> str:
    """The plan as a SQL script with comments (what ``admin init --print`` shows)."""
    lines = [
        f"-- neurofit roles for schemas {', '.join(result.schemas)} ({result.backend})",
        "-- Run as the schemas' owner after the schemas exist (any neurofit command run as the owner",
        "-- creates them, e.g. `neurofit status`). Passwords below are new and random unless set in",
        f"-- ${WORKER_PASSWORD_ENV} / ${ANALYST_PASSWORD_ENV}; existing roles keep theirs.",
        f"-- worker  {result.worker.name}: {result.worker.privileges}",
        f"-- analyst {result.analyst.name}: {result.analyst.privileges}",
    ]
    lines += [statement + ";" for statement in result.statements]
    return "\n".join(lines)


def credentials(result: Plan) -> str:
    """Env-file lines for the roles whose password is known (a new role, or one the admin set)."""
    lines = []
    for label, role in (("WORKER", result.worker), ("ANALYST", result.analyst)):
        lines.append(f"NEUROFIT_{label}_USER={role.name}")
        if role.password is not None:
            lines.append(f"NEUROFIT_{label}_PASSWORD={role.password}")
    return "\n".join(lines) + "\n"


def write_env_file(path: str, text: str) -> None:
    """Write credentials readable by their owner only (mode 0600), refusing to overwrite."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AdminError(f"{path} exists; remove it or choose another --env-file (passwords are never overwritten)") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


PRIVILEGE_HINT = (
    "this database role may only read (the analyst role): connect as the worker role "
    "(DJ_USER=<prefix>neurofit_worker) to add configs, select or train"
)


def is_privilege_error(error: BaseException) -> bool:
    """True when ``error`` (or its cause) is the server refusing a statement for lack of privilege."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if "permission denied" in text or "command denied" in text or "insufficient privilege" in text:
            return True
        if getattr(error, "pgcode", None) == "42501" or (getattr(error, "args", None) or [None])[0] in (1142, 1044, 1227):
            return True
        error = error.__cause__ or error.__context__
    return False

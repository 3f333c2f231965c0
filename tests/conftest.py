"""Shared fixtures. Integration tests use the backend named by NEUROFIT_TEST_BACKEND:

- ``embedded`` (default): a fresh embedded PostgreSQL in a temporary NEUROFIT_HOME.
- ``postgres``: the PostgreSQL server at 127.0.0.1:5432 (override with DJ_HOST/DJ_PORT/DJ_USER/DJ_PASS).
- ``mariadb``: the MySQL/MariaDB server at 127.0.0.1:3306 (same overrides).
"""

from __future__ import annotations

import os
import uuid

import pytest

BACKENDS = {
    "postgres": {"DJ_BACKEND": "postgresql", "DJ_HOST": "127.0.0.1", "DJ_PORT": "5432", "DJ_USER": "postgres", "DJ_PASS": ""},
    "mariadb": {"DJ_BACKEND": "mysql", "DJ_HOST": "127.0.0.1", "DJ_PORT": "3306", "DJ_USER": "root", "DJ_PASS": ""},
}


def test_backend() -> str:
    name = os.environ.get("NEUROFIT_TEST_BACKEND", "embedded")
    if name not in ("embedded", *BACKENDS):
        raise pytest.UsageError(f"NEUROFIT_TEST_BACKEND={name!r}: use embedded, postgres or mariadb")
    return name


test_backend.__test__ = False  # not a test, despite the name

# No wandb runs from the tests (its default is offline logging); tests of the wandb path set
# the mode themselves. Set at import so CLI and notebook subprocesses inherit it.
os.environ["NEUROFIT_WANDB"] = "disabled"


@pytest.fixture(scope="session")
def neurofit_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("neurofit_home")
    os.environ["NEUROFIT_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def db(neurofit_home):
    """Activate neurofit on the test backend under a unique prefix; drop everything afterwards."""
    import datajoint as dj

    backend = test_backend()
    if backend == "embedded":
        os.environ["NEUROFIT_DATABASE"] = "embedded"
    else:
        os.environ["NEUROFIT_DATABASE"] = "server"
        for key, default in BACKENDS[backend].items():
            value = os.environ.get(key, default)
            config_key = {"DJ_BACKEND": "database.backend", "DJ_HOST": "database.host",
                          "DJ_PORT": "database.port", "DJ_USER": "database.user",
                          "DJ_PASS": "database.password"}[key]
            dj.config[config_key] = int(value) if key == "DJ_PORT" else value
            os.environ[key] = value  # for subprocesses: notebook kernels, CLI runs
    dj.config["database.use_tls"] = False
    from neurofit import schemas

    prefix = f"test_{uuid.uuid4().hex[:8]}_"
    os.environ["NEUROFIT_PREFIX"] = prefix  # subprocesses bind the same schema
    info = schemas.activate(prefix)
    yield info
    from neurofit.schemas.extensions import active_schemas

    # Lab schemas first, newest first: MariaDB refuses to drop a schema other schemas' tables reference.
    for schema in reversed(active_schemas()):
        if schema.is_activated() and schema.exists:
            schema.drop(prompt=False)
    if backend == "embedded":
        from neurofit.schemas import connection

        connection.stop_embedded()

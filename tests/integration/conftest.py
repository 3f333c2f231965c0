"""Integration modules share one database schema per session; each module leaves it as a user would find it."""

import sys

import pytest

KINDS = ("dataset", "model", "trainer")


@pytest.fixture(scope="module", autouse=True)
def forget_test_only_builders():
    """After each module, drop the config rows (and all they cascade to) of builders only tests can import.

    A later `populate()` with no restriction, like the one a notebook kernel runs, would otherwise
    meet trained models whose dataset only this pytest process can build and fail on them.
    """
    yield
    schemas = sys.modules.get("neurofit.schemas")
    if schemas is None or not schemas.schema.is_activated():
        return
    for kind in KINDS:
        table = getattr(schemas, kind.capitalize())
        keys = [key for key in table.keys() if not key[f"{kind}_fn"].startswith("neurofit.")]
        if keys:
            (table & keys).delete(prompt=False)

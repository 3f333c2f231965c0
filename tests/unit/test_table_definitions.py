"""Every table's foreign keys resolve in its module: a linter removing a "unused" import breaks none."""

import re
import sys

import datajoint as dj

from neurofit.schemas._schema import declare_tables, schema


def _tables():
    declare_tables()
    for cls, _ in schema.declare_list:
        yield cls
        yield from (v for v in vars(cls).values() if isinstance(v, type) and issubclass(v, dj.Part))


def test_every_foreign_key_names_a_table_its_module_imports():
    missing = []
    for table in _tables():
        namespace = vars(sys.modules[table.__module__])
        for reference in re.findall(r"^\s*->\s*(?:\[[^\]]*\]\s*)?([A-Za-z_][\w.]*)", table.definition, re.MULTILINE):
            head = reference.split(".")[0]
            if head != "master" and head not in namespace:
                missing.append(f"{table.__module__}.{table.__name__}: -> {reference}")
    assert not missing, missing

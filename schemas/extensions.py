"""Schema modules of a lab, activated with neurofit's own, and the computed tables of them all.

A lab adds tables without editing neurofit: a module of its own package declares them on a
deferred schema of its own, depending on neurofit's tables (``-> TrainedModel``)::

    # mylab/tables.py
    import datajoint as dj
    from neurofit.schemas import TrainedModel

    schema = dj.Schema()
    schema_name = "mylab"            # optional; default: the module's last name

    @schema
    class SpikeStatistics(dj.Computed):
        definition = '''
        -> TrainedModel
        ---
        mean_rate: float64            # (Hz)
        '''
        ...

and names it in an entry point of its ``pyproject.toml``, so every worker finds it::

    [project.entry-points."neurofit.schemas"]
    mylab = "mylab.tables"

(or passes it to ``neurofit.schemas.activate(extra_schemas=[mylab.tables])`` in a notebook). At
`neurofit.schemas.activate`, each lab schema is bound to ``f"{prefix}{schema_name}"`` right after
neurofit's, created under the same lock when it is new (a module with its own
``activate(prefix)`` function is activated by calling it instead). From then on
`computed_tables` lists its computed and imported tables with neurofit's, in dependency order,
so ``populate()``, ``neurofit worker`` and ``neurofit status`` run and show them.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Iterable

import datajoint as dj

from ._schema import declare_tables
from ._schema import schema as neurofit_schema

__all__ = [
    "ENTRY_POINT_GROUP", "SchemaModuleError", "active_schemas", "computed_tables", "is_active",
    "lab_schema_modules", "lab_schema_name", "mark_active",
]

ENTRY_POINT_GROUP = "neurofit.schemas"

_activated: list[ModuleType] = []


class SchemaModuleError(ValueError):
    """A lab schema module that cannot be activated as declared."""


def lab_schema_modules(extra: Iterable[ModuleType | str] = ()) -> list[ModuleType]:
    """Modules from the ``neurofit.schemas`` entry points, then ``extra``, without repeats.

    Args:
        extra: modules, or their import names, given to `neurofit.schemas.activate`.

    Raises:
        SchemaModuleError: a module that cannot be imported or declares no ``schema``.
    """
    items = [(f"entry point {entry.name!r}", entry.value) for entry in entry_points(group=ENTRY_POINT_GROUP)]
    items += [("extra_schemas", module) for module in extra]
    modules: list[ModuleType] = []
    for origin, item in items:
        module = _import(item, origin)
        if module not in modules:
            modules.append(module)
    return modules


def _import(item: ModuleType | str, origin: str) -> ModuleType:
    if isinstance(item, ModuleType):
        module = item
    else:
        try:
            module = importlib.import_module(str(item).split(":")[0])
        except Exception as error:  # a broken lab module must say which one and why
            raise SchemaModuleError(
                f"{origin}: cannot import schema module {item!r} ({type(error).__name__}: {error})"
            ) from None
    if not callable(getattr(module, "activate", None)) and not isinstance(getattr(module, "schema", None), dj.Schema):
        raise SchemaModuleError(
            f"{origin}: module {module.__name__!r} has neither a `schema = dj.Schema()` nor an "
            "`activate(prefix)` function; declare its tables on a deferred dj.Schema()"
        )
    return module


def lab_schema_name(module: ModuleType, prefix: str) -> str:
    """The database schema of a lab module: ``f"{prefix}{module.schema_name}"``.

    Raises:
        SchemaModuleError: a name that is not lowercase letters, digits and '_', or 'neurofit'.
    """
    name = getattr(module, "schema_name", None) or module.__name__.rsplit(".", 1)[-1]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name) or name == "neurofit":
        raise SchemaModuleError(
            f"schema module {module.__name__!r}: schema_name {name!r} must be lowercase letters, "
            "digits and '_' (and not 'neurofit'); set `schema_name = \"mylab\"` in the module"
        )
    return f"{prefix}{name}"


def is_active(module: ModuleType) -> bool:
    """Whether ``module`` was activated in this process."""
    return module in _activated


def mark_active(module: ModuleType) -> None:
    """Record that ``module``'s schema is bound (`neurofit.schemas.activate` does this)."""
    if module not in _activated:
        _activated.append(module)


def active_schemas() -> list[dj.Schema]:
    """neurofit's schema and those of the active lab modules."""
    schemas = [neurofit_schema]
    schemas += [m.schema for m in _activated if isinstance(getattr(m, "schema", None), dj.Schema)]
    return schemas


def _declared(schema: dj.Schema, module: ModuleType | None = None) -> list[type]:
    classes = [cls for cls, _ in schema.declare_list]
    if module is not None:  # a schema activated at import has an empty declare list
        classes += [
            value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, dj.Table) and getattr(value, "database", None) == schema.database
        ]
    return classes


def computed_tables() -> dict[str, Any]:
    """Every computed or imported table of neurofit and the active lab schemas, by class name.

    Ordered so that a table comes after every table it depends on (DataJoint's dependency graph),
    which is the order `populate` and workers run them in.

    Raises:
        SchemaModuleError: two tables share a class name (rename one: names are used on the
            command line).
    """
    declare_tables()
    candidates: list[type] = list(_declared(neurofit_schema))
    for module in _activated:
        schema = getattr(module, "schema", None)
        if isinstance(schema, dj.Schema):
            candidates += _declared(schema, module)
    tables: dict[str, type] = {}
    for cls in candidates:
        if not (issubclass(cls, (dj.Computed, dj.Imported)) and not issubclass(cls, dj.Part)):
            continue
        previous = tables.get(cls.__name__)
        if previous is not None and previous is not cls:
            raise SchemaModuleError(
                f"two computed tables are named {cls.__name__}: {previous.__module__} and "
                f"{cls.__module__}; rename one of them"
            )
        tables[cls.__name__] = cls
    if not neurofit_schema.is_activated():
        return tables
    dependencies = neurofit_schema.connection.dependencies
    dependencies.load()
    order = {name: index for index, name in enumerate(dependencies.topo_sort())}
    return dict(sorted(tables.items(), key=lambda item: order.get(item[1].full_table_name, len(order))))

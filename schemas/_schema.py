"""The one deferred DataJoint schema every neurofit table belongs to.

Declaring tables never connects; `neurofit.schemas.activate` binds them to a database schema.
"""

import datajoint as dj  # the warning filter for its import is in neurofit.schemas.__init__

schema = dj.Schema()

#: The modules that declare neurofit's tables, imported by `declare_tables` before the schema is
#: activated (importing ``neurofit.schemas`` alone declares nothing, so commands start fast).
TABLE_MODULES = (
    "config", "selection", "checkpoints", "training", "artefacts", "heartbeat", "worker", "performance",
    "task_performance", "scoring", "probing", "rsa", "similarity", "tuning", "derived",
)


def declare_tables() -> None:
    """Import every table module, so that all of neurofit's tables are declared on `schema`."""
    import importlib

    for module in TABLE_MODULES:
        importlib.import_module(f"neurofit.schemas.{module}")

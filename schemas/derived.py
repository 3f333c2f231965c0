"""Datasets derived from trained models, and deletes that follow them.

A table that writes a dataset from a trained model (spikes simulated from a task network, say)
registers it as an ordinary `Dataset` row, so other models train on it like on any dataset, and
records the link in `DerivedDataset`. DataJoint cascades a delete to children only, and that
`Dataset` row is a parent of the models trained on it, so the core tables upstream of
`TrainedModel` delete through `neurofit.schemas.cascading.CascadesToDerived`: before their own
delete, the `Dataset` rows derived from the trained models about to go are deleted (with whatever
was built on them), in the same transaction.

Derived dataset files live in the object store; their configs name them by store-relative path
(`neurofit.datasets.stored`), opened here through the store (`local_stored_file`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import datajoint as dj

from neurofit.datasets import stored

from ._schema import schema
from .config import Dataset
from .training import TrainedModel

__all__ = ["DerivedDataset", "derived_from", "local_stored_file"]


@schema
class DerivedDataset(dj.Manual):
    """One `Dataset` row that a table wrote from a trained model (written with `add`, never by hand)."""

    definition = """
    -> Dataset
    ---
    -> TrainedModel.proj(source_dataset_fn="dataset_fn", source_dataset_hash="dataset_hash", source_model_fn="model_fn", source_model_hash="model_hash", source_trainer_fn="trainer_fn", source_trainer_hash="trainer_hash", source_seed="seed")
    derived_by: varchar(128)           # the table that derived it, e.g. dynamics.SimulatedData
    """

    @classmethod
    def add(cls, dataset_key: dict, trained_key: dict, derived_by: str) -> None:
        """Record that ``dataset_key`` was derived from the trained model ``trained_key``."""
        source = {f"source_{k}": trained_key[k] for k in TrainedModel.primary_key}
        cls().insert1({**{k: dataset_key[k] for k in Dataset.primary_key}, **source, "derived_by": derived_by},
                      skip_duplicates=True)


def derived_from(expression) -> list[dict]:
    """Keys of the `Dataset` rows derived from the trained models a delete of ``expression`` removes.

    ``expression`` restricts a table upstream of `TrainedModel` (or `TrainedModel` itself), whose
    primary key `TrainedModel` inherits under the same names, so the trained models the cascade
    reaches are ``TrainedModel & expression.proj()``: two queries, no cascade diagram. Datasets
    the delete removes anyway (a delete of `Dataset` rows) are left out, which also ends the
    recursion of nested derivations.
    """
    links = DerivedDataset()
    if not links:
        return []  # the common case costs one query
    trained = (TrainedModel & expression.proj()).proj(**{f"source_{k}": k for k in TrainedModel.primary_key})
    links = links & trained
    if expression.full_table_name == Dataset.full_table_name:
        links = links - expression.proj()
    return links.proj().keys()


# ---------------------------------------------------------------------------------------------
# Opening stored dataset files
# ---------------------------------------------------------------------------------------------


def local_stored_file(path: str) -> Path:
    """A local file holding the store object at store-relative ``path``.

    A file store's object is used in place (after `check_stored_path`); a bucket's is copied
    once into a cache folder (``$NEUROFIT_STORE_CACHE``, default the temporary folder).

    Raises:
        neurofit.schemas.storage.StoredPathError: the path leaves the store.
    """
    from datajoint.hash_registry import get_store_backend
    from datajoint.objectref import ObjectRef

    from .connection import STORE
    from .storage import check_stored_path, read_stored

    ref = ObjectRef.from_json({"path": path, "size": None, "store": STORE}, backend=get_store_backend(STORE))
    full = check_stored_path(ref)
    if dj.config.get_store_spec(STORE).get("protocol", "file") == "file":
        return Path(full)
    cache = Path(os.environ.get("NEUROFIT_STORE_CACHE") or tempfile.gettempdir()) / "neurofit-stored"
    local = cache / hashlib.md5(full.encode()).hexdigest() / Path(path).name
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_suffix(local.suffix + f".{os.getpid()}.part")
        partial.write_bytes(read_stored(ref))
        partial.replace(local)  # atomic: a concurrent reader sees the whole file or none
    return local


stored.set_opener(local_stored_file)

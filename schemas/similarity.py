"""Centred kernel alignment between the layers of trained models."""

from __future__ import annotations

from typing import Any

import datajoint as dj
import numpy as np

from neurofit.pipelines.analysis import cka as cka_functions

from . import _runtime, provenance
from ._schema import schema
from .probing import Activations
from .storage import read_stored

_MODEL_KEY = ("dataset_fn", "dataset_hash", "model_fn", "model_hash", "trainer_fn", "trainer_hash", "seed")
_RENAMED = ", ".join(f"{name}_b='{name}'" for name in _MODEL_KEY)


@schema
class CKAMethod(dj.Lookup):
    """One variant of centred kernel alignment (Kornblith et al. 2019)."""

    definition = """
    cka_method: varchar(16)                # name understood by neurofit.pipelines.analysis.cka.cka
    ---
    description: varchar(255)
    """
    contents = [{"cka_method": name, "description": text} for name, text in cka_functions.METHOD_DESCRIPTIONS.items()]


@schema
class CKASelection(dj.Manual):
    """One pair of probed models (model B may equal model A) to compare layer by layer.

    Both sides share the stimulus set; model B's key attributes carry a ``_b`` suffix.
    """

    definition = f"""
    -> Activations
    -> Activations.proj({_RENAMED})
    """

    @classmethod
    def add_pairs(cls, models: Any, stimulus_set: str, *, within: bool = True, across: bool = True) -> int:
        """Select every pair of probed models (restricted by ``models``) on one stimulus set.

        Args:
            within: include each model with itself (its layer x layer matrix).
            across: include each unordered pair of different models once.

        Returns:
            Number of pairs selected.
        """
        keys = (Activations & models & {"stimulus_set": stimulus_set}).keys()
        rows = []
        for i, a in enumerate(keys):
            for b in keys[i if within else i + 1 : len(keys) if across else i + 1]:
                rows.append({**a, **{f"{k}_b": b[k] for k in _MODEL_KEY}})
        cls().insert(rows, skip_duplicates=True)
        return len(rows)


@schema
class CKA(dj.Computed):
    """Layer x layer CKA between the two models of a selected pair."""

    definition = f"""
    -> CKASelection
    -> CKAMethod
    ---
    layers_a: json                         # layer names of model A (rows)
    layers_b: json                         # layer names of model B (columns)
    cka: <blob>                            # (n_layers_a, n_layers_b) CKA values
    {provenance.attributes("CKA")}
    """

    def _layers(self, key, suffix: str):
        restriction = {k: key[k + suffix] for k in _MODEL_KEY}
        rows = (Activations.Layer & restriction & {"stimulus_set": key["stimulus_set"]}).to_dicts(order_by="layer_index")
        return [row["layer"] for row in rows], [row["activations"] for row in rows]

    def make_fetch(self, key):
        return [self._layers(key, "")[0], self._layers(key, "_b")[0]]

    @provenance.recorded()
    def make_compute(self, key, names_a, names_b):
        layers_a = [np.asarray(read_stored(r), dtype=np.float64) for r in self._layers(key, "")[1]]
        same = all(key[k] == key[k + "_b"] for k in _MODEL_KEY)
        layers_b = None if same else [np.asarray(read_stored(r), dtype=np.float64) for r in self._layers(key, "_b")[1]]
        device = _runtime.context().device
        return [cka_functions.cka_matrix(layers_a, layers_b, method=key["cka_method"],
                                         device=device if device.startswith("cuda") else None)]

    def make_insert(self, key, matrix, record):
        names_a, names_b = self.make_fetch(key)
        self.insert1({**key, "layers_a": names_a, "layers_b": names_b, "cka": np.asarray(matrix, dtype=np.float64),
                      **record})

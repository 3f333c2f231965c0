"""Provenance of analysis rows: how long a row took and what computed it, on every computed table.

`TrainedModel` records its own provenance. Every other computed table declares the same three
attributes with `attributes` and fills them with `recorded`, which times ``make_compute``
(outside the transaction) and hands the values to ``make_insert`` as its last argument::

    @schema
    class SpikeStatistics(dj.Computed):
        definition = f'''
        -> TrainedModel
        ---
        mean_rate: float64                 # (Hz)
        {provenance.attributes("SpikeStatistics")}
        '''

        @provenance.recorded(device="cpu")
        def make_compute(self, key, ...):
            return [mean_rate]

        def make_insert(self, key, mean_rate, record):
            self.insert1({**key, "mean_rate": mean_rate, **record})

The attributes carry the table's prefix (`prefix`: its class name in snake_case, e.g.
``rdm_comparison_duration``) so that no two tables share a secondary attribute: DataJoint refuses
to join on attributes of the same name from different tables, and ``TrainedModel * Performance``
must keep working. Every attribute is nullable or has a default, so `neurofit migrate` can add
them to tables made by an earlier release; rows computed before stay NULL / ''.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable

from neurofit.pipelines import provenance as _pipeline_provenance

__all__ = ["attributes", "columns", "prefix", "recorded"]

# One declaration per field of neurofit.pipelines.provenance.record (checked below).
_DECLARATIONS = {
    "duration": "= null: float64        # wall time of the computation (s); null: computed before neurofit recorded it",
    "neurofit_version": '= "": varchar(32)  # neurofit release that computed the row',
    "provenance": "= null: json           # git commit, host, device, python/torch/numpy/datajoint versions",
}
if tuple(_DECLARATIONS) != _pipeline_provenance.RECORD_FIELDS:  # pragma: no cover - a coding error
    raise RuntimeError("schemas.provenance declares other fields than pipelines.provenance.record returns")


def prefix(table_name: str) -> str:
    """The prefix of a table's provenance attributes: its class name in snake_case (``RDMComparison``
    -> ``rdm_comparison``)."""
    # Acronyms stay whole (RDM -> rdm, not DataJoint's r_d_m table-name spelling).
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", table_name).lower()


def columns(table_name: str) -> tuple[str, ...]:
    """The provenance attribute names of a table, e.g. ``("rdm_duration", ...)``."""
    return tuple(f"{prefix(table_name)}_{field}" for field in _DECLARATIONS)


def attributes(table_name: str) -> str:
    """The definition lines of a table's provenance attributes (secondary; append after ``---``).

    Args:
        table_name: the table's class name (the prefix is derived from it; see `prefix`).
    """
    return "\n    ".join(
        f"{column} {declaration}" for column, declaration in zip(columns(table_name), _DECLARATIONS.values())
    )


def recorded(device: str | Callable[[], str] | None = None) -> Callable[[Callable], Callable]:
    """Decorate a table's ``make_compute`` to time it and append its provenance to the results.

    ``make_insert`` then receives one more argument, a dict of the table's provenance columns
    (`columns`) to spread into the master row.

    Args:
        device: where the computation runs: a device string ("cpu" for numpy-only tables), a
            callable returning it, or None for `neurofit.pipelines.training.default_device`.
    """

    def decorate(make_compute: Callable) -> Callable:
        @functools.wraps(make_compute)
        def timed(self, key, *fetched):
            started = time.perf_counter()
            results = list(make_compute(self, key, *fetched))
            where = device() if callable(device) else device
            if where is None:
                from . import _runtime

                where = _runtime.context().device
            found = _pipeline_provenance.record(where, time.perf_counter() - started)
            names = columns(type(self).__name__)
            return [*results, dict(zip(names, (found[f] for f in _DECLARATIONS)))]

        return timed

    return decorate


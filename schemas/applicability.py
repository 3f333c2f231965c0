"""Which trained models a computed table applies to, so no job is made that can only fail.

A table that hangs on `TrainedModel` (directly, or through a selection table) declares what
its trained models' data must provide, by names from `neurofit.datasets.info.PROVIDES`::

    @schema
    class SpikeStatistics(Applicable, dj.Computed):   # Applicable first: it wraps key_source
        applies_to = ("responses",)                    # any of these; None: every trained model
        definition = '''
        -> TrainedModel
        ...
        '''

`Applicable.key_source` is the table's usual key source restricted to trained models whose
``TrainedModel.provides`` (what their `DataInfo` provides, recorded at training) holds any of
``applies_to``, so `populate`, workers and `neurofit status` never see the others. `Performance`
applies to ``("responses",)``, `TaskPerformance` to ``("labels", "targets")``; registered
analyses declare theirs with ``register("analysis", name, applies_to=...)`` and `Score` obeys
them per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from neurofit.pipelines import registry

from .training import TrainedModel

__all__ = ["Applicable", "provides_condition", "trained_models_for"]


def provides_condition(applies_to: Iterable[str]) -> str:
    """SQL condition on ``TrainedModel.provides`` (comma-joined names): provides any of them.

    Raises:
        neurofit.pipelines.registry.RegistryError: a name outside `PROVIDES`.
    """
    names = registry.check_applies_to(tuple(applies_to), "applies_to")
    # Names come from the PROVIDES vocabulary (checked above), so they are safe in SQL text. The
    # commas around the list make ',mask,' match 'responses,mask' and no longer name. POSITION
    # and CONCAT mean the same on PostgreSQL and MySQL (and need no '%', which drivers rewrite).
    return "(" + " OR ".join(f"POSITION(',{name},' IN CONCAT(',', provides, ',')) > 0" for name in names) + ")"


def trained_models_for(applies_to: Iterable[str] | None) -> Any:
    """The `TrainedModel` keys (a query) whose data provide any of ``applies_to`` (None: all)."""
    if applies_to is None:
        return TrainedModel.proj()
    return (TrainedModel & provides_condition(applies_to)).proj()


class Applicable:
    """Mixin for computed tables that apply only to some trained models (see the module docstring).

    Attributes:
        applies_to: names from `PROVIDES`; the table computes rows only for trained models whose
            data provide any of them. None (the default): every trained model.
    """

    applies_to: ClassVar[tuple[str, ...] | None] = None

    def required_provides(self) -> tuple[str, ...] | None:
        """What the data must provide (any of) for a row to be computed; None: every model."""
        return self.applies_to

    @property
    def key_source(self):
        source = super().key_source
        needs = self.required_provides()
        return source if needs is None else source & trained_models_for(needs)

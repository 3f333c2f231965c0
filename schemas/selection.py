"""What gets trained: dataset x model x trainer x seed combinations chosen explicitly."""

from __future__ import annotations

import itertools
from typing import Any, Iterable

import datajoint as dj

from ._schema import schema
from .cascading import CascadesToDerived
from .config import Dataset, Model, Seed, Trainer


def _as_keys(table, items, name: str) -> list[dict[str, Any]]:
    if isinstance(items, dict):
        items = [items]
    keys = []
    for item in items:
        restricted = table() & item
        if len(restricted) != 1:
            raise ValueError(
                f"{name} {item!r} matches {len(restricted)} rows of {table.__name__}; pass the key "
                f"returned by {table.__name__}.add(...)"
            )
        keys.append(restricted.keys()[0])
    return keys


@schema
class TrainingSelection(CascadesToDerived, dj.Manual):
    """One dataset x model x trainer x seed combination that a lab chose to train.

    `TrainedModel` trains exactly these rows, never the cross product of all configs.
    """

    definition = """
    -> Dataset
    -> Model
    -> Trainer
    -> Seed
    ---
    selected = CURRENT_TIMESTAMP: datetime
    """

    @classmethod
    def add_grid(
        cls,
        datasets: dict | Iterable[dict],
        models: dict | Iterable[dict],
        trainers: dict | Iterable[dict],
        seeds: int | Iterable[int],
    ) -> list[dict[str, Any]]:
        """Select every combination of the given configs and seeds (existing ones are kept).

        Args:
            datasets, models, trainers: keys (or lists of keys) returned by ``add``.
            seeds: seeds to train each combination with; inserted into `Seed` if new.

        Returns:
            The selected keys.
        """
        seed_keys = Seed.add(*([seeds] if isinstance(seeds, int) else list(seeds)))
        grid = [
            {**d, **m, **t, **s}
            for d, m, t, s in itertools.product(
                _as_keys(Dataset, datasets, "dataset"),
                _as_keys(Model, models, "model"),
                _as_keys(Trainer, trainers, "trainer"),
                seed_keys,
            )
        ]
        cls().insert(grid, skip_duplicates=True)
        return grid

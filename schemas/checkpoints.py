"""Per-epoch training checkpoints in the object store, so interrupted jobs resume."""

from __future__ import annotations

import io
from typing import Any

import torch

import datajoint as dj

from ._schema import schema
from .training import TrainingSelection


@schema
class Checkpoint(dj.Manual):
    """The latest training checkpoint of one selected training that has not completed yet.

    Written after every epoch by the trainer, read when a re-queued job starts, and deleted in
    the same transaction that inserts its `TrainedModel` row.
    """

    definition = """
    -> TrainingSelection
    ---
    epoch: int32                           # last completed epoch in the checkpoint
    state: <object@neurofit>               # torch.save'd dict of tensors and plain values
    saved = CURRENT_TIMESTAMP: datetime
    """


class DatabaseCheckpointer:
    """`neurofit.pipelines.training.Checkpointer` backed by the `Checkpoint` table."""

    def __init__(self, key: dict[str, Any]):
        self.key = {k: key[k] for k in TrainingSelection.primary_key}

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        row = {**self.key, "epoch": int(state.get("epoch", 0)), "state": buffer.getvalue()}
        # Replace in one transaction: a stop between delete and insert keeps the old checkpoint.
        connection = Checkpoint.connection
        if connection.in_transaction:
            (Checkpoint & self.key).delete_quick()
            Checkpoint().insert1(row)
            return
        with connection.transaction:
            (Checkpoint & self.key).delete_quick()
            Checkpoint().insert1(row)

    def load(self) -> dict[str, Any] | None:
        rows = Checkpoint & self.key
        if not rows:
            return None
        data = rows.fetch1("state").read()
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def delete(self) -> None:
        (Checkpoint & self.key).delete_quick()

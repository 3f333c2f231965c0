"""Per-epoch training checkpoints in the object store, so interrupted jobs resume."""

from __future__ import annotations

import io
import os
import time
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


INTERVAL_ENV = "NEUROFIT_CHECKPOINT_INTERVAL"
DEFAULT_INTERVAL = 30.0  # seconds of training a SIGKILL may cost; bounds the checkpoint overhead


class DatabaseCheckpointer:
    """`neurofit.pipelines.training.Checkpointer` backed by the `Checkpoint` table.

    Writes at most one checkpoint every ``interval`` seconds (``$NEUROFIT_CHECKPOINT_INTERVAL``,
    default 30), and always when the worker was asked to stop, so frequent epochs cost little
    and a SIGKILL loses at most ``interval`` seconds of training.
    """

    def __init__(self, key: dict[str, Any], interval: float | None = None):
        self.key = {k: key[k] for k in TrainingSelection.primary_key}
        self.interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)) if interval is None else interval
        self._last_save = time.monotonic()  # the job's start: the first save comes after one interval

    def save(self, state: dict[str, Any]) -> None:
        from . import _runtime

        if time.monotonic() - self._last_save < self.interval and not _runtime.stop_requested():
            return
        self._last_save = time.monotonic()
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

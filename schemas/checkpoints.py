"""Per-epoch training checkpoints in the object store, so interrupted jobs resume.

A stored checkpoint is self-describing, so that a damaged or misplaced one is never trained on
(the `Checkpoint` table itself holds only the epoch and a reference to the stored file)::

    MAGIC                      b"NEUROFIT-CHECKPOINT\n"
    header length              4 bytes, big-endian
    header                     UTF-8 JSON: {"envelope": 1, "key": <TrainingSelection key>,
                               "epoch": int, "payload_bytes": int, "sha256": <hex of payload>}
    payload                    torch.save(state)

`DatabaseCheckpointer.load` checks all of it before ``torch.load`` runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import time
from typing import Any

import datajoint as dj
import torch

from ._schema import schema
from .connection import STORE
from .selection import TrainingSelection
from .storage import read_stored

log = logging.getLogger(__name__)

MAGIC = b"NEUROFIT-CHECKPOINT\n"
ENVELOPE_VERSION = 1
_LENGTH = struct.Struct(">I")
_MAX_HEADER = 1 << 20  # a key and a checksum need a few hundred bytes; more means garbage
_ZIP = b"PK\x03\x04"  # how a bare torch.save file starts


@schema
class Checkpoint(dj.Manual):
    """The latest training checkpoint of one selected training that has not completed yet.

    Written after every epoch by the trainer, read when a re-queued job starts, and deleted in
    the same transaction that inserts its `TrainedModel` row. The stored ``state`` is the
    ``torch.save`` payload sealed with its key and checksum (module docstring); see
    `DatabaseCheckpointer` for what happens to one that does not verify.
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


class CheckpointError(ValueError):
    """A stored checkpoint that cannot be trusted: damaged, truncated, unverifiable or another job's."""


def _plain_key(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` as JSON values (databases may return numpy integers), in primary-key order."""
    return {
        k: (key[k].item() if hasattr(key[k], "item") else key[k]) for k in TrainingSelection.primary_key
    }


def seal(key: dict[str, Any], epoch: int, payload: bytes) -> bytes:
    """Wraps ``payload`` (``torch.save`` bytes) in the envelope that `unseal` verifies."""
    header = json.dumps({
        "envelope": ENVELOPE_VERSION,
        "key": _plain_key(key),
        "epoch": int(epoch),
        "payload_bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }, sort_keys=True).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(header)), header, payload])


def unseal(data: bytes, key: dict[str, Any], epoch: int) -> bytes:
    """The payload of a sealed checkpoint of ``key`` at ``epoch``, verified.

    Raises:
        CheckpointError: if ``data`` is empty, has no envelope (also a checkpoint written before
            neurofit sealed them: it cannot be verified), is truncated or extended, fails its
            checksum, or belongs to another training or epoch. The message says which.
    """
    if not data:
        raise CheckpointError("the stored file is empty")
    if not data.startswith(MAGIC):
        if data.startswith(_ZIP):
            raise CheckpointError(
                "it has no integrity header (written by a neurofit version before checkpoints were "
                "checksummed), so it cannot be verified"
            )
        raise CheckpointError("it is not a neurofit checkpoint (unknown header)")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise CheckpointError(f"it is truncated ({len(data)} bytes, inside its header)")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > _MAX_HEADER or len(data) < start + length:
        raise CheckpointError(
            f"it is truncated or damaged (header of {length} bytes, file of {len(data)})"
        )
    try:
        header = json.loads(data[start:start + length].decode())
        version, stored_key = header["envelope"], header["key"]
        stored_epoch, size, digest = header["epoch"], header["payload_bytes"], header["sha256"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"its header is damaged ({type(error).__name__})") from None
    if version != ENVELOPE_VERSION:
        raise CheckpointError(
            f"envelope version {version!r} is not supported (this neurofit reads {ENVELOPE_VERSION})"
        )
    expected = json.loads(json.dumps(_plain_key(key)))
    if stored_key != expected:
        raise CheckpointError(f"it belongs to another training: {_describe(stored_key)}")
    if stored_epoch != int(epoch):
        raise CheckpointError(f"it holds epoch {stored_epoch!r}, but its row says epoch {epoch}")
    payload = data[start + length:]
    if len(payload) != size:
        state = "truncated" if len(payload) < size else "longer than written"
        raise CheckpointError(f"it is {state} ({len(payload)} of {size} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            "its checksum does not match: the stored bytes changed after they were written"
        )
    return payload


def _describe(key: dict[str, Any]) -> str:
    """A short text for a TrainingSelection key: builder names, 8 hash characters, the seed."""
    try:
        kinds = [
            f"{kind}={key[f'{kind}_fn']}:{str(key[f'{kind}_hash'])[:8]}"
            for kind in ("dataset", "model", "trainer")
        ]
        return "(" + ", ".join([*kinds, f"seed={key['seed']}"]) + ")"
    except (KeyError, TypeError):
        return repr(key)


class DatabaseCheckpointer:
    """`neurofit.pipelines.training.Checkpointer` backed by the `Checkpoint` table.

    Writes at most one checkpoint every ``interval`` seconds (``$NEUROFIT_CHECKPOINT_INTERVAL``,
    default 30), and always when the worker was asked to stop, so frequent epochs cost little
    and a SIGKILL loses at most ``interval`` seconds of training.

    Every checkpoint is sealed (see the module docstring) with this job's key, its epoch and a
    sha256 of the ``torch.save`` payload. `load` verifies the seal before ``torch.load``; a
    checkpoint that fails (missing or unreadable file, empty, truncated, garbage, a changed byte,
    another job's, one ``torch.load`` refuses) is discarded: a warning names it, its row is
    deleted, and the training restarts from scratch. A checkpoint written before checkpoints
    were sealed cannot be verified and is discarded the same way. A trainer that refuses a
    verified checkpoint (another layout, other settings) calls `discard`, with the same result.
    """

    def __init__(self, key: dict[str, Any], interval: float | None = None, stop_requested=None):
        self.key = {k: key[k] for k in TrainingSelection.primary_key}
        # A pending stop saves at once: the job is about to go back to the queue.
        self.stop_requested = stop_requested or (lambda: False)
        self.interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)) if interval is None else interval
        self._last_save = time.monotonic()  # the job's start: the first save comes after one interval
        self._loaded: tuple[int, Any] | None = None  # (epoch, stored ref) of the last `load`

    def save(self, state: dict[str, Any]) -> None:
        if time.monotonic() - self._last_save < self.interval and not self.stop_requested():
            return
        self._last_save = time.monotonic()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        epoch = int(state.get("epoch", 0))
        row = {**self.key, "epoch": epoch, "state": seal(self.key, epoch, buffer.getvalue())}
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
        """The verified checkpoint of this job, or None (none saved, or discarded as untrustworthy)."""
        rows = Checkpoint & self.key
        if not rows:
            return None
        epoch, ref = rows.fetch1("epoch", "state")
        self._loaded = (int(epoch), ref)
        try:
            data = read_stored(ref)
        except Exception as error:  # noqa: BLE001 - missing or unreadable: nothing to resume from
            self.discard(f"the stored file could not be read ({_brief(error)})")
            return None
        try:
            payload = unseal(data, self.key, epoch)
        except CheckpointError as error:
            self.discard(str(error))
            return None
        try:
            return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - verified bytes torch cannot read: a trainer bug
            self.discard(f"torch.load(weights_only=True) could not read it ({_brief(error)})")
            return None

    def discard(self, reason: str) -> None:
        """Logs a warning naming the checkpoint and ``reason``, and deletes its row.

        The training then starts from scratch. The stored file stays until ``neurofit gc --delete``.
        """
        epoch, ref = self._loaded if self._loaded is not None else (None, None)
        where = f"{ref.store or STORE}:{ref.path}" if ref is not None else "unknown"
        log.warning(
            "discarding the checkpoint of %s (epoch %s, stored at %s): %s. "
            "The training restarts from scratch.",
            _describe(self.key), epoch, where, reason,
        )
        self.delete()
        self._loaded = None

    def delete(self) -> None:
        (Checkpoint & self.key).delete_quick()


def _brief(error: BaseException) -> str:
    """Type and first line of an error, at most 200 characters (torch's run to paragraphs)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__

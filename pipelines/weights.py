"""State dicts to bytes or files and back: the format of the weights in the object store.

Where 50 MB of weights spent their time (``benchmarks/weights_store.py``): `torch.save` into a
``BytesIO`` (grown by copying, through a Python callback), torch's own CRC32 of every zip record,
one full copy into the store and one out of it, and a sha256 pass on each side. The streamed
functions here write the zip once, straight into the destination, without torch's CRC32 (the
sha256 beside the weights supersedes it), hash the chunks while they are hot in cache, and read
back through a memory map: hash and load touch the page cache, never a private copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

import torch

HASH_CHUNK = 1 << 22  # bytes hashed at a time when reading a file (4 MiB: fits in cache)


@contextlib.contextmanager
def _without_torch_crc32() -> Iterator[None]:
    """`torch.save` without its per-record CRC32: our sha256 covers every byte already.

    torch.load reads such files; only third-party unzip tools would warn about the CRC.
    """
    from torch.utils.serialization import config

    previous = config.save.compute_crc32
    config.save.compute_crc32 = False
    try:
        yield
    finally:
        config.save.compute_crc32 = previous


def cpu_state_dict(state_dict: dict[str, torch.Tensor]) -> OrderedDict:
    """The state dict with every tensor detached and on the CPU (CPU tensors are not copied).

    Moving to the CPU first means weights trained on a GPU load on any machine.
    """
    return OrderedDict((name, tensor.detach().cpu()) for name, tensor in state_dict.items())


def state_dict_to_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Serialise a state dict with `torch.save`, tensors moved to the CPU."""
    buffer = io.BytesIO()
    with _without_torch_crc32():
        torch.save(cpu_state_dict(state_dict), buffer)
    return buffer.getvalue()


def state_dict_from_bytes(data: bytes, map_location: str | torch.device = "cpu") -> dict:
    """Inverse of `state_dict_to_bytes`; ``weights_only=True`` so loading never runs code."""
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def checksum(data: bytes) -> str:
    """sha256 hex digest, stored beside the weights to detect a corrupted or swapped file."""
    return hashlib.sha256(data).hexdigest()


class HashingWriter:
    """A write-only binary file that passes writes through and hashes them (sha256) on the way.

    Attributes:
        size: bytes written so far.
    """

    def __init__(self, file: BinaryIO):
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._hash.update(data)  # releases the GIL for large chunks
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def hexdigest(self) -> str:
        """sha256 of everything written."""
        return self._hash.hexdigest()


def write_state_dict(state_dict: dict[str, torch.Tensor], file: BinaryIO) -> tuple[str, int]:
    """`torch.save` a state dict (tensors on the CPU) into an open binary file.

    Returns:
        ``(sha256 hex digest, size in bytes)`` of what was written: the same digest
        `checksum` gives for the file's bytes.
    """
    writer = HashingWriter(file)
    with _without_torch_crc32():
        torch.save(cpu_state_dict(state_dict), writer)
    return writer.hexdigest(), writer.size


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read through a memory map (no copy of its bytes into Python)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return digest.hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for start in range(0, len(view), HASH_CHUNK):
                    digest.update(view[start:start + HASH_CHUNK])
            finally:
                view.release()
    return digest.hexdigest()


class ChecksumError(OSError):
    """Stored bytes do not match the checksum recorded beside them."""


def load_state_dict_file(
    path: str | os.PathLike, expected_sha256: str, map_location: str | torch.device = "cpu", *, what: str = "weights"
) -> dict:
    """Verify a stored state-dict file against its sha256, then load it (``weights_only=True``).

    The tensors are memory-mapped from the file (``mmap=True``) when they stay on the CPU: the
    hash has just brought its pages into the cache, so loading copies nothing more.

    Raises:
        ChecksumError: the file's sha256 differs from ``expected_sha256``; nothing was loaded.
    """
    found = file_sha256(path)
    if found != expected_sha256:
        raise ChecksumError(
            f"stored {what} {os.fspath(path)} do not match their checksum (sha256 {found[:12]}..., "
            f"expected {expected_sha256[:12]}...): the file was changed or corrupted after it was "
            "written; delete its row and compute it again"
        )
    on_cpu = torch.device(map_location).type == "cpu"
    return torch.load(path, map_location=map_location, weights_only=True, mmap=on_cpu)

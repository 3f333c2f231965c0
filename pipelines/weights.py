"""State dicts to bytes and back: the format of the weights in the object store."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict

import torch


def state_dict_to_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Serialise a state dict with `torch.save`, tensors moved to the CPU.

    Moving to the CPU first means weights trained on a GPU load on any machine.
    """
    cpu = OrderedDict((name, tensor.detach().cpu()) for name, tensor in state_dict.items())
    buffer = io.BytesIO()
    torch.save(cpu, buffer)
    return buffer.getvalue()


def state_dict_from_bytes(data: bytes, map_location: str | torch.device = "cpu") -> dict:
    """Inverse of `state_dict_to_bytes`; ``weights_only=True`` so loading never runs code."""
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def checksum(data: bytes) -> str:
    """sha256 hex digest, stored beside the weights to detect a corrupted or swapped file."""
    return hashlib.sha256(data).hexdigest()

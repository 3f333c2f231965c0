"""Dataset artefacts: facts about a dataset stored once per dataset, not with every trained model.

A dataset builder may return ``DataBundle.artefacts``: ``{name: numpy array | JSON-able dict}``,
typically the ground truth of simulated data. They are encoded here to bytes with a fixed,
reproducible layout (arrays as ``.npy`` without pickles, dicts as canonical JSON with sorted keys),
so that the same artefact always has the same checksum and a builder that returns different
content for the same config is caught when it is stored (``neurofit.schemas.DatasetArtefact``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .info import jsonable

__all__ = [
    "ARTEFACT_FORMATS",
    "EncodedArtefact",
    "check_artefact",
    "decode_artefact",
    "encode_artefact",
]

#: Storage formats: numpy arrays as .npy bytes, dicts as UTF-8 canonical JSON.
ARTEFACT_FORMATS = ("npy", "json")

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class EncodedArtefact:
    """One artefact ready for the object store.

    Attributes:
        name: the artefact's name within its dataset.
        format: one of `ARTEFACT_FORMATS`.
        content: the encoded bytes.
        sha256: hex checksum of ``content``.
        description: dtype and shape of an array (e.g. "float64 (2, 60, 32, 32)"), "json" for dicts.
    """

    name: str
    format: str
    content: bytes
    sha256: str
    description: str


def check_artefact(name: Any, value: Any) -> None:
    """Raises ValueError unless ``name`` is a valid artefact name and ``value`` an array or dict.

    Raises:
        ValueError: naming the artefact and what is allowed.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"artefact name {name!r}: use 1-64 letters, digits and '_', '.', '-' (not starting "
            "with "
            "'.' or '-'), e.g. 'ground_truth' or 'session_0.filters'"
        )
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise ValueError(
                f"artefact {name!r} is an object array; store numbers, or a JSON-able dict"
            )
    elif not isinstance(value, dict):
        raise ValueError(
            f"artefact {name!r} is a {type(value).__name__}; an artefact is a numpy array or a "
            "JSON-able dict"
        )


def encode_artefact(name: str, value: np.ndarray | dict) -> EncodedArtefact:
    """Encodes one artefact to reproducible bytes.

    Raises:
        ValueError: invalid name or value, or a dict that is not JSON-serialisable.
    """
    check_artefact(name, value)
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        content, kind = buffer.getvalue(), "npy"
        description = f"{array.dtype} {tuple(array.shape)}"
    else:
        try:
            text = json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"artefact {name!r} is not JSON-serialisable ({error})") from error
        content, kind, description = text.encode(), "json", "json"
    return EncodedArtefact(name, kind, content, hashlib.sha256(content).hexdigest(), description)


def decode_artefact(format: str, content: bytes) -> np.ndarray | dict:
    """Inverse of `encode_artefact` (arrays load without pickles).

    Raises:
        ValueError: an unknown format.
    """
    if format == "npy":
        return np.load(io.BytesIO(content), allow_pickle=False)
    if format == "json":
        return json.loads(content.decode())
    raise ValueError(
        f"unknown artefact format {format!r}; neurofit writes {list(ARTEFACT_FORMATS)}"
    )

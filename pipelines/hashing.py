"""Typed, canonical hashing of configs.

A config is a dict of hyperparameters. Its key in the database is the md5 of one canonical,
typed text encoding, so the same config always gets the same key and different configs never
collide by accident (unlike hashing ``str(config)``, where ``1 == "1"`` and ``True == "True"``).

Policy, pinned by a golden file of hashes (``tests/unit/golden_hashes.json``):

- ``1``, ``1.0``, ``"1"``, ``True`` and ``None`` are five different values.
- Dict key order never matters, at any depth. Keys must be strings.
- Lists and tuples are the same: both become lists. Configs come from YAML and JSON files, which
  have no tuples, and a builder receives exactly what is stored, so a tuple could not survive a
  round trip anyway.
- numpy scalars count as the Python value they hold (``np.float32(0.5)`` == ``0.5``).
- numpy arrays hash by dtype (byte order normalised to little-endian), shape and raw bytes, so
  ``np.array([1, 2])`` differs from ``[1, 2]`` and from ``np.array([1., 2.])``.
- NaN and infinity are rejected (NaN != NaN makes equality undefined; write None instead), as
  are sets, bytes, functions and any other object: a config must stay small and declarative.

The same encoding is the exact stored value of a config (``encode_config``/``decode_config``
round-trip losslessly), so the hash of a stored row can always be recomputed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import numpy as np

HASH_VERSION = 1
_ARRAY_TAG = "__ndarray__"


class ConfigError(ValueError):
    """A config holds a value neurofit cannot hash or store exactly."""


def canonicalize(value: Any, path: str = "config") -> Any:
    """Convert a config into its canonical JSON-compatible tree.

    Args:
        value: the config or any value inside it.
        path: where ``value`` sits, used in error messages (e.g. ``config['layers'][2]``).

    Returns:
        A tree of dict (str keys), list, str, int, float, bool and None; arrays become
        ``{"__ndarray__": {"dtype", "shape", "data"}}``.

    Raises:
        ConfigError: naming the path and the type of the first unsupported value.
    """
    # bool before int: bool is a subclass of int and must stay distinct from 1.
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(
                f"{path} is {number!r}: NaN and infinity cannot be hashed (NaN != NaN). "
                "Use None for a missing value."
            )
        return number
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"{path} has the key {key!r} of type {type(key).__name__}; config keys must "
                    "be strings (YAML and JSON keys are strings too)."
                )
            if key == _ARRAY_TAG:
                raise ConfigError(f"{path} uses the reserved key {_ARRAY_TAG!r}; rename it.")
            out[key] = canonicalize(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [canonicalize(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ConfigError(
                f"{path} is an array of dtype {value.dtype}; only bool, integer and float "
                "arrays can be hashed."
            )
        little = value.astype(value.dtype.newbyteorder("<"), copy=False)
        return {
            _ARRAY_TAG: {
                "dtype": little.dtype.str,
                "shape": list(value.shape),
                "data": base64.b64encode(np.ascontiguousarray(little).tobytes()).decode("ascii"),
            }
        }
    raise ConfigError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}; a config may hold only "
        "None, bool, int, float (finite), str, lists/tuples, dicts with string keys, numpy "
        "scalars and numpy arrays. Put a name or a number in the config instead of the object."
    )


def encode_config(config: dict[str, Any]) -> str:
    """The exact, canonical text of a config: what is hashed and stored.

    Args:
        config: a dict of hyperparameters.

    Returns:
        Compact JSON with sorted keys (ASCII only).
    """
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a dict, got {type(config).__name__}")
    return json.dumps(
        canonicalize(config), sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def _decode_tree(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {_ARRAY_TAG}:
            spec = node[_ARRAY_TAG]
            data = base64.b64decode(spec["data"])
            return np.frombuffer(data, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
        return {key: _decode_tree(item) for key, item in node.items()}
    if isinstance(node, list):
        return [_decode_tree(item) for item in node]
    return node


def decode_config(text: str | bytes) -> dict[str, Any]:
    """Inverse of `encode_config`: the config a builder receives.

    Args:
        text: output of `encode_config` (str or utf-8 bytes).

    Returns:
        The config, with arrays restored as numpy arrays and tuples as lists.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    return _decode_tree(json.loads(text))


def config_hash(config: dict[str, Any]) -> str:
    """md5 hex digest (32 characters) of the canonical encoding of a config.

    Examples:
        >>> config_hash({"a": 1}) != config_hash({"a": 1.0})
        True
    """
    return hashlib.md5(encode_config(config).encode("utf-8")).hexdigest()


def to_queryable(config: dict[str, Any]) -> Any:
    """The config as plain JSON for database queries: arrays become nested lists.

    Not exact (an array and a list look alike here); the exact value is `encode_config`.
    """

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {_ARRAY_TAG}:
                return _decode_tree(node).tolist()
            return {key: plain(item) for key, item in node.items()}
        if isinstance(node, list):
            return [plain(item) for item in node]
        return node

    return plain(canonicalize(config))

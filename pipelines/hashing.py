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

This is policy version 1 (`HASH_VERSION`, stored in every config row); a change that would give
any existing config another hash needs a new version. Builders evolve without one: a builder
that gains a hyperparameter declares it ``register(..., added=("name",))`` with a default that
reproduces the old behaviour, and at that default it is left out of the hashed and stored config
(`neurofit.pipelines.registry.Builder.hashed_config`). Existing rows keep their keys, and
re-adding an old config, with or without the new hyperparameter spelled out, finds its old row.

Bounds, the same on every database backend (MariaDB rejects JSON nested 31 levels deep,
PostgreSQL does not; PostgreSQL rejects NUL in text, MariaDB's JSON check rejects NaN), checked
by `check_bounds` with an explicit stack before anything is expanded, hashed or stored:

- at most ``MAX_DEPTH`` = 20 levels of nested dicts and lists (the config itself is level 1; an
  n-dimensional array counts as n levels, as it does in the queryable JSON copy);
- at most ``MAX_NODES`` = 10,000 values, counting every dict, list, dict key, scalar and array
  element; a value reached twice (the same list object used twice, or a YAML alias) counts
  every time, because it is stored every time;
- at most ``MAX_TEXT_BYTES`` = 64 KiB of canonical text (the stored, hashed encoding);
- strings and keys without NUL characters or lone surrogates (they are not valid UTF-8 text);
- floats finite, in arrays too; integers of at most 14,000 bits (Python will not print longer).

They apply to what is stored: the complete config, defaults included. Every function here that
walks a config checks them first (`canonicalize`), and so does `Builder.validate` before the
registry looks at any value. A config past a bound raises `ConfigError` naming where it breaks
it; a config is meant to be small and declarative (large data belongs in a dataset, found
through a path in the config). Config files are bounded the same way before they are even
built (`neurofit.pipelines.config_files`).
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
MAX_DEPTH = 20
MAX_NODES = 10_000
MAX_TEXT_BYTES = 64 * 1024


class ConfigError(ValueError):
    """A config holds a value neurofit cannot hash or store exactly."""


# Python refuses to turn longer integers into text (sys.set_int_max_str_digits): refuse them here.
_MAX_INT_BITS = 14_000


def _render(where: Any) -> str:
    """A path kept as a chain ``(parent, key)`` (cheap to build), as text for a message."""
    parts = []
    while isinstance(where, tuple):
        where, key = where
        text = repr(key)
        parts.append(f"[{text[:60] + '...' if len(text) > 60 else text}]")
    return where + "".join(reversed(parts))


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored as text on every backend, or None if it can."""
    if "\x00" in text:
        return "a NUL character ('\\x00')"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return f"the lone surrogate {text[error.start]!r}, which is not valid UTF-8"
    return None


def _refuse(where: Any, problem: str) -> ConfigError:
    return ConfigError(f"{_render(where)} {problem}")


def check_bounds(value: Any, path: str = "config") -> None:
    """Refuse a config past the bounds in the module docstring, without expanding it.

    The walk uses an explicit stack (no recursion limit) and stops at the first violation, so it
    takes at most about ``MAX_NODES`` steps whatever the config holds: shared or cyclic
    references, and huge lists, are refused before they are expanded.

    Args:
        value: the config or any value inside it.
        path: where ``value`` sits, used in error messages.

    Raises:
        ConfigError: naming the path of the first value past a bound.
    """
    nodes = 1
    text = 0  # a lower bound on the length of the canonical text
    stack: list[tuple[Any, int, Any]] = [(value, 0, path)]  # (value, containers around it, path)
    while stack:
        node, level, where = stack.pop()
        if node is None or isinstance(node, (bool, np.bool_)):
            text += 4
        elif isinstance(node, (int, np.integer)):
            if int(node).bit_length() > _MAX_INT_BITS:
                raise _refuse(where, f"is an integer of more than {_MAX_INT_BITS} bits; that is not a hyperparameter")
            text += 1
        elif isinstance(node, (float, np.floating)):
            if not math.isfinite(float(node)):
                raise _refuse(where, f"is {float(node)!r}: NaN and infinity cannot be hashed (NaN != NaN). "
                              "Use None for a missing value.")
            text += 3
        elif isinstance(node, str):
            problem = text_problem(node)
            if problem:
                raise _refuse(where, f"contains {problem}; config text must be valid UTF-8 without NUL "
                              "characters (no database backend stores them as text). Remove it.")
            text += len(node) + 2
        elif isinstance(node, (dict, list, tuple)):
            _check_depth(where, level + 1)
            nodes += len(node) * (2 if isinstance(node, dict) else 1)
            _check_nodes(nodes)
            text += 1 + max(len(node), 1)  # brackets and commas
            if isinstance(node, dict):
                for key, item in node.items():
                    if isinstance(key, str):
                        problem = text_problem(key)
                        if problem:
                            raise _refuse(where, f"has a key that contains {problem}; keys must be valid "
                                          "UTF-8 text without NUL characters. Rename it.")
                        text += len(key) + 3
                    stack.append((item, level + 1, (where, key)))
            else:
                stack.extend((item, level + 1, (where, i)) for i, item in enumerate(node))
        elif isinstance(node, np.ndarray):
            _check_depth(where, level + node.ndim)
            nodes += node.size
            _check_nodes(nodes)
            text += (node.nbytes * 4) // 3
            if node.dtype.kind == "f" and text <= MAX_TEXT_BYTES and not np.isfinite(node).all():
                raise _refuse(where, "is an array holding NaN or infinity; arrays in a config must be "
                              "finite (NaN != NaN makes equality undefined, and JSON has no NaN).")
        if text > MAX_TEXT_BYTES:
            raise ConfigError(
                f"{path} holds more than {MAX_TEXT_BYTES // 1024} KiB of canonical text (past "
                f"{_render(where)}); a config holds hyperparameters, not data: put large data in a "
                "dataset and name it (a path) in the config."
            )


def _check_depth(where: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(
            where,
            f"is nested more than {MAX_DEPTH} levels deep; a config may nest at most {MAX_DEPTH} "
            "levels of dicts and lists (an n-dimensional array counts n), the same on every "
            "database backend. Flatten it.",
        )


def _check_nodes(nodes: int) -> None:
    if nodes > MAX_NODES:
        raise ConfigError(
            f"config holds more than {MAX_NODES:,} values (dicts, lists, keys, scalars and array "
            "elements, counting a value each time it is referenced, as in YAML aliases); a config "
            f"may hold at most {MAX_NODES:,}. Put large data in a dataset and name it (a path) in "
            "the config."
        )


def canonicalize(value: Any, path: str = "config") -> Any:
    """Convert a config into its canonical JSON-compatible tree.

    Args:
        value: the config or any value inside it.
        path: where ``value`` sits, used in error messages (e.g. ``config['layers'][2]``).

    Returns:
        A tree of dict (str keys), list, str, int, float, bool and None; arrays become
        ``{"__ndarray__": {"dtype", "shape", "data"}}``.

    Raises:
        ConfigError: naming the path and the type of the first unsupported value, or of the
            first value past a bound (`check_bounds`).
    """
    check_bounds(value, path)
    return _canonical(value, path)


def _canonical(value: Any, path: str) -> Any:
    # Recursion is safe here: check_bounds has limited the depth to MAX_DEPTH.
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
            out[key] = _canonical(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{path}[{i}]") for i, item in enumerate(value)]
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

    Raises:
        ConfigError: a value that cannot be hashed, or a config past a bound.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"a config must be a dict, got {type(config).__name__}")
    text = json.dumps(
        canonicalize(config), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    if len(text) > MAX_TEXT_BYTES:  # ASCII only, so characters are bytes
        raise ConfigError(
            f"config holds {len(text):,} bytes of canonical text, more than {MAX_TEXT_BYTES // 1024} "
            "KiB; a config holds hyperparameters, not data: put large data in a dataset and name it "
            "(a path) in the config."
        )
    return text


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

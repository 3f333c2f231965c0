"""Reading config files (YAML, or JSON, a subset of YAML) safely and the way scientists write them.

- **Bounded before anything is built.** The event stream is checked first, with the limits of
  `neurofit.pipelines.hashing` (``MAX_DEPTH`` levels, ``MAX_NODES`` values counting every key
  and every expansion of an alias ``*name``), so an alias bomb or 100,000 nested brackets is
  refused in milliseconds instead of filling memory. Files over ``MAX_FILE_BYTES`` are refused
  unread.
- **No duplicate keys.** ``lr: 0.1`` then ``lr: 0.01`` in one mapping is an error naming both
  lines, not a silent last-one-wins. (Keys merged in with ``<<:`` may be overridden, as YAML
  intends.)
- **YAML 1.2 floats.** ``1e-3``, ``1E5`` and ``2.5e3`` are floats (PyYAML's YAML 1.1 rules read
  them as strings). Everything else follows PyYAML's safe loader (``yes``/``no`` stay booleans).
- **Every error names the file**, a line where it helps, and the fix; text must be UTF-8.
- PyYAML's C loader (libyaml) is used when it is installed, the pure-Python one otherwise.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import yaml

from .hashing import MAX_DEPTH, MAX_NODES, ConfigError

MAX_FILE_BYTES = 1024 * 1024

_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 core-schema floats with an exponent, which YAML 1.1 (PyYAML) reads as strings:
# 1e-3, 1E5, 2.5e3, .5e-2. Forms without an exponent are floats in YAML 1.1 already.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class ConfigFileError(ConfigError):
    """A config file cannot be read, parsed or accepted; the message names the file."""


class _DuplicateKey(yaml.YAMLError):
    pass


def _make_loader(base: type) -> type:
    """``base`` (a PyYAML safe loader) with YAML 1.2 floats and no duplicate keys."""

    class Loader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                _refuse_duplicate_keys(self, node)
            return super().construct_mapping(node, deep=deep)

    Loader.__name__ = Loader.__qualname__ = f"Config{base.__name__}"
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
    return Loader


def _refuse_duplicate_keys(loader, node: yaml.MappingNode) -> None:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:
            continue  # an unhashable key: PyYAML's own error follows
        if first is not key_node:
            raise _DuplicateKey(
                f"the key {key!r} appears twice in one mapping ({_where(first)} and "
                f"{_where(key_node)}); keep one of them"
            )


# The C loader when libyaml is installed; the pure-Python one (also used by the tests) otherwise.
PythonConfigLoader = _make_loader(yaml.SafeLoader)
ConfigLoader = _make_loader(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else PythonConfigLoader


def _stream(text: str, name: str) -> io.StringIO:
    # PyYAML names the stream in its messages after a `name` attribute.
    stream = io.StringIO(text)
    stream.name = name
    return stream


def _where(item) -> str:
    """The position of a YAML event or node, as people count (from 1)."""
    return f"line {item.start_mark.line + 1}, column {item.start_mark.column + 1}"


def check_events(text: str, name: str, loader: type | None = None) -> None:
    """Refuse YAML nested or expanding past the config bounds, before any node is built.

    Aliases count the size of what they refer to, so ``MAX_NODES`` bounds the expanded config.

    Raises:
        ConfigFileError: naming the file, the line and the bound.
        yaml.YAMLError: text that is not YAML (reported by the caller).
    """
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) of the anchored node
    open_: list[list] = []  # per open collection: [values, levels, anchor]
    total = 0

    def close(size: int, height: int, anchor: str | None) -> None:
        if anchor is not None:
            anchors[anchor] = (size, height)
        if open_:
            open_[-1][0] += size
            open_[-1][1] = max(open_[-1][1], height + 1)

    loader = (loader or ConfigLoader)(_stream(text, name))
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(open_) + 1 > MAX_DEPTH:
                    raise ConfigFileError(
                        f"config file {name!r} is nested more than {MAX_DEPTH} levels deep at "
                        f"{_where(event)}; a config may nest at most {MAX_DEPTH} levels of "
                        "mappings and lists. Flatten it."
                    )
                open_.append([1, 1, event.anchor])
                total += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                close(*open_.pop())
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                close(1, 0, event.anchor)
            elif isinstance(event, yaml.AliasEvent):
                size, height = anchors.get(event.anchor, (1, 0))  # undefined: the loader says so
                if len(open_) + height > MAX_DEPTH:
                    raise ConfigFileError(
                        f"config file {name!r}: the alias *{event.anchor} at {_where(event)} nests "
                        f"the config more than {MAX_DEPTH} levels deep; a config may nest at most "
                        f"{MAX_DEPTH} levels of mappings and lists."
                    )
                total += size
                close(size, height, None)
            if total > MAX_NODES:
                raise ConfigFileError(
                    f"config file {name!r} holds more than {MAX_NODES:,} values (keys and values, "
                    f"each alias counted as what it expands to) by {_where(event)}; a config may "
                    f"hold at most {MAX_NODES:,}. Put large data in a dataset and name it (a path) "
                    "in the config."
                )
    finally:
        loader.dispose()


def parse_config_text(text: str, name: str = "<text>", loader: type | None = None) -> dict[str, Any]:
    """Parse a config from YAML/JSON text; the top level must be a mapping (empty text: ``{}``).

    Args:
        text: the file's content.
        name: how messages name its source, e.g. ``model.yaml``.
        loader: the loader class (default `ConfigLoader`; `PythonConfigLoader` without libyaml).

    Raises:
        ConfigFileError: past a bound, duplicate keys, not YAML, or not a mapping.
    """
    try:
        check_events(text, name, loader)
        instance = (loader or ConfigLoader)(_stream(text, name))
        try:
            config = instance.get_single_data()
        finally:
            instance.dispose()
    except _DuplicateKey as error:
        raise ConfigFileError(f"config file {name!r}: {error}") from None
    except yaml.YAMLError as error:
        if "maximum nesting depth" in str(error):  # libyaml's own limit (1000) is past ours
            raise ConfigFileError(
                f"config file {name!r} is nested more than {MAX_DEPTH} levels deep; a config may "
                f"nest at most {MAX_DEPTH} levels of mappings and lists. Flatten it."
            ) from None
        raise ConfigFileError(f"config file {name!r} is not valid YAML: {error}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigFileError(
            f"config file {name!r} must hold a mapping of hyperparameter: value, "
            f"not a {type(config).__name__}"
        )
    return config


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file: UTF-8, at most ``MAX_FILE_BYTES``, a mapping on top.

    Raises:
        FileNotFoundError: no such file.
        ConfigFileError: anything else wrong with it, naming the file.
    """
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise ConfigFileError(f"config file {name!r} is a folder; give the path of a YAML or JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {name!r} does not exist")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigFileError(f"config file {name!r} cannot be read: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigFileError(
            f"config file {name!r} is larger than {MAX_FILE_BYTES // 1024} KiB; a config holds "
            "hyperparameters, not data: put large data in a dataset and name it (a path) in the config."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigFileError(
            f"config file {name!r} is not UTF-8 text: byte 0x{raw[error.start]:02x} on line {line} "
            f"(byte offset {error.start}) cannot be decoded. Save the file as UTF-8."
        ) from None
    return parse_config_text(text, name)

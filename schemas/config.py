"""Config tables: one row per (builder function, complete hyperparameters), keyed by hash.

Everything a row holds is checked before the database sees it, with the same rules on every
backend: the config's bounds (`neurofit.pipelines.hashing`), its hyperparameter names and types
(`neurofit.pipelines.registry`), and the comment and owner (length, valid text). An error is a
`ValueError` subclass naming the problem; no row is written.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any, ClassVar

import datajoint as dj

from neurofit.pipelines import config_files, hashing, registry

from ._schema import schema
from .cascading import CascadesToDerived


class ConfigTable:
    """Shared behaviour of `Dataset`, `Model` and `Trainer`: idempotent, validated insertion."""

    kind: ClassVar[str]

    @classmethod
    def key_for(cls, fn: str, config: dict[str, Any] | None = None) -> tuple[dict[str, str], dict]:
        """The key a config gets, without inserting anything.

        The builder is resolved through the registry (unknown names raise), the config is
        checked against the bounds, the builder's signature and its annotations, completed with
        its defaults, then hashed.

        Returns:
            (key, the config as stored: complete, except hyperparameters the builder declares
            ``added`` that sit at their defaults).

        Raises:
            neurofit.pipelines.registry.RegistryError: unknown builder, or unknown, missing or
                mistyped hyperparameters.
            neurofit.pipelines.hashing.ConfigError: a value that cannot be hashed, or a config
                past a bound.
        """
        builder = registry.resolve(cls.kind, fn)
        stored = builder.hashed_config(builder.validate(config))
        key = {f"{cls.kind}_fn": fn, f"{cls.kind}_hash": hashing.config_hash(stored)}
        return key, stored

    @classmethod
    def add(
        cls, fn: str, config: dict[str, Any] | None = None, *, comment: str = "", owner: str | None = None
    ) -> dict[str, str]:
        """Insert a config (or find the identical one already there) and return its key.

        Inserting the same config again, with defaults omitted or spelled out, returns the same
        key and writes nothing.

        Raises:
            neurofit.pipelines.registry.RegistryError: unknown builder or bad hyperparameters.
            neurofit.pipelines.hashing.ConfigError: a value that cannot be hashed, a config past
                a bound, or a comment or owner that cannot be stored.
        """
        check_text("comment", comment, MAX_COMMENT)
        if owner is not None:
            check_text("owner", owner, MAX_OWNER)
        key, complete = cls.key_for(fn, config)
        if not (cls() & key):
            row = {
                **key,
                f"{cls.kind}_config": hashing.encode_config(complete).encode("utf-8"),
                f"{cls.kind}_json": hashing.to_queryable(complete),
                "hash_version": hashing.HASH_VERSION,
                "owner": owner if owner is not None else _user(),
                "comment": comment,
            }
            # skip_duplicates: another process may insert the same config at the same moment.
            cls().insert1(row, skip_duplicates=True)
        return key

    @classmethod
    def add_file(cls, fn: str, path: str | Path, **kwargs) -> dict[str, str]:
        """`add` with the config read from a YAML or JSON file (a mapping at the top level)."""
        return cls.add(fn, read_config_file(path), **kwargs)

    @classmethod
    def config(cls, key: dict[str, Any]) -> dict[str, Any]:
        """The exact stored config of one row (arrays as numpy arrays)."""
        return hashing.decode_config((cls() & key).fetch1(f"{cls.kind}_config"))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON, a subset of YAML) config file; the top level must be a mapping.

    Bounded before anything is built, duplicate keys refused, ``1e-3`` read as a float, UTF-8
    only; every error names the file (see `neurofit.pipelines.config_files`).
    """
    return config_files.read_config_file(path)


# The column widths in _definition; checked here so every backend refuses alike.
MAX_COMMENT = 1024
MAX_OWNER = 64


def check_text(field: str, value: Any, limit: int) -> None:
    """Refuse a comment or owner that a backend would reject or truncate.

    Raises:
        neurofit.pipelines.hashing.ConfigError: not a str, longer than ``limit`` characters,
            or holding a NUL character or a lone surrogate.
    """
    if not isinstance(value, str):
        raise hashing.ConfigError(f"{field} must be a str, got {type(value).__name__}")
    if len(value) > limit:
        raise hashing.ConfigError(
            f"{field} is {len(value):,} characters long; at most {limit:,} fit. Shorten it."
        )
    problem = hashing.text_problem(value)
    if problem:
        raise hashing.ConfigError(f"{field} contains {problem}; remove it.")


def _user() -> str:
    try:
        return getpass.getuser()[:MAX_OWNER]
    except (KeyError, OSError):
        return ""


def _definition(kind: str) -> str:
    """The table definition shared by the three config tables; attributes are prefixed by kind."""
    return f"""
    {kind}_fn: varchar(64)           # registered {kind} builder name
    {kind}_hash: char(32)            # md5 of the canonical config text
    ---
    {kind}_config: bytes             # exact canonical config text (neurofit.pipelines.hashing)
    {kind}_json: json                # the same config as plain JSON, for queries
    hash_version: int16              # version of the hashing scheme
    owner = "": varchar(64)          # who inserted it
    comment = "": varchar(1024)      # free text
    created = CURRENT_TIMESTAMP: datetime
    """


@schema
class Dataset(ConfigTable, CascadesToDerived, dj.Manual):
    """One dataset configuration: a registered dataset builder with complete hyperparameters."""

    kind = "dataset"
    definition = _definition("dataset")


@schema
class Model(ConfigTable, CascadesToDerived, dj.Manual):
    """One model configuration: a registered model builder with complete hyperparameters."""

    kind = "model"
    definition = _definition("model")


@schema
class Trainer(ConfigTable, CascadesToDerived, dj.Manual):
    """One trainer configuration: a registered trainer function with complete hyperparameters."""

    kind = "trainer"
    definition = _definition("trainer")


@schema
class Seed(CascadesToDerived, dj.Manual):
    """One random seed, passed to the dataset, model and trainer builders of a training run."""

    definition = """
    seed: int64                       # random seed
    """

    @classmethod
    def add(cls, *seeds: int) -> list[dict[str, int]]:
        """Insert seeds (existing ones are kept) and return their keys."""
        keys = []
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
                raise ValueError(f"seed {seed!r} must be an integer in [0, 2**32)")
            keys.append({"seed": int(seed)})
        cls().insert(keys, skip_duplicates=True)
        return keys

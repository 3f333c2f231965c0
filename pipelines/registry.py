"""The registry of builder functions: the only way a name in the database becomes code.

A dataset, model, trainer or analysis name stored in a config row resolves, in this order, to

1. a function registered in this process with `register` (neurofit's own builders are
   registered by `neurofit.pipelines.builtins`),
2. an entry point a lab package declares in its ``pyproject.toml``::

       [project.entry-points."neurofit.models"]
       "mylab.cnn_v2" = "mylab.models:build_cnn_v2"

   (groups ``neurofit.datasets``, ``neurofit.models``, ``neurofit.trainers``,
   ``neurofit.analyses``),
3. a dotted path ``"mylab.models.build_cnn_v2"``, but only when its module lies under a prefix
   the lab allowed with `allow_modules` or the environment variable
   ``NEUROFIT_ALLOWED_MODULES`` (comma-separated, e.g. ``"mylab,otherlab.models"``).

Anything else, ``os.system`` for instance, is rejected; nothing is ever ``eval``-ed. Every builder's
signature is checked: the leading positional parameters of its kind (``LEADING_PARAMETERS``),
then only named hyperparameters (no ``*args``/``**kwargs``), so configs can be validated and
completed with defaults before they are hashed. Hyperparameter annotations are enforced when a
config is inserted (`Builder.check_types`; policy in `neurofit.pipelines.config_types`).

A module or entry point that fails to import, whatever it raises, gives a `RegistryError` naming
it: a broken builder fails its own rows only, never a worker or a command that merely looks it up.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from . import config_types, hashing

KINDS = ("dataset", "model", "trainer", "analysis")
LEADING_PARAMETERS = {
    "dataset": ("seed",),
    "model": ("data_info", "seed"),
    "trainer": ("model", "data", "seed", "context"),
    # A measure over a trained model (eval mode, on context.device) and its data, returning a
    # neurofit.pipelines.scoring.Measure (see neurofit.schemas.Score).
    "analysis": ("model", "data", "seed", "context"),
}
ENTRY_POINT_GROUPS = {"dataset": "neurofit.datasets", "model": "neurofit.models",
                      "trainer": "neurofit.trainers", "analysis": "neurofit.analyses"}
ALLOWED_MODULES_ENV = "NEUROFIT_ALLOWED_MODULES"
# 64 characters: two model keys must fit one MySQL index (3072 bytes in utf8mb4) in CKA pairs.
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


class RegistryError(ValueError):
    """A builder name cannot be registered or resolved, or a config does not fit its builder."""


@dataclass(frozen=True)
class Builder:
    """A resolved builder function.

    Attributes:
        kind: "dataset", "model", "trainer" or "analysis".
        name: the name stored in the database.
        function: the callable.
        defaults: hyperparameter name -> default value (``inspect.Parameter.empty`` if required).
        types: hyperparameter name -> resolved annotation, for the annotated ones.
    """

    kind: str
    name: str
    function: Callable[..., Any]
    defaults: dict[str, Any]
    types: dict[str, Any] = field(default_factory=dict)

    @property
    def added(self) -> tuple[str, ...]:
        """Hyperparameters added after configs were stored (`register(..., added=...)`)."""
        return tuple(getattr(self.function, "neurofit_added", ()) or ())

    def hashed_config(self, complete: dict[str, Any]) -> dict[str, Any]:
        """The part of a complete config that is hashed and stored.

        Everything but the `added` hyperparameters at exactly their defaults (same type and
        value): a config stored before a hyperparameter existed, and the same config spelled out
        with that hyperparameter at its default, are one row.
        """
        from .hashing import canonicalize

        def at_default(name: str) -> bool:
            value, default = complete[name], self.defaults[name]
            return type(value) is type(default) and canonicalize(value) == canonicalize(default)

        return {k: v for k, v in complete.items() if not (k in self.added and at_default(k))}

    def complete_config(self, config: dict[str, Any] | None) -> dict[str, Any]:
        """Check a config against the signature and fill in defaults.

        Raises:
            RegistryError: naming unknown and missing hyperparameters.
        """
        config = dict(config or {})
        # key=str: keys of mixed types (1 and "a") must give this message, not a TypeError.
        unknown = sorted(set(config) - set(self.defaults), key=str)
        missing = sorted(
            k for k, v in self.defaults.items() if v is inspect.Parameter.empty and k not in config
        )
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown argument(s) {unknown}")
            if missing:
                problems.append(f"missing required argument(s) {missing}")
            raise RegistryError(
                f"config for {self.kind} {self.name!r}: {' and '.join(problems)}. "
                f"It accepts: {sorted(self.defaults) or 'no hyperparameters'}."
            )
        return {**{k: v for k, v in self.defaults.items() if k not in config}, **config}

    def check_types(self, config: dict[str, Any]) -> None:
        """Check the values of a config against the builder's annotations.

        Call `hashing.check_bounds` first: this walks the values.

        Raises:
            RegistryError: naming every refused hyperparameter, its expected type and its value.
        """
        found = config_types.problems(config, self.types, self.defaults)
        if found:
            raise RegistryError(f"config for {self.kind} {self.name!r}: {'; '.join(found)}.")

    def validate(self, config: dict[str, Any] | None) -> dict[str, Any]:
        """Check a config as an insert does (bounds, then names, then types) and complete it.

        The bounds come first, so no later check walks an alias bomb or a cycle.

        Returns:
            The complete config (defaults filled in), exactly as `complete_config` returns it:
            no value is converted, so no key changes.

        Raises:
            neurofit.pipelines.hashing.ConfigError: a config past a bound.
            RegistryError: unknown, missing or mistyped hyperparameters.
        """
        config = dict(config or {})
        hashing.check_bounds(config)  # before anything walks the values
        complete = self.complete_config(config)
        self.check_types(config)
        return complete


_registry: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_allowed_prefixes: set[str] = set()
_builtins_loaded = False


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown builder kind {kind!r}; use one of {KINDS}")


def _hyperparameters(kind: str, name: str, function: Callable[..., Any]) -> dict[str, Any]:
    if not callable(function):
        raise RegistryError(f"{kind} {name!r} is not callable: {function!r}")
    module = (getattr(function, "__module__", None) or "builtins").split(".")[0]
    if inspect.isbuiltin(function) or module in sys.stdlib_module_names:
        # A config row must never be able to name a shell, file or process function.
        raise RegistryError(
            f"{kind} {name!r} is {_identity(function)}, part of Python itself; a builder must be "
            "a function defined in your own code"
        )
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as error:
        raise RegistryError(f"{kind} {name!r}: cannot read its signature ({error})") from None
    leading = LEADING_PARAMETERS[kind]
    expected = f"{getattr(function, '__name__', name)}({', '.join(leading)}, *, <hyperparameters>)"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(parameters) < len(leading) or any(
        p.kind not in positional for p in parameters[: len(leading)]
    ):
        raise RegistryError(
            f"{kind} {name!r} must have the signature {expected}; it has "
            f"{inspect.signature(function)}."
        )
    defaults = {}
    for parameter in parameters[len(leading) :]:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise RegistryError(
                f"{kind} {name!r} takes *{parameter.name}: neurofit must know every "
                f"hyperparameter to validate and hash configs. Name them: {expected}."
            )
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise RegistryError(f"{kind} {name!r}: hyperparameter {parameter.name!r} is positional-only")
        defaults[parameter.name] = parameter.default
    return defaults


def valid_name(name: Any) -> bool:
    """Whether ``name`` is a well-formed builder name (letters, digits, ``_ . -``, 1-64 long)."""
    return isinstance(name, str) and bool(_NAME_PATTERN.match(name))


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise RegistryError(
            f"builder name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or '_' (e.g. 'mylab.cnn_v2')"
        )


def register(
    kind: str, name: str | None = None, *, requires_gpu: bool = False,
    applies_to: tuple[str, ...] | list[str] | None = None,
    added: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable], Callable]:
    """Decorator registering a builder under ``name`` (default: ``module.function``).

    Registering a different function under a name already taken is an error; registering the
    same function again (a re-run notebook cell) is allowed.

    Args:
        kind: "dataset", "model", "trainer" or "analysis".
        name: the name stored in the database.
        requires_gpu: the builder cannot run on a CPU; workers on CPU-only machines leave its
            jobs to GPU workers (see `requirements`).
        applies_to: analyses only: what the data must provide (any of these names from
            `neurofit.datasets.info.PROVIDES`, e.g. ``("labels",)``) for the analysis to apply
            to a trained model; None: every trained model. Models whose data provide none of
            them are never selected for it, so no job is made that can only fail.

        added: hyperparameters added to this builder after configs of it were stored; each
            must have a default that reproduces the old behaviour. At that default they are left
            out of the hashed and stored config (`Builder.hashed_config`), so existing rows keep
            their keys and re-adding an old config finds its old row.

    Examples:
        >>> @register("model", "mylab.tiny")   # doctest: +SKIP
        ... def build_tiny(data_info, seed, *, hidden=8): ...
        >>> @register("analysis", "mylab.accuracy", applies_to=("labels",))   # doctest: +SKIP
        ... def accuracy(model, data, seed, context, *, tier="test"): ...
    """
    _check_kind(kind)
    needs = None
    if applies_to is not None:
        if kind != "analysis":
            raise RegistryError(f"applies_to is for analyses; a {kind} applies to what it is given")
        needs = check_applies_to(applies_to, f"analysis {name!r}")

    def decorate(function: Callable) -> Callable:
        key = name or f"{function.__module__}.{function.__qualname__}"
        _check_name(key)
        defaults = _hyperparameters(kind, key, function)
        previous = _registry[kind].get(key)
        if previous is not None and _identity(previous) != _identity(function):
            raise RegistryError(
                f"{kind} name {key!r} is already registered for {_identity(previous)}; "
                "choose another name"
            )
        for parameter in added:
            if defaults.get(parameter, inspect.Parameter.empty) is inspect.Parameter.empty:
                raise RegistryError(
                    f"{kind} {key!r}: added hyperparameter {parameter!r} must be a keyword with a "
                    "default that reproduces the behaviour from before it existed"
                )
        if added:
            function.neurofit_added = tuple(added)
        _registry[kind][key] = function
        declared = {"requires_gpu": True} if requires_gpu else {}
        if needs is not None:
            declared["applies_to"] = needs
        if declared:
            # On the function, so entry-point and dotted-path builders can declare it too.
            function.neurofit_requirements = declared
        return function

    return decorate


def check_applies_to(applies_to: Any, what: str) -> tuple[str, ...]:
    """``applies_to`` as a tuple of known `PROVIDES` names.

    Raises:
        RegistryError: not a non-empty list of names from `neurofit.datasets.info.PROVIDES`.
    """
    from neurofit.datasets.info import PROVIDES

    names = (applies_to,) if isinstance(applies_to, str) else tuple(applies_to)
    if not names or any(n not in PROVIDES for n in names):
        raise RegistryError(
            f"{what}: applies_to={applies_to!r} must list what the data provide, from "
            f"{list(PROVIDES)}, e.g. ('labels',); or be None for every trained model"
        )
    return names


def requirements(kind: str, name: str) -> dict[str, Any]:
    """What a builder needs, e.g. ``{"requires_gpu": True}`` or ``{"applies_to": ("labels",)}``.

    Empty if nothing special. A function declares it through ``register(..., requires_gpu=True,
    applies_to=...)`` or by carrying a ``neurofit_requirements`` dict attribute.
    """
    return requirements_of(resolve(kind, name).function)


def requirements_of(function: Callable[..., Any]) -> dict[str, Any]:
    """What a (resolved or unregistered) builder function declares it needs; see `requirements`."""
    return dict(getattr(function, "neurofit_requirements", {}) or {})


def applies_to(name: str) -> tuple[str, ...] | None:
    """What the data must provide (any of) for analysis ``name`` to apply; None: everything.

    Raises:
        RegistryError: the analysis cannot be resolved, or declares an unknown name.
    """
    declared = requirements("analysis", name).get("applies_to")
    return None if declared is None else check_applies_to(declared, f"analysis {name!r}")


def _identity(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def allow_modules(*prefixes: str) -> None:
    """Allow dotted-path builders from these module prefixes (``"mylab"`` allows ``mylab.x``)."""
    for prefix in prefixes:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", prefix):
            raise RegistryError(f"{prefix!r} is not a module name")
        _allowed_prefixes.add(prefix)


def allowed_modules() -> list[str]:
    """Module prefixes from `allow_modules` and ``NEUROFIT_ALLOWED_MODULES``."""
    from_env = {p.strip() for p in os.environ.get(ALLOWED_MODULES_ENV, "").split(",") if p.strip()}
    return sorted(_allowed_prefixes | from_env)


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("neurofit.pipelines.builtins")


def _from_entry_points(kind: str, name: str) -> Callable | None:
    for entry in entry_points(group=ENTRY_POINT_GROUPS[kind]):
        if entry.name == name:
            try:
                return entry.load()
            except Exception as error:  # any failure of lab code: that builder's rows fail, nothing else
                raise RegistryError(
                    f"{kind} {name!r}: loading entry point {entry.value!r} failed with "
                    f"{type(error).__name__}: {error}. Fix that module."
                ) from None
    return None


def _from_allowed_module(kind: str, name: str) -> Callable | None:
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        return None
    allowed = allowed_modules()
    if not any(module_name == p or module_name.startswith(p + ".") for p in allowed):
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RegistryError(f"{kind} {name!r}: cannot import module {module_name!r} ({error})") from None
    except Exception as error:  # the module's own code failed: that builder's rows fail, nothing else
        raise RegistryError(
            f"{kind} {name!r}: importing module {module_name!r} failed with "
            f"{type(error).__name__}: {error}. Fix that module."
        ) from None
    try:
        function = getattr(module, attribute, None)
    except Exception as error:  # a module-level __getattr__ may raise anything
        raise RegistryError(f"{kind} {name!r}: reading {attribute!r} from {module_name!r} failed ({error})") from None
    if function is None:
        raise RegistryError(f"{kind} {name!r}: module {module_name!r} has no {attribute!r}")
    return function


def resolve(kind: str, name: str) -> Builder:
    """Find the builder registered under ``name``.

    Raises:
        RegistryError: if the name is not registered, not an entry point and not under an
            allowed module prefix, or if its signature breaks the builder contract.
    """
    _check_kind(kind)
    _check_name(name)
    _load_builtins()
    function = (
        _registry[kind].get(name)
        or _from_entry_points(kind, name)
        or _from_allowed_module(kind, name)
    )
    if function is None:
        raise RegistryError(
            f"no {kind} builder named {name!r}. Registered: {available(kind)}. "
            f"Register it with @neurofit.pipelines.registry.register({kind!r}, {name!r}), declare "
            f"an entry point in group {ENTRY_POINT_GROUPS[kind]!r}, or allow its module with "
            f"{ALLOWED_MODULES_ENV}=<module prefix> (allowed now: {allowed_modules()})."
        )
    defaults = _hyperparameters(kind, name, function)
    return Builder(kind, name, function, defaults, config_types.hyperparameter_types(function, defaults))


def builder_for(kind: str, function: Callable[..., Any], name: str | None = None) -> Builder:
    """A `Builder` for a function that is not registered (e.g. a lab table's own measure).

    Its signature is checked as `register` checks it; nothing is registered.

    Raises:
        RegistryError: the function breaks the builder contract of ``kind``.
    """
    _check_kind(kind)
    name = name or _identity(function)
    defaults = _hyperparameters(kind, name, function)
    return Builder(kind, name, function, defaults, config_types.hyperparameter_types(function, defaults))


def available(kind: str) -> list[str]:
    """Names registered in this process or declared as entry points for ``kind``."""
    _check_kind(kind)
    _load_builtins()
    names = set(_registry[kind])
    names.update(entry.name for entry in entry_points(group=ENTRY_POINT_GROUPS[kind]))
    return sorted(names)

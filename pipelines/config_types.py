"""Type checks of hyperparameters against a builder's annotations, run when a config is inserted.

A builder's annotations say what a config may hold::

    def build(data_info, seed, *, layers: int = 3, lr: float = 1e-3, mode: Literal["a", "b"] = "a",
              sizes: tuple[int, ...] = (8, 16), clip: float | None = None): ...

Enforced: ``int``, ``float``, ``bool``, ``str``, ``None``, ``Literal[...]``, ``list[...]``,
``tuple[...]`` (fixed length, or ``tuple[X, ...]``), ``Sequence[...]``, ``dict``/``dict[str, X]``
/``Mapping``, unions (``Optional[X]``, ``X | None``), ``Any``, nested to any depth, and
``numpy.ndarray``. Other annotations (your own classes, ``Callable``, type variables, strings
that cannot be resolved) are not enforced: a config cannot hold such objects anyway.

Policy:

- ``bool`` is not an ``int`` or a ``float`` here (``True`` for ``layers: int`` is refused).
- An ``int`` is accepted for a ``float`` (``lr: 1``), as in Python's own typing, and it is
  stored and hashed as the int it is: ``1`` and ``1.0`` stay two configs, so no hash of a row
  inserted before these checks existed changes. Write ``1.0`` to match a float default.
- A ``float`` is never accepted for an ``int`` (``layers: 3.0``); write ``3``.
- Lists and tuples are interchangeable (a stored config has lists only); a string is not a
  sequence of strings. An array is accepted where its values (``tolist()``) would be.
- numpy scalars count as the Python value they hold.
- ``None`` is accepted for a hyperparameter whose default is ``None`` even without ``Optional``.
- Defaults are the builder author's and are not checked at insert.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union

import numpy as np

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def hyperparameter_types(function: Callable[..., Any], names: Iterable[str]) -> dict[str, Any]:
    """The resolved annotations of the named parameters of ``function``.

    Annotations are often strings (``from __future__ import annotations``); they are resolved in
    the function's module like `typing.get_type_hints` does. A parameter whose annotation is
    missing or cannot be resolved (a name imported only under ``TYPE_CHECKING``) is left out:
    it is not enforced.
    """
    names = list(names)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # one unresolvable annotation must not hide the others
        hints = {}
        raw = getattr(function, "__annotations__", None) or {}
        module_globals = getattr(function, "__globals__", {})
        for name in names:
            if name in raw:
                holder = types.SimpleNamespace(__annotations__={name: raw[name]})
                try:
                    hints.update(typing.get_type_hints(holder, globalns=module_globals))
                except Exception:
                    continue
    return {name: hints[name] for name in names if name in hints}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is acceptable for ``annotation`` under the policy above."""
    value = _plain(value)
    if annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return any(matches(value, option) for option in args)
    if origin is Literal:
        # 1 == True in Python; a Literal[1] must not accept True, nor Literal["1"] the int 1.
        return any(type(value) is type(option) and value == option for option in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is np.ndarray:
        return isinstance(value, np.ndarray)
    if isinstance(value, np.ndarray) and (annotation in _SEQUENCES or origin in _SEQUENCES):
        return value.ndim > 0 and matches(value.tolist(), annotation)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        return isinstance(value, (list, tuple)) and _items_match(value, origin or annotation, args)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, dict):
            return False
        if len(args) != 2:
            return True
        return all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return True  # not enforced (see the module docstring)


def _items_match(value: list | tuple, origin: Any, args: tuple) -> bool:
    if not args:
        return True
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(item, args[0]) for item in value)
        if args == ((),):  # tuple[()]: the empty tuple
            return len(value) == 0
        return len(value) == len(args) and all(matches(item, a) for item, a in zip(value, args))
    return all(matches(item, args[0]) for item in value)


def describe(annotation: Any) -> str:
    """An annotation as a person reads it: ``int``, ``float or None``, ``list[int]``."""
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe(option) for option in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(option) for option in args)
    if annotation is float:
        return "float (an int is accepted)"
    if isinstance(annotation, type) and not args:
        return annotation.__name__
    if origin in _SEQUENCES or origin in _MAPPINGS:
        name = getattr(origin, "__name__", str(origin))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_inner(args[0])}, ...] (a list is accepted)"
        inner = ", ".join(_inner(a) for a in args)
        suffix = " (a list is accepted)" if origin is tuple else ""
        return f"{name}[{inner}]{suffix}" if args else name
    return str(annotation).replace("typing.", "")


def _inner(annotation: Any) -> str:
    return describe(annotation).replace(" (an int is accepted)", "").replace(" (a list is accepted)", "")


def hint(value: Any, annotation: Any) -> str:
    """A short fix for a common mistake (``"1"`` for an int, ``3.0`` for an int), or ``""``."""
    value = _plain(value)
    numeric = matches(1, annotation) or matches(1.5, annotation)
    if isinstance(value, str) and numeric:
        number = _number(value)
        return "write it without quotes" if number is not None and matches(number, annotation) else ""
    if isinstance(value, float) and value.is_integer() and matches(1, annotation) and not matches(1.5, annotation):
        return f"write {int(value)}, without a decimal point"
    if isinstance(value, bool) and numeric:
        return "write a number, not true/false"
    return ""


def _number(text: str) -> int | float | None:
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def problems(values: dict[str, Any], types_: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """One message per hyperparameter in ``values`` whose value its annotation refuses.

    Args:
        values: hyperparameter -> value given in a config (defaults not included).
        types_: hyperparameter -> resolved annotation (from `hyperparameter_types`).
        defaults: hyperparameter -> default value (a None default accepts None).
    """
    found = []
    for name in sorted(values, key=str):
        if name not in types_:
            continue
        value, annotation = values[name], types_[name]
        if value is None and defaults.get(name, ...) is None:
            continue
        if not matches(value, annotation):
            shown = repr(_plain(value))
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            fix = hint(value, annotation)
            found.append(
                f"hyperparameter {name!r} must be {describe(annotation)}, got {shown} "
                f"({type(_plain(value)).__name__})" + (f": {fix}" if fix else "")
            )
    return found

"""The demos `neurofit demo NAME` runs: entry points in group ``neurofit.demos``.

Each workflow ships its demo the way a lab package would, as an entry point naming a function
``run(prefix=None, out=print) -> dict``, so adding a workflow never edits this list::

    [project.entry-points."neurofit.demos"]
    mylab = "mylab.demo:run_demo"

The first line of the function's docstring is what `neurofit demo list` prints.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable

ENTRY_POINT_GROUP = "neurofit.demos"

__all__ = ["ENTRY_POINT_GROUP", "DemoError", "demo_names", "describe_demos", "load_demo", "run_named_demo"]


class DemoError(ValueError):
    """No demo of that name, or its entry point cannot be loaded."""


def demo_names() -> list[str]:
    """The names of the installed demos, sorted (nothing is imported)."""
    return sorted({entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)})


def load_demo(name: str) -> Callable:
    """The demo function named ``name``; `DemoError` names the installed ones otherwise."""
    matches = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == name]
    if not matches:
        raise DemoError(f"no demo named {name!r}. Installed: {', '.join(demo_names())}. "
                        f"A package adds one with an entry point in group {ENTRY_POINT_GROUP!r}.")
    try:
        return matches[0].load()
    except Exception as error:  # a broken plug-in names itself, and only its demo fails
        raise DemoError(f"demo {name!r}: loading {matches[0].value!r} failed with "
                        f"{type(error).__name__}: {error}") from error


def describe_demos() -> dict[str, str]:
    """Demo name -> the first line of its function's docstring (imports every demo)."""
    described = {}
    for name in demo_names():
        try:
            doc = (load_demo(name).__doc__ or "").strip()
            described[name] = doc.splitlines()[0] if doc else ""
        except DemoError as error:
            described[name] = str(error)
    return described


def run_named_demo(name: str, prefix: str | None = None, out=print) -> dict | None:
    """Run the demo ``name`` (``list`` prints what each demo does instead)."""
    if name == "list":
        for demo, summary in describe_demos().items():
            out(f"{demo:12s} {summary}")
        return None
    return load_demo(name)(prefix=prefix, out=out)

"""The process's `RunContext`: what table code hands to trainers and analyses.

A worker installs one (its device, thread count and stop request) with `use`; a notebook's
``populate()`` gets the default: ``$NEUROFIT_DEVICE`` or the first GPU or the CPU, torch's own
thread count, and no stop request unless a signal handler sets `stop_event`.
"""

from __future__ import annotations

import threading

from neurofit.pipelines.training import RunContext, default_device

stop_event = threading.Event()
_installed: RunContext | None = None


def stop_requested() -> bool:
    """True once this process was asked to stop (SIGTERM/SIGINT in a worker)."""
    return stop_event.is_set()


def context() -> RunContext:
    """The context of this process's jobs (the worker's, or the default)."""
    if _installed is not None:
        return _installed
    return RunContext(device=default_device(), stop_requested=stop_requested)


def use(run_context: RunContext | None) -> None:
    """Install ``run_context`` for this process's jobs (None: back to the default)."""
    global _installed
    _installed = run_context

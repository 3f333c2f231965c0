"""Process-wide worker state that table code reads (set by `neurofit.schemas.worker`)."""

import threading

stop_event = threading.Event()


def stop_requested() -> bool:
    """True once this process was asked to stop (SIGTERM/SIGINT in a worker)."""
    return stop_event.is_set()

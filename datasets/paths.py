"""Where dataset builders may read files from, checked before anything is opened.

A dataset config is written by anyone who can insert a `Dataset` row, and read by every worker.
Two rules keep such a row from probing or reading a worker's file system:

- **Roots.** When ``NEUROFIT_DATA_ROOTS`` is set (folders separated by ``os.pathsep``, ``:`` on
  Linux), a dataset path must resolve, symbolic links followed, to a location inside one of them.
  A lab sets it on its workers to the folders that hold its data.
- **One message.** A path outside the roots, a missing path and a path that exists but holds no
  dataset of the expected format all get the same error text, so the error a database writer
  sees does not tell whether a file exists on a worker machine.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOTS_ENV", "DataPathError", "data_roots", "resolve_data_path"]

DATA_ROOTS_ENV = "NEUROFIT_DATA_ROOTS"


class DataPathError(ValueError):
    """A dataset path that a builder may not or cannot read."""


def data_roots() -> list[Path]:
    """The folders dataset paths must lie in (``$NEUROFIT_DATA_ROOTS``); empty: no restriction."""
    text = os.environ.get(DATA_ROOTS_ENV, "")
    return [Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p.strip()]


def resolve_data_path(path: str | os.PathLike, what: str, exists) -> Path:
    """The resolved ``path`` if it is allowed and ``exists(resolved)`` holds, else `DataPathError`.

    Args:
        path: the path from a dataset config (``~`` is expanded).
        what: what should be there, for the message, e.g. "neurofit trial store".
        exists: ``Path -> bool``; True when the path holds a dataset of the expected format.

    Returns:
        The absolute path with symbolic links resolved.

    Raises:
        DataPathError: the same message whether the path is outside the roots, missing, or of the
            wrong format.
    """
    resolved = Path(path).expanduser().resolve()
    roots = data_roots()
    allowed = not roots or any(resolved == root or root in resolved.parents for root in roots)
    if allowed and exists(resolved):
        return resolved
    hint = f" inside {DATA_ROOTS_ENV} ({os.pathsep.join(map(str, roots))})" if roots else ""
    raise DataPathError(
        f"no readable {what} at {str(path)!r}: give the absolute path of one{hint}, on every "
        "machine that runs workers"
    )

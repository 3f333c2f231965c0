"""Where and with what a result was computed."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path


@lru_cache(maxsize=None)
def _version(package: str) -> str:
    # Cached: reading package metadata takes about 1 ms, and every analysis row records four.
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the neurofit checkout this code runs from ('' if not a git checkout).

    A '+dirty' suffix marks uncommitted changes, so a result never claims a commit it did not run.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(device: str) -> dict[str, str]:
    """Versions, host and device, as stored on every computed row."""
    return {
        "neurofit_version": _version("neurofit"),
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "numpy_version": _version("numpy"),
        "datajoint_version": _version("datajoint"),
        "host": socket.gethostname(),
        "device": device,
    }


#: The provenance fields of an analysis row, in the order `record` returns them. The database
#: columns are these names with the table's prefix (`neurofit.schemas.provenance`).
RECORD_FIELDS = ("duration", "neurofit_version", "provenance")


def record(device: str, duration: float) -> dict[str, object]:
    """The provenance of one computed analysis row: `RECORD_FIELDS` -> values.

    Args:
        device: the torch device the computation ran on ("cpu" for numpy-only work).
        duration: wall time of the computation (s).

    Returns:
        ``duration`` (float, s), ``neurofit_version`` and ``provenance``: a dict with the git
        commit, host, device and the python, torch, numpy and datajoint versions.
    """
    found = provenance(device)
    return {
        "duration": float(duration),
        "neurofit_version": found.pop("neurofit_version"),
        "provenance": found,
    }

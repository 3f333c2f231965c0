"""Files in neurofit's object store, for dataset builders (which never import DataJoint).

A dataset derived from a trained model (simulated spikes, generated stimuli) is a file that a
table wrote to the object store. Its `Dataset` config names the file by its store-relative path
(``stored``), never by an absolute one: the store may be a bucket, or mounted elsewhere on a
worker. `stored_file` turns that path into a local file through the opener that
`neurofit.schemas.derived` installs when the schemas are imported (a file store: the checked
path in place; a bucket: a verified local copy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

__all__ = ["StoredFileError", "set_opener", "stored_file"]

_opener: Callable[[str], Path] | None = None


class StoredFileError(ValueError):
    """A stored file that cannot be opened: no store configured, or its content changed."""


def set_opener(opener: Callable[[str], Path] | None) -> None:
    """Install ``opener(store-relative path) -> local Path`` (done by `neurofit.schemas.derived`)."""
    global _opener
    _opener = opener


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_file(path: str, sha256: str = "") -> Path:
    """The local file of an object-store path, verified against its checksum when one is given.

    Args:
        path: the store-relative path (as a `Dataset` config's ``stored`` holds it).
        sha256: the file's expected checksum ("" to skip the check).

    Raises:
        StoredFileError: no object store in this process, or the content does not match.
        neurofit.schemas.storage.StoredPathError: the path leaves the store.
    """
    if _opener is None:
        raise StoredFileError(
            f"dataset file {path!r} is in neurofit's object store: import neurofit.schemas and call "
            "neurofit.schemas.activate() in this process before building the dataset"
        )
    local = Path(_opener(path))
    if sha256 and _sha256(local) != sha256:
        raise StoredFileError(
            f"stored dataset file {path!r} does not match the checksum in its Dataset config: it was "
            "changed after it was written; delete the row that wrote it and compute it again"
        )
    return local

"""The object store: reading stored files safely, and removing files that no row references.

Two hazards live here. A collector that lists the store while workers insert sees a row's file
before the row commits (DataJoint writes the file inside the insert transaction), so
`collect_garbage` never deletes a file younger than a grace period. And a row's stored path is
data: a forged one (``../../etc/passwd``) must not make neurofit read outside the store, so every
read of a stored object goes through `read_stored`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import datajoint as dj
from datajoint.builtin_codecs.npy import NpyRef
from datajoint.gc import _BASE32_HASH, GarbageCollector, _is_covered
from datajoint.hash_registry import delete_path

from ._schema import schema
from .connection import STORE

log = logging.getLogger(__name__)

GRACE_ENV = "NEUROFIT_GC_GRACE"
DEFAULT_GRACE_MINUTES = 60.0


class StoredPathError(ValueError):
    """A row's stored path points outside the ``neurofit`` store."""


class GarbageScanError(ValueError):
    """The collector could not read every reference, so deleting would risk live files."""


# ---------------------------------------------------------------------------------------------
# Reading stored objects
# ---------------------------------------------------------------------------------------------


def _store_spec() -> dict[str, Any]:
    return dj.config.get_store_spec(STORE)


def check_stored_path(ref, spec: dict[str, Any] | None = None) -> str:
    """Refuse a stored object whose path leaves the configured ``neurofit`` store.

    Args:
        ref: an ``ObjectRef`` or ``NpyRef`` fetched from a store-backed column.
        spec: the store specification to check against (default: the ``neurofit`` store's).

    Returns:
        The full path (file stores) or key (bucket stores) that reading ``ref`` opens.

    Raises:
        StoredPathError: the path is absolute, climbs out with ``..``, leaves the store through a
            symbolic link, or the row names another store's location.
    """
    backend = ref._backend
    path = str(ref.path)
    spec = spec or _store_spec()
    protocol = spec.get("protocol", "file")

    def refuse(why: str) -> StoredPathError:
        where = "/".join(str(spec[k]) for k in ("bucket", "location") if spec.get(k))
        return StoredPathError(
            f"refusing to read stored path {path!r}: it {why}, outside the {STORE!r} store ({where}). "
            "The row's stored metadata was changed outside neurofit: delete the row and compute it again"
        )

    if backend is None or backend.protocol != protocol:
        raise refuse(f"belongs to a {getattr(backend, 'protocol', 'missing')!r} store")
    full = backend._full_path(path)
    if protocol == "file":
        root = Path(spec["location"]).resolve()
        resolved = Path(full).resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise refuse(f"resolves to {resolved}")
        return str(resolved)
    # Object stores do not normalise keys, but fsspec and proxies in front of them may.
    if "\\" in path or any(segment in ("", ".", "..") for segment in path.split("/")):
        raise refuse("is not a plain key below the store's location")
    same = all(backend.spec.get(k) == spec.get(k) for k in ("bucket", "container", "location", "endpoint"))
    if not same:
        raise refuse(f"names another bucket or location ({full})")
    return full


def read_stored(ref):
    """Read a stored object after `check_stored_path` has confirmed it lies inside the store.

    Args:
        ref: an ``ObjectRef`` (returns its bytes) or ``NpyRef`` (returns the numpy array).

    Raises:
        StoredPathError: the stored path leaves the store; nothing was opened.
    """
    check_stored_path(ref)
    return ref.load() if isinstance(ref, NpyRef) else ref.read()


# ---------------------------------------------------------------------------------------------
# Writing and reading large objects without copies (weights: ``benchmarks/weights_store.py``)
# ---------------------------------------------------------------------------------------------


def insert_streamed(table, row: dict[str, Any], attribute: str, write: Callable[[BinaryIO], dict], *,
                    ext: str = "") -> None:
    """Insert ``row`` with its ``<object@neurofit>`` attribute written straight into the store.

    ``write(file)`` writes the content into an open binary file in the store (a local file, or
    an S3 multipart upload) and returns further attributes of the row (e.g. its checksum). No
    copy of the content is held in memory, and on an error the written object is removed and
    no row is inserted (DataJoint's staged insert).

    Args:
        table: the table to insert into.
        row: every attribute except ``attribute`` and those ``write`` returns.
        attribute: the ``<object@...>`` attribute to write.
        write: ``file -> {attribute: value}``.
        ext: file name extension of the stored object (e.g. ``".pt"``).
    """
    with table.staged_insert1 as staged:
        staged.rec.update(row)
        with staged.open(attribute, ext) as handle:
            extra = write(handle)
        staged.rec.update(extra or {})


def load_stored_state_dict(ref, expected_sha256: str, map_location="cpu", *, what: str = "weights") -> dict:
    """Verify a stored ``torch.save`` file against its sha256 and load it (``weights_only=True``).

    A file store's object is hashed and loaded through a memory map, where it lies; an object
    store's is read once into memory. Either way the path is checked first (`check_stored_path`).

    Raises:
        StoredPathError: the stored path leaves the store; nothing was opened.
        neurofit.pipelines.weights.ChecksumError: the bytes do not match the checksum.
    """
    from neurofit.pipelines.weights import (
        ChecksumError,
        checksum,
        load_state_dict_file,
        state_dict_from_bytes,
    )

    full = check_stored_path(ref)
    if _store_spec().get("protocol", "file") == "file":
        return load_state_dict_file(full, expected_sha256, map_location, what=what)
    data = ref.read()
    if checksum(data) != expected_sha256:
        raise ChecksumError(
            f"stored {what} {ref.path} do not match their checksum: the object was changed or "
            "corrupted after it was written; delete its row and compute it again"
        )
    return state_dict_from_bytes(data, map_location=map_location)


# ---------------------------------------------------------------------------------------------
# Garbage collection
# ---------------------------------------------------------------------------------------------


def grace_minutes(grace: float | None = None) -> float:
    """The grace period in minutes: ``grace``, else ``$NEUROFIT_GC_GRACE``, else 60.

    Raises:
        ValueError: the value is not a number >= 0.
    """
    source = "grace" if grace is not None else GRACE_ENV
    value = grace if grace is not None else os.environ.get(GRACE_ENV, "").strip() or DEFAULT_GRACE_MINUTES
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        minutes = float("nan")
    if not minutes >= 0:
        raise ValueError(f"{source}={value!r}: the gc grace period is a number of minutes >= 0 (default 60)")
    return minutes


def _modified(info: dict[str, Any]) -> float | None:
    """Modification time (Unix seconds) from an fsspec ``info()`` dict, None if it has none.

    Local files report ``mtime``; S3 ``LastModified``; GCS ``updated``; Azure ``last_modified``.
    """
    for name in ("mtime", "LastModified", "last_modified", "updated"):
        value = info.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
    return None


def _list_section(collector: GarbageCollector, section: str, hash_only: bool) -> dict[str, tuple[int, float | None]]:
    """``{relative path: (bytes, modified)}`` of the files under one section of the store.

    Raises:
        GarbageScanError: the store could not be listed (a partial listing could hide nothing,
            but the caller should not act on it either).
    """
    fs = collector.backend.fs
    # fsspec reports paths without protocol (and local ones absolute): compare like with like.
    root = fs._strip_protocol(collector.backend._full_path("")).rstrip("/")
    try:
        found = fs.find(collector.backend._full_path(section), detail=True)
    except FileNotFoundError:
        return {}  # nothing stored in this section yet
    except Exception as error:
        raise GarbageScanError(f"could not list the {STORE!r} store ({error}); nothing was deleted") from error
    stored = {}
    for full, info in found.items():
        full = fs._strip_protocol(full)
        if info.get("type", "file") != "file" or not full.startswith(root + "/"):
            continue
        name = full.rsplit("/", 1)[-1]
        if hash_only and (name.endswith(".manifest.json") or not _BASE32_HASH.match(name)):
            continue  # the same files DataJoint's collector considers in the hash section
        stored[full[len(root) + 1:]] = (int(info.get("size") or 0), _modified(info))
    return stored


def _list_files(collector: GarbageCollector) -> tuple[dict, dict]:
    """This schema's hash-addressed and schema-addressed files, with sizes and modification times."""
    name = schema.database
    hash_section = f"{collector._hash_prefix}/{name}/" if collector._hash_prefix else f"{name}/"
    schema_section = f"{collector._schema_prefix}/{name}" if collector._schema_prefix else name
    return _list_section(collector, hash_section, True), _list_section(collector, schema_section, False)


def _references() -> tuple[set[str], set[str]]:
    """Paths in the ``neurofit`` store that rows of this schema reference: (hash, schema-addressed).

    Unlike DataJoint's collector, a table that cannot be read is an error, not a warning: its
    files would otherwise all look orphaned.
    """
    hashed: set[str] = set()
    addressed: set[str] = set()
    for table_name in schema.list_tables():
        table = schema.get_table(table_name)
        for names, into in ((table.heading.hash_objects, hashed), (table.heading.schema_objects, addressed)):
            for attr_name in names:
                codec = table.heading.attributes[attr_name].codec
                try:
                    for row in table.proj(attr_name).cursor(as_dict=True):
                        into.update(path for path, store in codec.referenced_paths(row[attr_name]) if store == STORE)
                except Exception as error:
                    raise GarbageScanError(
                        f"could not read the stored paths of {table_name}.{attr_name} ({error}); nothing was "
                        "deleted. Check the database connection and run gc again"
                    ) from error
    return hashed, addressed


def _referenced(path: str, hash_files: dict, hashed: set[str], addressed: set[str]) -> bool:
    # Schema-addressed objects may be folders: a file is referenced when an ancestor is.
    return path in hashed if path in hash_files else _is_covered(path, addressed)


def collect_garbage(dry_run: bool = True, grace: float | None = None) -> dict[str, Any]:
    """Find (and unless ``dry_run``, delete) stored files of deleted rows; safe beside workers.

    Deleting a row never deletes its files (another row could reference a content-addressed
    one), so run this after deletions. Only this project's schema is scanned: other projects
    sharing the store are never touched. Files are listed before references are read, files
    younger than the grace period are kept (a worker may be inserting their row right now),
    and the references are read once more right before anything is deleted.

    Args:
        dry_run: only report.
        grace: minutes a file must be old before it can be deleted (default
            ``$NEUROFIT_GC_GRACE`` or 60). 0 is safe only when no worker is running.

    Returns:
        ``{"orphaned_files", "orphaned_bytes", "paths", "deleted", "kept_young", "grace_minutes"}``:
        the unreferenced files old enough to delete (deleted unless ``dry_run``), their size and
        store-relative paths, and how many unreferenced files were kept as too young.

    Raises:
        GarbageScanError: a reference or a listing could not be read; nothing was deleted.
    """
    minutes = grace_minutes(grace)
    collector = GarbageCollector(schema, store=STORE)
    # Listing first: a file written after the references were read is then never a candidate.
    listed_at = time.time()
    hash_files, schema_files = _list_files(collector)
    sizes_times = {**hash_files, **schema_files}
    hashed, addressed = _references()
    unreferenced = sorted(p for p in sizes_times if not _referenced(p, hash_files, hashed, addressed))

    def old_enough(path: str) -> bool:
        modified = sizes_times[path][1]
        # A file without a modification time cannot be shown to be old; keep it.
        return minutes == 0 or (modified is not None and listed_at - modified >= minutes * 60)

    candidates = [p for p in unreferenced if old_enough(p)]
    kept_young = len(unreferenced) - len(candidates)
    removed = []
    if not dry_run and candidates:
        # A row may have committed since the first read: check once more right before deleting.
        hashed, addressed = _references()
        candidates = [p for p in candidates if not _referenced(p, hash_files, hashed, addressed)]
        for path in candidates:
            if delete_path(path, STORE) if path in hash_files else collector.delete_schema_path(path):
                removed.append(path)
        log.info("gc deleted %d file(s), kept %d younger than %g min", len(removed), kept_young, minutes)
    paths = candidates if dry_run else removed
    return {
        "orphaned_files": len(paths),
        "orphaned_bytes": int(sum(sizes_times[p][0] for p in paths)),
        "paths": paths,
        "deleted": not dry_run,
        "kept_young": kept_young,
        "grace_minutes": minutes,
    }

"""Files in the object store that no row references any more."""

from __future__ import annotations

from typing import Any

from datajoint.gc import GarbageCollector

from .connection import STORE
from ._schema import schema


def collect_garbage(dry_run: bool = True) -> dict[str, Any]:
    """Find (and unless ``dry_run``, delete) stored files of deleted rows.

    Deleting a row never deletes its files (another row could reference a content-addressed
    one), so run this after deletions. Only this project's schema is scanned: other projects
    sharing the store are never touched.

    Returns:
        ``{"orphaned_files": int, "orphaned_bytes": int, "paths": [...], "deleted": bool}``.
    """
    report = GarbageCollector(schema, store=STORE).collect(dry_run=dry_run)
    paths = list(report["orphaned_schema_paths"]) + list(report["orphaned_hash_paths"])
    return {
        "orphaned_files": len(paths),
        "orphaned_bytes": int(report["schema_paths_orphaned_bytes"] + report["hash_paths_orphaned_bytes"]),
        "paths": paths,
        "deleted": not dry_run,
    }

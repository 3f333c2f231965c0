"""MariaDB workaround for DataJoint 2.3.5 store-backed columns (datajoint-python#1451).

MariaDB reports json columns as longtext, so DataJoint does not JSON-encode the metadata dict
of ``<object@store>``/``<blob@store>`` columns and the insert fails with
``TypeError: dict can not be used as parameter``. Marking those attributes as json after the
heading is read fixes it. Applied only when the server is MariaDB.
"""

from __future__ import annotations

from datajoint import heading
from datajoint.codecs import lookup_codec

_patched = False


def _final_dtype(codec) -> str:
    dtype = codec.get_dtype(is_store=True)
    # Codecs can chain (<object@> -> json, <blob@> -> <hash@> -> json): follow to the SQL type.
    while dtype.startswith("<"):
        codec, _ = lookup_codec(dtype.strip("<>"))
        dtype = codec.get_dtype(is_store=True)
    return dtype


def patch_store_json() -> None:
    """Patch `datajoint.heading.Heading` once per process."""
    global _patched
    if _patched:
        return
    original = heading.Heading._init_from_database

    def init_from_database(self) -> None:
        original(self)
        for name, attribute in list(self._attributes.items()):
            if attribute.codec is None or attribute.store is None or attribute.json:
                continue
            if _final_dtype(attribute.codec) in ("json", "jsonb"):
                self._attributes[name] = attribute._replace(json=True)

    heading.Heading._init_from_database = init_from_database
    _patched = True

"""Dataset artefacts: what a dataset builder knows about its data beyond the `DataInfo`.

Simulated datasets know their ground truth (true receptive fields, kernels, gains, per-neuron
ceilings). It depends only on the dataset's config, so it is stored once per `Dataset` row in the
object store, not in the ``data_info`` of every `TrainedModel` trained on it. `TrainedModel`
writes the artefacts the first time one of its trainings finishes; later trainings check that
they produced the same content (the same checksum) and write nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

import datajoint as dj

from neurofit.datasets.artefacts import EncodedArtefact, decode_artefact

from ._schema import schema
from .config import Dataset

__all__ = ["ArtefactConflict", "DatasetArtefact"]


class ArtefactConflict(ValueError):
    """A dataset builder produced other content for an artefact already stored for its config."""


@schema
class DatasetArtefact(dj.Manual):
    """One artefact of one dataset config: a numpy array or a JSON dict, in the object store.

    Written by `TrainedModel` (never by hand); read with `fetch_artefact`.

    Attributes:
        artefact_name: the key in the builder's ``DataBundle.artefacts``.
        artefact_format: "npy" (a numpy array, loaded without pickles) or "json" (a dict).
        artefact: the encoded content (`neurofit.datasets.artefacts.encode_artefact`).
        artefact_sha256: checksum of the encoded content.
        artefact_bytes: its size.
        description: dtype and shape of an array; "json" for a dict.
    """

    definition = """
    -> Dataset
    artefact_name: varchar(64)            # name in DataBundle.artefacts, e.g. session_0.filters
    ---
    artefact_format: varchar(8)           # npy (numpy array, no pickles) or json (canonical)
    artefact: <object@neurofit>           # the encoded content
    artefact_sha256: char(64)             # checksum of the encoded content
    artefact_bytes: int64                 # size of the encoded content (bytes)
    description: varchar(255)             # dtype and shape of an array, json for a dict
    stored = CURRENT_TIMESTAMP: datetime
    """

    @staticmethod
    def _dataset_key(key: Mapping[str, Any]) -> dict[str, Any]:
        """The `Dataset` part of any key that holds it (e.g. a `TrainedModel` key)."""
        missing = [name for name in Dataset.primary_key if name not in key]
        if missing:
            raise ValueError(
                f"{dict(key)!r} has no {missing}: pass a Dataset key (from Dataset.add) or a key "
                "that contains one, such as a TrainedModel key"
            )
        return {name: key[name] for name in Dataset.primary_key}

    @classmethod
    def store(cls, key: Mapping[str, Any], artefacts: Mapping[str, EncodedArtefact]) -> list[str]:
        """Store a dataset's artefacts unless they are already there (call inside a transaction).

        Args:
            key: a key that contains the `Dataset` key.
            artefacts: ``{name: EncodedArtefact}`` (``TrainingOutcome.artefacts``).

        Returns:
            The names stored now (those already stored with the same content are skipped).

        Raises:
            ArtefactConflict: an artefact of this name is stored with different content. The
                builder's artefacts then depend on something besides its config.
        """
        dataset = cls._dataset_key(key)
        stored = []
        for name, encoded in artefacts.items():
            row = {**dataset, "artefact_name": name}
            if not cls._same_as_stored(row, encoded):
                # Another worker may insert the same row meanwhile: skip_duplicates waits for it
                # and keeps its row, which is then checked like any stored one.
                cls().insert1(
                    {
                        **row,
                        "artefact_format": encoded.format,
                        "artefact": encoded.content,
                        "artefact_sha256": encoded.sha256,
                        "artefact_bytes": len(encoded.content),
                        "description": encoded.description[:255],
                    },
                    skip_duplicates=True,
                )
                if cls._same_as_stored(row, encoded):
                    stored.append(name)
                else:
                    # Only where a concurrent insert is invisible to this transaction (MySQL's
                    # repeatable read); the job fails and its retry finds the row.
                    raise ArtefactConflict(
                        f"artefact {name!r} of {dataset} is being stored by another worker right "
                        "now; "
                        "retry the job (neurofit jobs retry)"
                    )
        return stored

    @classmethod
    def _same_as_stored(cls, row: dict[str, Any], encoded: EncodedArtefact) -> bool:
        """False if nothing is stored under ``row``; True if the same content is.

        Raises:
            ArtefactConflict: other content is stored under ``row``.
        """
        found = (cls() & row).proj("artefact_sha256").to_dicts()
        if not found:
            return False
        if found[0]["artefact_sha256"] != encoded.sha256:
            raise ArtefactConflict(
                f"the dataset {row['dataset_fn']} ({row['dataset_hash'][:8]}) produced artefact "
                f"{row['artefact_name']!r} with sha256 {encoded.sha256[:12]}..., but "
                f"{found[0]['artefact_sha256'][:12]}... is stored for the same config. Artefacts "
                "must depend only on the dataset config (not on the seed or anything else): fix "
                "the "
                "builder, then delete the stored rows (DatasetArtefact & dataset_key) and train "
                "again"
            )
        return True

    @classmethod
    def fetch_artefact(cls, key: Mapping[str, Any], name: str):
        """One stored artefact, checked against its checksum.

        Args:
            key: a key that contains the `Dataset` key (a Dataset or TrainedModel key).
            name: the artefact's name.

        Returns:
            A numpy array or a dict, as the builder returned it (tuples as lists).

        Raises:
            KeyError: no such artefact (the message lists the stored names).
            OSError: the stored file does not match its checksum.
        """
        from neurofit.pipelines.weights import checksum

        from .storage import read_stored

        dataset = cls._dataset_key(key)
        query = cls() & {**dataset, "artefact_name": name}
        if not len(query):
            names = sorted(k["artefact_name"] for k in (cls() & dataset).keys())
            raise KeyError(
                f"no artefact {name!r} is stored for {dataset}; stored: {names or 'none'} "
                "(artefacts "
                "are written when the first TrainedModel of the dataset is stored)"
            )
        ref, kind, expected = query.fetch1("artefact", "artefact_format", "artefact_sha256")
        content = read_stored(ref)
        if checksum(content) != expected:
            raise OSError(
                f"stored artefact {name!r} ({ref}) does not match its checksum: the file was "
                "changed "
                "or corrupted; delete the row (DatasetArtefact & key) and train a model of this "
                "dataset again"
            )
        return decode_artefact(kind, content)

    @classmethod
    def fetch_artefacts(cls, key: Mapping[str, Any]) -> dict[str, Any]:
        """Every stored artefact of one dataset: ``{name: array or dict}``."""
        dataset = cls._dataset_key(key)
        names = sorted(k["artefact_name"] for k in (cls() & dataset).keys())
        return {name: cls.fetch_artefact(dataset, name) for name in names}

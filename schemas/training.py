"""The trained models: weights of the selected trainings, and how to load them again."""

from __future__ import annotations

from typing import Any

import datajoint as dj

from neurofit.pipelines import hashing, training
from neurofit.pipelines.weights import write_state_dict

from ._schema import schema
from .cascading import CascadesToDerived
from .checkpoints import DatabaseCheckpointer
from .config import Dataset, Model, Trainer
from .selection import TrainingSelection  # noqa: F401 (the definition's -> TrainingSelection)
from .storage import insert_streamed, load_stored_state_dict, read_stored


@schema
class TrainedModel(CascadesToDerived, dj.Computed):
    """One trained network: the weights of a selected dataset x model x trainer x seed.

    The state dict lives in the ``neurofit`` object store (never in the table); the row holds the
    score, the `DataInfo` needed to rebuild the model without dataloaders, and provenance.
    """

    definition = """
    -> TrainingSelection
    ---
    score: float64                    # trainer's validation score of the stored weights
    weights: <object@neurofit>        # torch.save'd state dict (CPU tensors)
    weights_sha256: char(64)          # checksum of the stored weights
    weights_bytes: int64              # size of the stored weights (bytes)
    data_info: json                   # DataInfo.to_dict(): shapes and units of the data
    n_epochs: int32                   # epochs trained
    n_parameters = null: int64        # trainable parameters of the model (null: trained before neurofit 0.2 recorded it)
    provides = "responses": varchar(64)  # what the dataset provides (DataInfo.provides, comma-separated)
    duration: float64                 # wall time of data, model and training (s)
    device: varchar(32)               # torch device trained on
    host: varchar(255)                # machine trained on
    neurofit_version: varchar(32)     # neurofit release
    git_commit: varchar(64)           # neurofit commit ('+dirty' = uncommitted changes), '' if not a checkout
    versions: json                    # python, torch, numpy and datajoint versions
    trained = CURRENT_TIMESTAMP: datetime
    """

    class Epoch(dj.Part):
        """One epoch of the training history of a trained model."""

        definition = """
        -> master
        epoch: int32                  # epoch number, from 1
        ---
        train_loss: float64           # mean training loss over the epoch
        validation_score: float64     # trainer's validation score after the epoch
        seconds: float64              # wall time of the epoch (s)
        """

    def make_fetch(self, key):
        # Only names and small config texts: DataJoint hashes this twice to detect changes.
        return [
            bytes((Dataset & key).fetch1("dataset_config")).decode(),
            bytes((Model & key).fetch1("model_config")).decode(),
            bytes((Trainer & key).fetch1("trainer_config")).decode(),
        ]

    def make_compute(self, key, dataset_config, model_config, trainer_config):
        from . import _runtime

        context = _runtime.context()
        checkpoint = DatabaseCheckpointer(key, stop_requested=context.stop_pending)
        return [
            training.train(
                key["dataset_fn"], hashing.decode_config(dataset_config),
                key["model_fn"], hashing.decode_config(model_config),
                key["trainer_fn"], hashing.decode_config(trainer_config),
                key["seed"],
                context.replace(checkpoint=checkpoint),
                run_name=" ".join(
                    f"{key[f'{kind}_fn']}:{key[f'{kind}_hash'][:8]}" for kind in ("dataset", "model", "trainer")
                ) + f" seed:{key['seed']}",
            )
        ]

    def make_insert(self, key, outcome: training.TrainingOutcome):
        from .artefacts import DatasetArtefact

        # Once per dataset, in this transaction: a conflicting artefact fails the job before
        # anything of it is written.
        DatasetArtefact.store(key, outcome.artefacts)
        prov = outcome.provenance
        row = {
            **key,
            "score": outcome.score,
            "data_info": outcome.data_info,
            "n_epochs": len(outcome.history),
            "n_parameters": outcome.n_parameters,
            "provides": ",".join(outcome.data_info.get("provides", ["responses"])),
            "duration": outcome.duration,
            "device": prov["device"],
            "host": prov["host"],
            "neurofit_version": prov["neurofit_version"],
            "git_commit": prov["git_commit"],
            "versions": {k: prov[k] for k in ("python_version", "torch_version", "numpy_version", "datajoint_version")},
        }
        if outcome.state_dict is None:  # a TrainingOutcome built with serialised bytes
            self.insert1({**row, "weights": outcome.weights, "weights_sha256": outcome.weights_sha256,
                          "weights_bytes": len(outcome.weights)})
        else:
            # Written once, straight into the store and hashed on the way (benchmarks/weights_store.py).
            def write(file):
                digest, size = write_state_dict(outcome.state_dict, file)
                return {"weights_sha256": digest, "weights_bytes": size}

            insert_streamed(self, row, "weights", write, ext=".pt")
        DatabaseCheckpointer(key).delete()  # same transaction as the row: never both, never neither
        self.Epoch.insert(
            [
                {
                    **key,
                    "epoch": int(row["epoch"]),
                    "train_loss": float(row["train_loss"]),
                    "validation_score": float(row["validation_score"]),
                    "seconds": float(row["seconds"]),
                }
                for row in outcome.history
            ]
        )

    def fetch_weights(self, key: dict[str, Any] | None = None) -> bytes:
        """The stored state-dict bytes of one trained model, checked against their checksum."""
        from neurofit.pipelines.weights import checksum

        row = self & (key or {})
        ref, expected = row.fetch1("weights", "weights_sha256")
        data = read_stored(ref)  # refuses a path that leaves the store before opening anything
        if checksum(data) != expected:
            raise OSError(
                f"stored weights {ref} do not match their checksum: the file was changed or "
                "corrupted after training; delete this TrainedModel row and populate again"
            )
        return data

    def fetch_state_dict(self, key: dict[str, Any] | None = None, map_location: str = "cpu") -> dict:
        """The stored state dict of one trained model, checked against its checksum and loaded.

        Reads through a memory map on a file store (`storage.load_stored_state_dict`): faster than
        ``fetch_weights`` and no copy of the bytes; rows written as bytes load the same way.
        """
        ref, expected = (self & (key or {})).fetch1("weights", "weights_sha256")
        return load_stored_state_dict(ref, expected, map_location)


def _runtime_device() -> str:
    from . import _runtime

    return _runtime.context().device


def load_model(key: dict[str, Any], device: str | None = None):
    """Rebuild one trained model from the database, ready for inference.

    The model is built from its stored config and `DataInfo` (no dataloaders), weights are
    loaded with ``weights_only=True`` and mapped to ``device`` (default: the worker's device, else
    ``NEUROFIT_DEVICE``, else
    a GPU if present, else the CPU).

    Args:
        key: restriction identifying exactly one `TrainedModel` row.
        device: torch device for the returned model.

    Returns:
        The `torch.nn.Module` in eval mode.
    """
    from neurofit.datasets.info import DataInfo

    rows = TrainedModel & key
    if len(rows) != 1:
        raise ValueError(
            f"load_model needs a key matching exactly one TrainedModel row; {key!r} matches "
            f"{len(rows)}. Restrict it further (e.g. with model_hash and seed)."
        )
    full_key = rows.keys()[0]
    data_info = DataInfo.from_dict(rows.fetch1("data_info"))
    return training.load_trained(
        full_key["model_fn"],
        Model.config(full_key),
        data_info,
        full_key["seed"],
        rows.fetch_state_dict(map_location=device or _runtime_device()),
        device=device or _runtime_device(),
    )

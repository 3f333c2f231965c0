"""Stimulus sets, which trained models to probe with them, and the activations that come out."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

import datajoint as dj

from neurofit.pipelines import extract, hashing, training

from ._schema import schema
from .config import Model
from .training import TrainedModel


def _sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256(str((array.dtype.str, array.shape)).encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@schema
class StimulusSet(dj.Manual):
    """One named set of stimuli for probing models, with optional per-stimulus features.

    Features are what analyses relate activations to: kinematics for tuning (``"velocity"``:
    (n_stimuli, 2) or (n_stimuli, n_time, 2)), labels, or anything else with a leading
    stimulus axis. A name always means the same stimuli: adding different content under an
    existing name is an error.
    """

    definition = """
    stimulus_set: varchar(64)              # name, e.g. gratings_8_directions
    ---
    n_stimuli: int32                       # number of stimuli
    input_shape: varchar(64)               # shape of one stimulus, e.g. 1,32,32
    n_time: int32                          # time steps of time-resolved features (0: one value per stimulus)
    stimuli: <npy@neurofit>                # (n_stimuli, *input_shape) float32
    stimuli_sha256: char(64)               # checksum of dtype, shape and values
    description = "": varchar(1024)        # what the stimuli are
    created = CURRENT_TIMESTAMP: datetime
    """

    class Feature(dj.Part):
        """One named feature of every stimulus of a stimulus set."""

        definition = """
        -> master
        feature: varchar(64)               # e.g. velocity, position, label
        ---
        values: <npy@neurofit>             # (n_stimuli, ...) float64
        unit = "": varchar(32)             # e.g. cm/s
        """

    @classmethod
    def add(
        cls,
        name: str,
        stimuli: np.ndarray,
        features: dict[str, np.ndarray] | None = None,
        *,
        units: dict[str, str] | None = None,
        description: str = "",
    ) -> dict[str, str]:
        """Insert a stimulus set (or return the key of the identical one already there).

        Args:
            name: unique name of the set.
            stimuli: (n_stimuli, *input_shape) model inputs.
            features: name -> (n_stimuli, ...) arrays; time-resolved features share n_time.
            units: feature name -> unit.
            description: free text.

        Raises:
            ValueError: on non-finite values, mismatched lengths, or a name already used for
                different stimuli.
        """
        stimuli = np.asarray(stimuli, dtype=np.float32)
        if stimuli.ndim < 2 or len(stimuli) < 2:
            raise ValueError(f"stimuli must be (n_stimuli >= 2, *input_shape); got shape {stimuli.shape}")
        if not np.isfinite(stimuli).all():
            raise ValueError(f"stimulus set {name!r}: stimuli contain NaN or infinity")
        features = {k: np.asarray(v, dtype=np.float64) for k, v in (features or {}).items()}
        n_time = 0
        for feature, values in features.items():
            if values.shape[:1] != stimuli.shape[:1]:
                raise ValueError(
                    f"feature {feature!r} has shape {values.shape}; its first axis must be the "
                    f"{len(stimuli)} stimuli"
                )
            if values.ndim == 3:
                if n_time and values.shape[1] != n_time:
                    raise ValueError(f"time-resolved features disagree on n_time ({n_time} vs {values.shape[1]})")
                n_time = values.shape[1]
        key = {"stimulus_set": name}
        checksum = _sha256(stimuli)
        existing = cls() & key
        if existing:
            if existing.fetch1("stimuli_sha256") != checksum:
                raise ValueError(
                    f"stimulus set {name!r} exists with different stimuli; results computed on it "
                    "depend on it, so choose a new name"
                )
            return key
        with cls.connection.transaction:
            cls().insert1({
                **key, "n_stimuli": len(stimuli), "input_shape": ",".join(map(str, stimuli.shape[1:])),
                "n_time": n_time, "stimuli": stimuli, "stimuli_sha256": checksum, "description": description,
            })
            cls.Feature().insert([
                {**key, "feature": f, "values": v, "unit": (units or {}).get(f, "")} for f, v in features.items()
            ])
        return key

    @classmethod
    def features(cls, key: dict[str, Any]) -> dict[str, np.ndarray]:
        """All features of one stimulus set as ``{name: array}``."""
        rows = (cls.Feature & key).to_dicts()
        return {row["feature"]: row["values"].load() for row in rows}


@schema
class ProbeSelection(dj.Manual):
    """One trained model chosen to be probed with one stimulus set."""

    definition = """
    -> TrainedModel
    -> StimulusSet
    ---
    session = "": varchar(64)              # readout session to run the model with ('' = first)
    """

    @classmethod
    def add(cls, models, stimulus_set: str, session: str = "") -> list[dict[str, Any]]:
        """Select trained models (a restriction or keys) for probing with a stimulus set.

        Raises:
            ValueError: if a model's input shape differs from the stimuli's.
        """
        stimuli = StimulusSet & {"stimulus_set": stimulus_set}
        if not stimuli:
            raise ValueError(f"no stimulus set named {stimulus_set!r}; add it with StimulusSet.add")
        shape = stimuli.fetch1("input_shape")
        rows = []
        for row in (TrainedModel & models).proj("data_info").to_dicts():
            info = row.pop("data_info")
            key = row
            model_shape = ",".join(map(str, info["input_shape"]))
            if model_shape != shape:
                raise ValueError(
                    f"stimulus set {stimulus_set!r} has inputs of shape ({shape}) but model "
                    f"{key['model_hash'][:8]} (seed {key['seed']}) takes ({model_shape})"
                )
            rows.append({**key, "stimulus_set": stimulus_set, "session": session})
        cls().insert(rows, skip_duplicates=True)
        return [{k: v for k, v in row.items() if k != "session"} for row in rows]


@schema
class Activations(dj.Computed):
    """Activations of one trained model to one stimulus set, one part row per layer."""

    definition = """
    -> ProbeSelection
    ---
    n_layers: int32                        # layers recorded
    layers: json                           # layer names in network order
    """

    class Layer(dj.Part):
        """Activations of one layer: units are the layer's output flattened per stimulus."""

        definition = """
        -> master
        layer: varchar(128)                # module name, or output for the model output
        ---
        layer_index: int32                 # position in network order
        n_units: int32                     # channels x positions (x time)
        unit_shape: json                   # output shape of the layer for one stimulus
        n_time: int32                      # last axis of a (channels, time) output; 0 otherwise
        activations: <npy@neurofit>        # (n_stimuli, n_units) float32
        """

    def make_fetch(self, key):
        return [
            bytes((Model & key).fetch1("model_config")).decode(),
            (TrainedModel & key).fetch1("weights_sha256"),
            (ProbeSelection & key).fetch1("session"),
        ]

    def make_compute(self, key, model_config, weights_sha256, session):
        from neurofit.datasets.info import DataInfo

        device = training.default_device()
        info = DataInfo.from_dict((TrainedModel & key).fetch1("data_info"))
        model = training.load_trained(
            key["model_fn"], hashing.decode_config(model_config), info, key["seed"],
            (TrainedModel & key).fetch_weights(), device=device,
        )
        stimuli = (StimulusSet & key).fetch1("stimuli").load()
        kwargs = {"session": session or info.sessions[0]} if info.sessions else {}
        layers = extract.extract_activations(model, stimuli, forward_kwargs=kwargs, device=device)
        shapes = extract.layer_shapes(model, stimuli[:1], list(layers), forward_kwargs=kwargs, device=device)
        return [layers, shapes]

    def make_insert(self, key, layers, shapes):
        self.insert1({**key, "n_layers": len(layers), "layers": list(layers)})
        self.Layer.insert([
            {
                **key, "layer": name, "layer_index": index, "n_units": values.shape[1],
                "unit_shape": list(shapes[name]), "activations": values,
                "n_time": shapes[name][-1] if len(shapes[name]) == 2 else 0,
            }
            for index, (name, values) in enumerate(layers.items())
        ])

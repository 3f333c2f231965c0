"""Stimulus sets, which trained models to probe with them, and the activations that come out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import datajoint as dj
import numpy as np

from neurofit.pipelines import extract, hashing, training

from . import _runtime, provenance
from ._schema import schema
from .config import Model
from .storage import read_stored
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
    stimulus axis. Time-resolved features are (n_stimuli, n_time, ...): time is their axis 1,
    step ``i`` is input sample ``i`` (at ``sampling_rate``), and analyses read them at each
    layer's time centres. Model inputs other than the stimuli (a behaviour signal, say) are
    features flagged ``model_input``, stored in their own dtype (floats as float32): probing
    passes them to the model as keyword arguments (``model(stimuli, session=..., **inputs)``)
    and analyses leave them alone. A name always means the same stimuli and inputs (the
    checksum covers both): adding different content under an existing name is an error.
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
    input_axes = "": varchar(255)          # comma-joined axis names of one stimulus, e.g. channel,space,time ('' = inferred)
    sampling_rate = null: float64          # Hz of the stimuli's time axis and of time-resolved features
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
        time_resolved = null: bool         # values are (n_stimuli, n_time, ...); null in older rows: if 3-D
        model_input = 0: bool              # passed to the model as a keyword input, not analysed
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
        input_axes: Sequence[str] | None = None,
        sampling_rate: float | None = None,
        time_resolved: Iterable[str] | None = None,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> dict[str, str]:
        """Insert a stimulus set (or return the key of the identical one already there).

        Args:
            name: unique name of the set.
            stimuli: (n_stimuli, *input_shape) model inputs.
            features: name -> (n_stimuli, ...) arrays; time-resolved features share n_time.
            units: feature name -> unit.
            description: free text.
            input_axes: names of the axes of one stimulus from
                `neurofit.pipelines.extract.AXES`, e.g. ``("time", "feature")`` for
                (n, time, features) sequences or ``("channel", "space", "time")`` for DeepDraw's
                spindle inputs. Default: inferred when probing (images for 3-D stimuli).
            sampling_rate: samples per second of the stimuli's time axis and of the
                time-resolved features.
            time_resolved: names of the features that are (n_stimuli, n_time, ...). Default:
                the 3-D ones.
            inputs: further model inputs per stimulus, name -> (n_stimuli, ...) array, passed
                to the model as keyword arguments when probing (e.g. ``{"behavior": b}``).

        Raises:
            ValueError: on non-finite values, mismatched lengths or time axes, unknown axis
                names, or a name already used for different stimuli.
        """
        stimuli = np.asarray(stimuli, dtype=np.float32)
        if stimuli.ndim < 2 or len(stimuli) < 2:
            raise ValueError(f"stimuli must be (n_stimuli >= 2, *input_shape); got shape {stimuli.shape}")
        if not np.isfinite(stimuli).all():
            raise ValueError(f"stimulus set {name!r}: stimuli contain NaN or infinity")
        axes = extract.check_input_axes(input_axes, stimuli.shape[1:]) if input_axes is not None else ()
        if sampling_rate is not None and not (np.isfinite(sampling_rate) and sampling_rate > 0):
            raise ValueError(f"sampling_rate must be a positive number of samples per second, got {sampling_rate!r}")
        features = {k: np.asarray(v, dtype=np.float64) for k, v in (features or {}).items()}
        timed = _time_resolved(features, time_resolved)
        n_time = _shared_n_time(features, timed, stimuli, axes)
        model_inputs = _model_inputs(name, inputs, features, stimuli)
        key = {"stimulus_set": name}
        checksum = _sha256(stimuli) if not model_inputs else _sha256_all(stimuli, model_inputs)
        existing = cls() & key
        if existing:
            stored_checksum, stored_axes = existing.fetch1("stimuli_sha256", "input_axes")
            if stored_checksum != checksum:
                raise ValueError(
                    f"stimulus set {name!r} exists with different stimuli or model inputs; results "
                    "computed on it depend on them, so choose a new name"
                )
            if axes and stored_axes != ",".join(axes):
                raise ValueError(
                    f"stimulus set {name!r} exists with input_axes {stored_axes or 'inferred'!r}, not "
                    f"{','.join(axes)!r}; probing results depend on them, so choose a new name"
                )
            return key
        with cls.connection.transaction:
            cls().insert1({
                **key, "n_stimuli": len(stimuli), "input_shape": ",".join(map(str, stimuli.shape[1:])),
                "n_time": n_time, "stimuli": stimuli, "stimuli_sha256": checksum, "description": description,
                "input_axes": ",".join(axes), "sampling_rate": None if sampling_rate is None else float(sampling_rate),
            })
            cls.Feature().insert([
                {**key, "feature": f, "values": v, "unit": (units or {}).get(f, ""),
                 "time_resolved": f in timed, "model_input": False}
                for f, v in features.items()
            ] + [
                {**key, "feature": f, "values": v, "unit": (units or {}).get(f, ""), "time_resolved": False,
                 "model_input": True}
                for f, v in model_inputs.items()
            ])
        return key

    @classmethod
    def features(cls, key: dict[str, Any]) -> dict[str, np.ndarray]:
        """The features of one stimulus set (not its model inputs) as ``{name: array}``."""
        rows = (cls.Feature & key & "NOT model_input").to_dicts()
        return {row["feature"]: read_stored(row["values"]) for row in rows}

    @classmethod
    def inputs(cls, key: dict[str, Any]) -> dict[str, np.ndarray]:
        """The model inputs besides the stimuli of one stimulus set, ``{keyword: array}``."""
        rows = (cls.Feature & key & "model_input").to_dicts()
        return {row["feature"]: read_stored(row["values"]) for row in rows}

    @classmethod
    def axes(cls, key: dict[str, Any]) -> tuple[str, ...] | None:
        """The declared axis names of one stimulus, or None if they are to be inferred."""
        declared = (cls & key).fetch1("input_axes")
        return tuple(declared.split(",")) if declared else None


def _time_resolved(features: dict[str, np.ndarray], names: Iterable[str] | None) -> set[str]:
    if names is None:
        return {f for f, v in features.items() if v.ndim == 3}
    names = set(names)
    unknown = names - set(features)
    if unknown:
        raise ValueError(f"time_resolved names {sorted(unknown)}, which are not among the features {sorted(features)}")
    flat = [f for f in names if features[f].ndim < 2]
    if flat:
        raise ValueError(f"time-resolved features {flat} need shape (n_stimuli, n_time, ...)")
    return names


def _shared_n_time(features, timed, stimuli, axes) -> int:
    n_time = 0
    for feature, values in features.items():
        if values.shape[:1] != stimuli.shape[:1]:
            raise ValueError(
                f"feature {feature!r} has shape {values.shape}; its first axis must be the "
                f"{len(stimuli)} stimuli"
            )
        if feature in timed:
            if n_time and values.shape[1] != n_time:
                raise ValueError(f"time-resolved features disagree on n_time ({n_time} vs {values.shape[1]})")
            n_time = values.shape[1]
    if n_time and extract.TIME in axes:
        length = stimuli.shape[1 + axes.index(extract.TIME)]
        if length != n_time:
            raise ValueError(
                f"time-resolved features have {n_time} steps but the stimuli have {length} time "
                "samples; features are read at input samples, so sample them at the stimuli's rate"
            )
    return n_time


def _model_inputs(name, inputs, features, stimuli) -> dict[str, np.ndarray]:
    out = {}
    for keyword, values in (inputs or {}).items():
        if not keyword.isidentifier() or keyword in (extract.INPUT, "session"):
            raise ValueError(f"model input {keyword!r} must be a keyword argument name other than 'inputs' and 'session'")
        if keyword in features:
            raise ValueError(f"{keyword!r} is both a feature and a model input; give it once")
        values = np.asarray(values)
        values = values.astype(np.float32) if np.issubdtype(values.dtype, np.floating) else values
        if values.shape[:1] != stimuli.shape[:1]:
            raise ValueError(f"model input {keyword!r} has shape {values.shape}; its first axis must be the {len(stimuli)} stimuli")
        if np.issubdtype(values.dtype, np.number) and not np.isfinite(values).all():
            raise ValueError(f"stimulus set {name!r}: model input {keyword!r} contains NaN or infinity")
        out[keyword] = values
    return out


def _declared_data_axes(info, shape) -> tuple[str, ...] | None:
    """The training data's input axes when they describe these stimuli: a dataset that names a
    modality other than images (whose axes the data contract may only have guessed), with one
    known name per stimulus axis."""
    axes = tuple(getattr(info, "input_axes", ()) or ())
    if getattr(info, "modality", "image") == "image" or len(axes) != len(shape):
        return None
    known = all(a in extract.AXES and a != "unit" for a in axes) and len(set(axes)) == len(axes)
    return axes if known else None


def _sha256_all(stimuli: np.ndarray, inputs: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256(_sha256(stimuli).encode())
    for keyword in sorted(inputs):
        digest.update(keyword.encode() + _sha256(inputs[keyword]).encode())
    return digest.hexdigest()


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
        if isinstance(models, dj.expression.QueryExpression):
            models = models.proj()  # by key only: secondary namesakes cannot be matched
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
    """Activations of one trained model to one stimulus set, one part row per layer.

    A layer's ``activations`` are its output made batch-first (``unit_shape`` per stimulus)
    and flattened in C order. Any model kind probes: images, sequences ((n, time, features)
    or (n, channels, time)), videos, models with further inputs. Each layer's row names the
    axes of its output (`neurofit.pipelines.extract.AXES`) and, for layers with a time axis,
    the input sample each output step is centred on, measured through strides, kernels,
    padding and dilation (see `neurofit.pipelines.extract.describe_layers`).
    """

    definition = f"""
    -> ProbeSelection
    ---
    n_layers: int32                        # layers recorded
    layers: json                           # layer names in network order
    input_axes = "": varchar(255)          # comma-joined axis names of one stimulus as probed ('' in older rows)
    {provenance.attributes("Activations")}
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
        n_time: int32                      # length of the layer's time axis; 0 if it has none
        activations: <npy@neurofit>        # (n_stimuli, n_units) float32
        axes = "": varchar(255)            # comma-joined axis names of unit_shape, e.g. channel,space,time ('' in older rows)
        time_centres = null: json          # (n_time,) input sample each time step is centred on; null without time
        """

    @staticmethod
    def layer_axes(row: dict[str, Any]) -> tuple[str, ...]:
        """Axis names of a `Layer` row's ``unit_shape``; rows written before axes were recorded
        get the old reading: a 2-D output was (channel, time)."""
        if row.get("axes"):
            return tuple(row["axes"].split(","))
        shape = tuple(row["unit_shape"])
        return ("channel", extract.TIME) if len(shape) == 2 else extract.name_axes(shape, None, ())

    def make_fetch(self, key):
        return [
            bytes((Model & key).fetch1("model_config")).decode(),
            (TrainedModel & key).fetch1("weights_sha256"),
            (ProbeSelection & key).fetch1("session"),
        ]

    @provenance.recorded()
    def make_compute(self, key, model_config, weights_sha256, session):
        from neurofit.datasets.info import DataInfo

        device = _runtime.context().device
        info = DataInfo.from_dict((TrainedModel & key).fetch1("data_info"))
        model = training.load_trained(
            key["model_fn"], hashing.decode_config(model_config), info, key["seed"],
            (TrainedModel & key).fetch_weights(), device=device,
        )
        stimuli = read_stored((StimulusSet & key).fetch1("stimuli"))
        extra = StimulusSet.inputs(key)
        inputs = {extract.INPUT: stimuli, **extra} if extra else stimuli
        kwargs = {"session": session or info.sessions[0]} if info.sessions else {}
        layers = extract.extract_activations(model, inputs, forward_kwargs=kwargs, device=device)
        axes = StimulusSet.axes(key) or _declared_data_axes(info, stimuli.shape[1:])
        described = extract.describe_layers(
            model, inputs, list(layers), input_axes=axes, forward_kwargs=kwargs, device=device,
        )
        return [layers, described]

    def make_insert(self, key, layers, described, record):
        self.insert1({**key, "n_layers": len(layers), "layers": list(layers),
                      "input_axes": ",".join(described.input_axes), **record})
        rows = []
        for index, (name, values) in enumerate(layers.items()):
            layer = described[name]
            centres = None if layer.time_centres is None else [float(c) for c in layer.time_centres]
            rows.append({
                **key, "layer": name, "layer_index": index, "n_units": values.shape[1],
                "unit_shape": list(layer.shape), "activations": values, "n_time": layer.n_time,
                "axes": ",".join(layer.axes), "time_centres": centres,
            })
        self.Layer.insert(rows)

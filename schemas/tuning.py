"""Single-unit tuning of model layers to the features of a stimulus set (DeepDraw's analyses)."""

from __future__ import annotations

import datajoint as dj
import numpy as np

from neurofit.pipelines.analysis import tuning as tuning_functions

from . import provenance
from ._schema import schema
from .probing import Activations, StimulusSet
from .storage import read_stored

TUNED_THRESHOLD = 0.2  # DeepDraw: a unit is directionally tuned if its test R2 exceeds 0.2


def _kinematic_features(features: dict[str, np.ndarray], timed: set[str] | None = None) -> dict[str, np.ndarray]:
    """Features that are 2-D vectors per stimulus, or per time step if ``timed`` names the
    time-resolved features: what tuning models fit."""
    if timed is None:
        return {name: values for name, values in features.items() if values.shape[-1] == 2 and values.ndim == 2}
    return {name: values for name, values in features.items() if name in timed and values.ndim == 3
            and values.shape[-1] == 2}


def _time_resolved(key) -> set[str]:
    """Names of the time-resolved features of a stimulus set (older rows: the 3-D ones)."""
    rows = (StimulusSet.Feature & key & "NOT model_input").proj("time_resolved").to_dicts()
    flagged = {row["feature"] for row in rows if row["time_resolved"]}
    unknown = [row["feature"] for row in rows if row["time_resolved"] is None]
    if unknown:
        features = StimulusSet.features(key)
        flagged |= {name for name in unknown if features[name].ndim == 3}
    return flagged


def at_centres(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Time-resolved ``values`` (n, n_time, ...) read at fractional input samples ``centres``
    (linear interpolation between neighbouring samples; exact at whole samples)."""
    below = np.clip(np.floor(centres).astype(int), 0, values.shape[1] - 1)
    above = np.clip(below + 1, 0, values.shape[1] - 1)
    weight = (centres - below).reshape(1, -1, *([1] * (values.ndim - 2)))
    return values[:, below] * (1 - weight) + values[:, above] * weight


def time_major(activations: np.ndarray, unit_shape, axes) -> np.ndarray:
    """(n, n_units) activations of a layer with a time axis as (n, n_time, units): every other
    axis (DeepDraw: channel x spatial row) becomes a unit, channel-major."""
    values = activations.reshape(len(activations), *unit_shape)
    values = np.moveaxis(values, 1 + list(axes).index("time"), 1)
    return values.reshape(len(activations), values.shape[1], -1)


#: The secondary attributes of a tuning table (`Tuning`, and a workflow's variants of it).
TUNING_ATTRIBUTES = """
    model_names: json                      # feature models, e.g. velocity/direction, in column order
    r2_test: <blob>                        # (n_units, n_models) held-out R2
    preferred_direction = null: <blob>     # (n_units,) radians, of the direction model of direction_feature
    direction_feature = "": varchar(64)    # feature the preferred directions refer to
    fraction_tuned = null: float64         # fraction of units with direction R2 > tuned_threshold
    tuned_threshold: float64               # R2 a unit needs to count as directionally tuned
    uniformity = null: float64             # total absolute deviation of the tuned units' preferred-direction histogram (18 bins)
    summary: json                          # mean and median test R2 per model, and the scalars above
"""


def inside_input(centres: np.ndarray, n_time: int) -> np.ndarray:
    """Default choice of a layer's steps for tuning: those centred inside the input samples.

    No other crop: steps centred on the first or last input samples are kept (neurofit's
    default; `deepdraw.PaperTuning` crops as DeepDraw's published analysis does).

    Args:
        centres: (n_steps,) time centres of the layer's steps, in input samples.
        n_time: number of input samples.

    Returns:
        (n_steps,) bool.
    """
    return (centres >= 0) & (centres <= n_time - 1)


def _as_slice(kept: np.ndarray) -> slice | np.ndarray:
    """A boolean mask as a slice when it selects one run (a view, not a copy, of the steps)."""
    steps = np.flatnonzero(kept)
    if steps.size and steps[-1] - steps[0] + 1 == steps.size:
        return slice(int(steps[0]), int(steps[-1]) + 1)
    return kept


class LayerTuning:
    """`make` of a table of kinematic tuning fits per layer (`Tuning`; a workflow's variants).

    A subclass declares the table (`TUNING_ATTRIBUTES`) and may override `kept_steps` to
    choose which of a layer's time steps are fitted.
    """

    @staticmethod
    def kept_steps(centres: np.ndarray, n_time: int) -> np.ndarray:
        """(n_steps,) bool: the layer's steps to fit (see `inside_input`)."""
        return inside_input(centres, n_time)

    @property
    def key_source(self):
        layers = Activations.Layer.proj("n_time", "time_centres") * StimulusSet.proj(set_time="n_time")
        with_kinematics = StimulusSet.Feature & "feature in ('velocity', 'position', 'acceleration', 'direction')"
        applies = "set_time = 0 OR set_time = n_time OR (n_time > 0 AND time_centres IS NOT NULL)"
        return (layers & applies & with_kinematics.proj()).proj()

    def make_fetch(self, key):
        layer = (Activations.Layer & key).proj("unit_shape", "axes", "time_centres").fetch1()
        layer = {name: layer[name] for name in ("unit_shape", "axes", "time_centres")}
        return [layer, (StimulusSet & key).fetch1("n_time")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, layer, n_time):
        # In their stored dtype: fit_tuning computes in float64 block by block.
        activations = np.asarray(read_stored((Activations.Layer & key).fetch1("activations")))
        if n_time:
            features = _kinematic_features(StimulusSet.features(key), _time_resolved(key))
            activations = time_major(activations, layer["unit_shape"], Activations.layer_axes(layer))
            centres = layer["time_centres"]
            centres = np.arange(activations.shape[1], dtype=np.float64) if centres is None else np.asarray(centres)
            kept = self.kept_steps(centres, n_time)
            if not kept.any():
                raise ValueError(
                    f"layer {key['layer']!r}: no time step is left to fit of the {n_time} input samples "
                    f"(centres {centres.min():g} .. {centres.max():g}); tuning has no samples to fit"
                )
            activations = activations[:, _as_slice(kept)]
            features = {name: at_centres(values, centres[kept]) for name, values in features.items()}
        else:
            features = _kinematic_features(StimulusSet.features(key))
            activations = activations[:, None, :]
            features = {name: values[:, None, :] for name, values in features.items()}
        if not features:
            raise ValueError(
                f"stimulus set {key['stimulus_set']!r} has no {'time-resolved ' if n_time else ''}2-D "
                "kinematic feature (n_stimuli, [n_time,] 2) to fit"
            )
        result = tuning_functions.fit_tuning(activations, features)
        direction_feature = next((f for f in ("velocity", "direction") if f in features), next(iter(features)))
        return [result, direction_feature]

    def make_insert(self, key, result, direction_feature, record):
        summary = tuning_functions.tuning_summary(result, feature=direction_feature, threshold=TUNED_THRESHOLD)
        preferred = tuning_functions.preferred_direction(result, feature=direction_feature)

        def scalar(name):
            value = summary.get(name)
            return None if value is None or not np.isfinite(value) else float(value)

        self.insert1({
            **key,
            "model_names": list(result.model_names),
            "r2_test": np.asarray(result.r2_test, dtype=np.float64),
            "preferred_direction": np.asarray(preferred, dtype=np.float64),
            "direction_feature": direction_feature,
            "fraction_tuned": scalar("fraction_tuned"),
            "tuned_threshold": TUNED_THRESHOLD,
            "uniformity": scalar("uniformity"),
            "summary": {k: (float(v) if isinstance(v, (int, float, np.floating)) and np.isfinite(v) else None)
                        for k, v in summary.items()},
            **record,
        })


@schema
class Tuning(LayerTuning, dj.Computed):
    """Tuning of every unit of one layer to the 2-D kinematic features of its stimulus set.

    Each unit is fitted with DeepDraw's models (direction, speed, direction x speed, Cartesian,
    polar position) per feature by least squares on a train split of stimuli (trajectories)
    and scored by R2 on the held-out ones. Stimulus sets with one value per stimulus treat
    each stimulus as one sample (every output value of the layer is a unit). Time-resolved
    ones apply to layers with a time axis: every other axis of the layer's output (DeepDraw:
    channel x spatial row) is a unit, and the features are read at the layer's recorded time
    centres (`Activations.Layer.time_centres`, linear interpolation between input samples), so
    a strided layer's step ``j`` meets the kinematics of the input samples it is centred on.
    Steps centred outside the input (padded or causal edge steps) are left out; no other time
    point is cropped (`inside_input`). Older rows without time centres apply only if the layer
    has as many steps as the features.
    """

    definition = f"""
    -> Activations.Layer
    ---
    {TUNING_ATTRIBUTES}
    {provenance.attributes("Tuning")}
    """

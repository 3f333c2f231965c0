"""Single-unit tuning of model layers to the features of a stimulus set (DeepDraw's analyses)."""

from __future__ import annotations

import numpy as np

import datajoint as dj

from neurofit.pipelines.analysis import tuning as tuning_functions

from ._schema import schema
from .probing import Activations, StimulusSet

TUNED_THRESHOLD = 0.2  # DeepDraw: a unit is directionally tuned if its test R2 exceeds 0.2


def _kinematic_features(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features that are 2-D vectors per stimulus (or per time step): what tuning models fit."""
    return {name: values for name, values in features.items() if values.shape[-1] == 2 and values.ndim in (2, 3)}


@schema
class Tuning(dj.Computed):
    """Tuning of every unit of one layer to the 2-D kinematic features of its stimulus set.

    Each unit is fitted with DeepDraw's models (direction, speed, direction x speed, Cartesian,
    polar position) per feature by least squares on a train split of stimuli (trajectories)
    and scored by R2 on the held-out ones. Stimulus sets with one value per stimulus treat
    each stimulus as one sample; time-resolved ones need layers with a (channels, time) output
    of the same length.
    """

    definition = """
    -> Activations.Layer
    ---
    model_names: json                      # feature models, e.g. velocity/direction, in column order
    r2_test: <blob>                        # (n_units, n_models) held-out R2
    preferred_direction = null: <blob>     # (n_units,) radians, of the direction model of direction_feature
    direction_feature = "": varchar(64)    # feature the preferred directions refer to
    fraction_tuned = null: float64         # fraction of units with direction R2 > tuned_threshold
    tuned_threshold: float64               # R2 a unit needs to count as directionally tuned
    uniformity = null: float64             # total absolute deviation of the tuned units' preferred-direction histogram (18 bins)
    summary: json                          # mean and median test R2 per model, and the scalars above
    """

    @property
    def key_source(self):
        layers = Activations.Layer.proj("n_time") * StimulusSet.proj(set_time="n_time")
        with_kinematics = StimulusSet.Feature & "feature in ('velocity', 'position', 'acceleration', 'direction')"
        return (layers & "set_time = 0 OR set_time = n_time" & with_kinematics.proj()).proj()

    def make_fetch(self, key):
        return [(Activations.Layer & key).fetch1("unit_shape"), (StimulusSet & key).fetch1("n_time")]

    def make_compute(self, key, unit_shape, n_time):
        activations = np.asarray((Activations.Layer & key).fetch1("activations").load(), dtype=np.float64)
        features = _kinematic_features(StimulusSet.features(key))
        if n_time:
            # (n_stimuli, channels * time) -> (n_stimuli, time, channels): units are channels.
            activations = activations.reshape(len(activations), unit_shape[0], n_time).transpose(0, 2, 1)
        else:
            activations = activations[:, None, :]
            features = {name: values[:, None, :] for name, values in features.items()}
        result = tuning_functions.fit_tuning(activations, features)
        direction_feature = next((f for f in ("velocity", "direction") if f in features), next(iter(features)))
        return [result, direction_feature]

    def make_insert(self, key, result, direction_feature):
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
        })

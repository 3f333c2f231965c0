"""How well each trained model predicts held-out neural responses."""

from __future__ import annotations

import numpy as np

import datajoint as dj

from neurofit.pipelines import hashing, performance, training

from ._schema import schema
from .config import Dataset, Model
from .training import TrainedModel


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _none_if_nan(value: float) -> float | None:
    # MySQL float columns cannot hold NaN; NULL says "undefined" on every backend.
    return None if np.isnan(value) else value


@schema
class Performance(dj.Computed):
    """Test-set prediction performance of one trained model, averaged over all its neurons.

    Per-neuron arrays are in the `Performance.Session` part, one row per recording session.
    """

    definition = """
    -> TrainedModel
    ---
    n_neurons: int32                         # neurons over all sessions
    single_trial_correlation: float64        # mean over neurons: Pearson r over single test trials
    correlation_to_average: float64          # mean over neurons: r between repeat-averaged response and prediction
    feve = null: float64                     # mean FEVE over neurons with FEV >= fev_threshold (NaN if none)
    fev_threshold: float64                   # FEV a neuron needs to enter the FEVE mean
    oracle_correlation: float64              # mean leave-one-repeat-out oracle r: a noise ceiling
    cc_abs: float64                          # mean over neurons: r of prediction with the repeat average
    cc_norm = null: float64                  # mean CCnorm over neurons with signal power > 0 (Schoppe et al. 2016)
    cc_max = null: float64                   # mean CCmax over neurons with signal power > 0: the noise ceiling of CCabs
    n_signal_neurons: int32                  # neurons with signal power > 0 (those in cc_norm and cc_max)
    """

    class Session(dj.Part):
        """Per-neuron test scores of one trained model on one recording session."""

        definition = """
        -> master
        session: varchar(64)                 # session name from the DataInfo
        ---
        n_neurons: int32
        n_trials: int32                      # test trials (repeats counted separately)
        single_trial_correlation: <blob>     # (n_neurons,) Pearson r over single trials
        correlation_to_average: <blob>       # (n_neurons,) r to the repeat-averaged response
        fev: <blob>                          # (n_neurons,) fraction of explainable variance
        feve: <blob>                         # (n_neurons,) fraction of explainable variance explained
        oracle_correlation: <blob>           # (n_neurons,) leave-one-repeat-out oracle r
        cc_abs: <blob>                       # (n_neurons,) r of prediction with the repeat average
        cc_norm: <blob>                      # (n_neurons,) CCnorm; NaN where signal power <= 0
        cc_max: <blob>                       # (n_neurons,) CCmax; NaN where signal power <= 0
        mean_single_trial_correlation: float64
        mean_correlation_to_average: float64
        """

    def make_fetch(self, key):
        return [
            bytes((Dataset & key).fetch1("dataset_config")).decode(),
            bytes((Model & key).fetch1("model_config")).decode(),
            (TrainedModel & key).fetch1("weights_sha256"),
        ]

    def make_compute(self, key, dataset_config, model_config, weights_sha256):
        from neurofit.datasets.info import DataInfo

        device = training.default_device()
        data = training.build_data(key["dataset_fn"], hashing.decode_config(dataset_config), key["seed"])
        model = training.load_trained(
            key["model_fn"], hashing.decode_config(model_config),
            DataInfo.from_dict((TrainedModel & key).fetch1("data_info")),
            key["seed"], (TrainedModel & key).fetch_weights(), device=device,
        )
        return [performance.evaluate(model, data, device=device, tier="test")]

    def make_insert(self, key, sessions):
        def joined(name):
            return np.concatenate([scores[name] for scores in sessions.values()])

        self.insert1(
            {
                **key,
                "n_neurons": int(joined("fev").size),
                "single_trial_correlation": _nanmean(joined("single_trial_correlation")),
                "correlation_to_average": _nanmean(joined("correlation_to_average")),
                "feve": _none_if_nan(performance.mean_feve(joined("feve"), joined("fev"))),
                "fev_threshold": performance.FEV_THRESHOLD,
                "oracle_correlation": _nanmean(joined("oracle_correlation")),
                "cc_abs": _nanmean(joined("cc_abs")),
                "cc_norm": _none_if_nan(_nanmean(joined("cc_norm"))),
                "cc_max": _none_if_nan(_nanmean(joined("cc_max"))),
                "n_signal_neurons": int(np.isfinite(joined("cc_max")).sum()),
            }
        )
        self.Session.insert(
            [
                {
                    **key,
                    "session": session,
                    "n_neurons": int(scores["fev"].size),
                    "n_trials": scores["n_trials"],
                    **{name: np.asarray(scores[name], dtype=np.float64) for name in (
                        "single_trial_correlation", "correlation_to_average", "fev", "feve",
                        "oracle_correlation", "cc_abs", "cc_norm", "cc_max")},
                    "mean_single_trial_correlation": _nanmean(scores["single_trial_correlation"]),
                    "mean_correlation_to_average": _nanmean(scores["correlation_to_average"]),
                }
                for session, scores in sessions.items()
            ]
        )

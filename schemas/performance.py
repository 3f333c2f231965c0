"""How well each trained model predicts held-out neural responses."""

from __future__ import annotations

import datajoint as dj
import numpy as np

from neurofit.datasets.info import DataInfo
from neurofit.pipelines import performance

from . import _runtime, provenance
from ._schema import schema
from .applicability import Applicable
from .scoring import load_trained_and_data, trained_model_fetch
from .training import TrainedModel


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _none_if_nan(value: float) -> float | None:
    # MySQL float columns cannot hold NaN; NULL says "undefined" on every backend.
    return None if np.isnan(value) else value


@schema
class Performance(Applicable, dj.Computed):
    """Test-set prediction performance of one trained model, averaged over all its neurons.

    Per-neuron arrays are in the `Performance.Session` part, one row per recording session.
    Only models of data that provide neural responses get a row (``applies_to``); task models
    are scored by `TaskPerformance`.
    """

    applies_to = ("responses",)

    definition = f"""
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
    {provenance.attributes("Performance")}
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

    class Condition(dj.Part):
        """Per-neuron test scores of one trained model on the trials of one condition of one session.

        Filled only for data that record an experimental condition (an optogenetic signal).
        """

        definition = """
        -> master
        session: varchar(64)                 # session name from the DataInfo
        condition: varchar(32)               # e.g. control, optogenetic
        ---
        n_trials: int32                      # test trials of this condition
        single_trial_correlation: <blob>     # (n_neurons,) Pearson r over the condition's trials
        correlation_to_average: <blob>       # (n_neurons,) r to the average over the condition's repeats
        cc_abs: <blob>                       # (n_neurons,) r of prediction with that repeat average
        cc_norm: <blob>                      # (n_neurons,) CCnorm within the condition; NaN without signal power
        cc_max: <blob>                       # (n_neurons,) CCmax within the condition
        mean_response: <blob>                # (n_neurons,) mean recorded response per scored row
        mean_prediction: <blob>              # (n_neurons,) mean predicted response per scored row
        mean_single_trial_correlation: float64
        mean_cc_norm = null: float64         # mean over neurons with signal power > 0
        """

    def make_fetch(self, key):
        return trained_model_fetch(key)

    @provenance.recorded()
    def make_compute(self, key, dataset_config, model_config, weights_sha256):
        device = _runtime.context().device
        model, data = load_trained_and_data(key, dataset_config, model_config, device)
        return [performance.evaluate(model, data, device=device, tier="test")]

    def make_insert(self, key, sessions, record):
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
                **record,
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
        self.Condition.insert(
            [
                {
                    **key,
                    "session": session,
                    "condition": condition,
                    "n_trials": int(values["n_trials"]),
                    **{name: np.asarray(values[name], dtype=np.float64) for name in _CONDITION_ARRAYS},
                    "mean_single_trial_correlation": _nanmean(values["single_trial_correlation"]),
                    "mean_cc_norm": _none_if_nan(_nanmean(values["cc_norm"])),
                }
                for session, scores in sessions.items()
                for condition, values in scores.get("conditions", {}).items()
            ]
        )

    @classmethod
    def neurons(cls, restriction=None):
        """Per-neuron test scores as a tidy pandas DataFrame.

        One row per trained model x seed x session x neuron: the key columns, ``session``,
        ``neuron`` (index within the session), ``unit_id`` (when the data name their units), the
        scores of `Performance.Session` and, for data with conditions, ``<score>_<condition>``
        for every score of `Performance.Condition` plus ``predicted_ratio_<condition>`` and
        ``recorded_ratio_<condition>``: the mean predicted (recorded) response in that condition
        divided by the one in the first condition (control), per neuron.

        Args:
            restriction: anything DataJoint accepts to restrict `Performance` (a key, a query).

        Returns:
            pandas.DataFrame, empty (with the key columns) when nothing matches.
        """
        import pandas as pd

        # Restrict by the master's key only: the parts share score names (and `session`) whose
        # lineages differ, so joining them directly is refused.
        models = (cls() if restriction is None else cls() & restriction).proj()
        query = cls.Session & models
        key_names = cls.primary_key
        frames = []
        infos = {}
        conditions: dict[tuple, dict[str, dict]] = {}
        for row in (cls.Condition & models).to_dicts():
            ident = tuple(row[k] for k in key_names) + (row["session"],)
            conditions.setdefault(ident, {})[row["condition"]] = row
        for row in query.to_dicts():
            key = {k: row[k] for k in key_names}
            n = int(row["n_neurons"])
            columns: dict[str, object] = {**{k: [v] * n for k, v in key.items()},
                                          "session": [row["session"]] * n, "neuron": np.arange(n)}
            ident = tuple(key.values())
            if ident not in infos:
                # from_dict also reads rows of earlier releases (unit tables under extra["neurons"]).
                infos[ident] = DataInfo.from_dict((TrainedModel & key).fetch1("data_info"))
            unit_ids = infos[ident].units.get(row["session"], {}).get("unit_id")
            if unit_ids is not None and len(unit_ids) == n:
                columns["unit_id"] = list(unit_ids)
            for name in _SESSION_ARRAYS:
                columns[name] = np.asarray(row[name], dtype=np.float64)
            by_condition = conditions.get(ident + (row["session"],), {})
            names = list(by_condition)
            for condition, values in by_condition.items():
                for name in _CONDITION_ARRAYS:
                    columns[f"{name}_{condition}"] = np.asarray(values[name], dtype=np.float64)
            if names:
                reference = names[0] if "control" not in by_condition else "control"
                for condition in names:
                    if condition == reference:
                        continue
                    for kind, column in (("predicted", "mean_prediction"), ("recorded", "mean_response")):
                        with np.errstate(divide="ignore", invalid="ignore"):
                            columns[f"{kind}_ratio_{condition}"] = (
                                np.asarray(by_condition[condition][column], dtype=np.float64)
                                / np.asarray(by_condition[reference][column], dtype=np.float64)
                            )
            frames.append(pd.DataFrame(columns))
        if not frames:
            return pd.DataFrame(columns=[*key_names, "session", "neuron"])
        return pd.concat(frames, ignore_index=True)


_SESSION_ARRAYS = (
    "single_trial_correlation", "correlation_to_average", "fev", "feve", "oracle_correlation",
    "cc_abs", "cc_norm", "cc_max",
)
_CONDITION_ARRAYS = (
    "single_trial_correlation", "correlation_to_average", "cc_abs", "cc_norm", "cc_max",
    "mean_response", "mean_prediction",
)

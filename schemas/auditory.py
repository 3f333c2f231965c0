"""Auditory encoding scores (deepSTRF's benchmark) and the recovery of known STRFs.

Plugged in as the ``neurofit.schemas`` entry point ``auditory`` (schema ``<prefix>auditory``).
`AuditoryScore` scores every trained model of spectrogram data on its test tier, per neuron;
`STRFRecovery` compares each fitted linear / LN kernel with the dataset's ground-truth STRFs
(the ``strf`` artefact of ``neurofit.synthetic_strf``).
"""

from __future__ import annotations

import datajoint as dj
import numpy as np

from neurofit.pipelines.analysis import prediction
from neurofit.pipelines.analysis.strf import strf_recovery
from neurofit.pipelines.evaluation import predict
from neurofit.pipelines.performance import equal_repeats

from . import _runtime
from .artefacts import DatasetArtefact
from .scoring import load_trained_and_data, trained_model_fetch
from .training import TrainedModel  # noqa: F401 (the definitions' -> TrainedModel)

schema = dj.Schema()
schema_name = "auditory"

#: Per-neuron scores of `auditory_scores`, in the order of the part table's columns.
SCORES = ("cc_abs", "cc_norm", "cc_max_schoppe", "cc_max_hsu", "cc_norm_hsu", "ttrc", "predictive_power",
          "spe", "cc_norm_low", "cc_norm_high")
STRF_MODELS = ("neurofit.strf_linear", "neurofit.strf_ln")


def auditory_scores(responses: np.ndarray, predictions: np.ndarray, stimulus_id: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-neuron score of one session's test rows (see `SCORES`), each (n_neurons,).

    Rows are time bins of trials; repeats of a sound share the bin's stimulus id. The jackknife
    interval of CCnorm needs >= 3 repeats (NaN otherwise).
    """
    repeats, averaged = equal_repeats(responses, predictions, stimulus_id)
    nan = np.full(repeats.shape[2], np.nan)
    interval = prediction.cc_norm_jackknife(repeats, averaged) if repeats.shape[0] >= 3 else {"low": nan, "high": nan}
    return {
        "cc_abs": prediction.cc_abs(repeats, averaged),
        "cc_norm": prediction.cc_norm(repeats, averaged),
        "cc_max_schoppe": prediction.cc_max_schoppe(repeats),
        "cc_max_hsu": prediction.cc_max_hsu(repeats),
        "cc_norm_hsu": prediction.cc_norm_hsu(repeats, averaged),
        "ttrc": prediction.ttrc(repeats, averaged),
        "predictive_power": prediction.predictive_power(repeats, averaged),
        "spe": prediction.signal_power_explained(repeats, averaged),
        "cc_norm_low": interval["low"],
        "cc_norm_high": interval["high"],
    }


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None  # NULL: undefined on every backend


@schema
class AuditoryScore(dj.Computed):
    """Test-tier auditory scores of one trained model of spectrogram data, means over neurons.

    Per-neuron values are in `AuditoryScore.Neuron`. Only models of spectrogram data that
    provide responses get a row.
    """

    definition = """
    -> TrainedModel
    ---
    n_neurons: int32                     # neurons over all sessions
    cc_abs: float64                      # mean CCraw: r of prediction with the repeat-averaged response
    cc_norm = null: float64              # mean CCnorm (Schoppe et al. 2016) over neurons with signal power > 0
    cc_norm_hsu = null: float64          # mean CCabs / split-half CCmax (Hsu et al. 2004; deepSTRF)
    ttrc = null: float64                 # mean trial-to-trial-reliability-corrected r (Pennington & David 2023)
    predictive_power = null: float64     # mean Sahani-Linden predictive power (fraction of signal power)
    """

    class Neuron(dj.Part):
        """Test scores of one neuron (dimensionless; NaN where undefined)."""

        definition = """
        -> master
        session: varchar(64)             # session name from the DataInfo
        neuron: int32                    # index within the session
        ---
        cc_abs: float64                  # CCraw
        cc_norm = null: float64          # CCnorm (Schoppe), null where signal power <= 0
        cc_max_schoppe = null: float64   # sqrt(SP / Var(mean response))
        cc_max_hsu = null: float64       # split-half ceiling with Spearman-Brown
        cc_norm_hsu = null: float64      # CCabs / cc_max_hsu
        ttrc = null: float64             # trial-to-trial-reliability-corrected r
        predictive_power = null: float64 # Sahani-Linden predictive power
        spe = null: float64              # signal power explained (Schoppe's calc_SPE)
        cc_norm_low = null: float64      # jackknife 95 pct interval of CCnorm, lower end
        cc_norm_high = null: float64     # jackknife 95 pct interval of CCnorm, upper end
        """

    @property
    def key_source(self):
        # The modality sits in the data_info json; reading it in Python works on every backend.
        return TrainedModel.proj() & _spectrogram_models()

    def make_fetch(self, key):
        return trained_model_fetch(key)

    def make_compute(self, key, dataset_config, model_config, weights_sha256):
        device = _runtime.context().device
        model, data = load_trained_and_data(key, dataset_config, model_config, device)
        arrays = predict(model, data.loaders["test"], device, data.info.burn_in)
        return [{s: auditory_scores(a["responses"], a["predictions"], a["stimulus_id"]) for s, a in arrays.items()}]

    def make_insert(self, key, sessions):
        joined = {name: np.concatenate([s[name] for s in sessions.values()]) for name in SCORES}
        self.insert1({**key, "n_neurons": int(joined["cc_abs"].size), "cc_abs": _mean(joined["cc_abs"]),
                      **{name: _mean(joined[name]) for name in ("cc_norm", "cc_norm_hsu", "ttrc", "predictive_power")}})
        self.Neuron.insert([
            {**key, "session": session, "neuron": i,
             **{name: (None if not np.isfinite(scores[name][i]) else float(scores[name][i])) for name in SCORES}}
            for session, scores in sessions.items() for i in range(len(scores["cc_abs"]))
        ])


def _spectrogram_models() -> list[dict]:
    """Keys of trained models whose data are spectrograms with responses (read from data_info)."""
    from .applicability import provides_condition

    rows = (TrainedModel & provides_condition(("responses",))).proj("data_info").to_dicts()
    names = TrainedModel.primary_key
    return [{k: row[k] for k in names} for row in rows if (row["data_info"] or {}).get("modality") == "spectrogram"]


@schema
class STRFRecovery(dj.Computed):
    """How well one trained linear / LN model recovered the true STRFs of simulated neurons.

    Filled for ``neurofit.strf_linear`` and ``neurofit.strf_ln`` models of datasets with a
    ground-truth ``strf`` artefact; per-neuron values in `STRFRecovery.Neuron`.
    """

    definition = """
    -> TrainedModel
    ---
    mean_r: float64                      # mean over neurons of the fitted-vs-true STRF Pearson r
    min_r: float64                       # worst neuron's r
    """

    class Neuron(dj.Part):
        """One fitted kernel against its ground truth."""

        definition = """
        -> master
        session: varchar(64)             # session name from the DataInfo
        neuron: int32                    # index within the session
        ---
        r: float64                       # Pearson r over all (channel, lag, band) entries
        fitted_strf: <blob>              # (channels, lags, bands) fitted kernel, lag 0 = present bin
        """

    @property
    def key_source(self):
        with_truth = DatasetArtefact & {"artefact_name": "strf"}
        return (TrainedModel & [{"model_fn": fn} for fn in STRF_MODELS] & with_truth.proj()).proj()

    def make_fetch(self, key):
        return trained_model_fetch(key)

    def make_compute(self, key, dataset_config, model_config, weights_sha256):
        from .training import load_model

        model = load_model(key)
        truth = DatasetArtefact.fetch_artefact(key, "strf")
        out = {}
        for session in model.networks:
            fitted = model.strf(session).cpu().numpy().astype(np.float64)
            out[session] = (fitted, strf_recovery(fitted, truth))
        return [out]

    def make_insert(self, key, sessions):
        r = np.concatenate([values for _, values in sessions.values()])
        self.insert1({**key, "mean_r": float(np.mean(r)), "min_r": float(np.min(r))})
        self.Neuron.insert([
            {**key, "session": s, "neuron": i, "r": float(values[i]), "fitted_strf": fitted[i]}
            for s, (fitted, values) in sessions.items() for i in range(len(values))
        ])

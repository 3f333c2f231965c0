"""Per-neuron prediction performance of a trained model on one tier of its data."""

from __future__ import annotations

from typing import Any

import numpy as np

from .analysis import prediction
from .evaluation import predict

FEV_THRESHOLD = 0.15  # Sensorium's rule: FEVE is averaged over neurons with FEV >= 0.15


def score_predictions(
    responses: np.ndarray, predictions: np.ndarray, stimulus_id: np.ndarray
) -> dict[str, np.ndarray]:
    """All per-neuron scores of one session.

    Args:
        responses: (n_trials, n_neurons) recorded responses; repeats share a stimulus_id.
        predictions: (n_trials, n_neurons) model predictions for the same trials.
        stimulus_id: (n_trials,) stimulus identity of each trial.

    Returns:
        ``single_trial_correlation``, ``correlation_to_average``, ``fev``, ``feve``,
        ``oracle_correlation``, ``cc_abs``, ``cc_norm`` and ``cc_max`` (Schoppe et al. 2016; see
        `equal_repeats` for which trials enter them), each (n_neurons,) float64.
    """
    repeats, averaged_predictions = equal_repeats(responses, predictions, stimulus_id)
    return {
        "cc_abs": prediction.cc_abs(repeats, averaged_predictions),
        "cc_norm": prediction.cc_norm(repeats, averaged_predictions),
        "cc_max": prediction.cc_max(repeats),
        "single_trial_correlation": prediction.correlation(responses, predictions),
        "correlation_to_average": prediction.correlation_to_average(responses, predictions, stimulus_id),
        "fev": prediction.fev(responses, stimulus_id),
        "feve": prediction.feve(responses, predictions, stimulus_id),
        "oracle_correlation": prediction.oracle_correlation(responses, stimulus_id),
    }


def equal_repeats(
    responses: np.ndarray, predictions: np.ndarray, stimulus_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stack responses into equal repeats per stimulus for the signal-power scores.

    Signal power needs the same number of repeats N for every stimulus. Policy: stimuli shown
    fewer than 2 times are left out, and every other stimulus contributes its first N repeats,
    N being the smallest repeat count among them (unequal counts would bias the estimator).

    Returns:
        repeats (N, n_stimuli, n_neurons) and the predictions averaged per stimulus
        (n_stimuli, n_neurons), stimuli in sorted id order.
    """
    stimulus_id = np.asarray(stimulus_id)
    order = np.argsort(stimulus_id, kind="stable")
    ids = stimulus_id[order]
    unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
    repeated = counts >= 2
    if not repeated.any():
        raise ValueError("no stimulus is shown at least twice; signal power needs repeats")
    n_repeats = int(counts[repeated].min())
    rank = np.arange(len(ids)) - np.repeat(first, counts)  # repeat number within each stimulus
    keep = order[(rank < n_repeats) & np.repeat(repeated, counts)]
    repeats = prediction.repeats_array(np.asarray(responses)[keep], stimulus_id[keep])
    averaged, _ = prediction.trial_average(np.asarray(predictions)[keep], stimulus_id[keep])
    return repeats, averaged


def mean_feve(feve: np.ndarray, fev: np.ndarray, threshold: float = FEV_THRESHOLD) -> float:
    """Mean FEVE over neurons whose FEV reaches ``threshold`` (NaN if none does)."""
    keep = (fev >= threshold) & np.isfinite(feve)
    return float(np.mean(feve[keep])) if keep.any() else float("nan")


def condition_scores(
    responses: np.ndarray, predictions: np.ndarray, stimulus_id: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-neuron scores of the trials of one experimental condition.

    Args:
        responses: (n_rows, n_neurons) recorded responses of the condition's trials (or frames).
        predictions: (n_rows, n_neurons) model predictions for the same rows.
        stimulus_id: (n_rows,) stimulus identity; repeats within the condition share it.

    Returns:
        ``single_trial_correlation``, ``correlation_to_average``, ``cc_abs``, ``cc_norm``,
        ``cc_max`` (NaN where the condition has no repeated stimulus), ``mean_response`` and
        ``mean_prediction``, each (n_neurons,) float64. The ratio of ``mean_prediction`` between
        two conditions is the model's estimate of how the condition changes each neuron's rate.
    """
    responses = np.asarray(responses, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    scores = {
        "single_trial_correlation": prediction.correlation(responses, predictions),
        "mean_response": responses.mean(axis=0),
        "mean_prediction": predictions.mean(axis=0),
    }
    try:
        repeats, averaged_predictions = equal_repeats(responses, predictions, stimulus_id)
    except ValueError:  # no repeated stimulus in this condition
        nan = np.full(responses.shape[1], np.nan)
        scores.update(correlation_to_average=nan, cc_abs=nan, cc_norm=nan, cc_max=nan)
        return scores
    scores.update(
        correlation_to_average=prediction.correlation_to_average(responses, predictions, stimulus_id),
        cc_abs=prediction.cc_abs(repeats, averaged_predictions),
        cc_norm=prediction.cc_norm(repeats, averaged_predictions),
        cc_max=prediction.cc_max(repeats),
    )
    return scores


def evaluate(model, data, device: str = "cpu", tier: str = "test") -> dict[str, dict[str, Any]]:
    """Predict one tier of a `DataBundle` and score every session.

    Time-resolved data (videos) are scored frame by frame after the data's ``info.burn_in`` (see
    `neurofit.pipelines.evaluation.predict`). When the data record an optogenetic condition
    (``info.has_optogenetic``), each session's trials are also scored per condition.

    Returns:
        ``{session: scores}`` with the arrays of `score_predictions`, ``n_trials`` (int) and,
        with conditions, ``conditions``: ``{name: condition_scores(...) + {"n_trials": int}}``
        for every condition (named by ``info.conditions``) that has trials.

    Raises:
        ValueError: the data have no such tier, or provide no neural responses to score.
    """
    if tier not in data.loaders:
        raise ValueError(f"the data has no {tier!r} tier; it has {sorted(data.loaders)}")
    if "responses" not in data.info.provides:
        raise ValueError(
            f"these data provide {list(data.info.provides)}, not neural responses: response scores "
            "(correlations, FEVE, CCnorm) do not apply to them"
        )
    burn_in = data.info.burn_in
    names = list(data.info.conditions) if data.info.has_optogenetic else []
    results = {}
    for session, arrays in predict(model, data.loaders[tier], device, burn_in).items():
        scores: dict[str, Any] = score_predictions(arrays["responses"], arrays["predictions"], arrays["stimulus_id"])
        scores["n_trials"] = _n_trials(arrays)
        if names and "condition" in arrays:
            scores["conditions"] = {}
            for index, name in enumerate(names):
                rows = arrays["condition"] == index
                if rows.any():
                    subset = {k: v[rows] for k, v in arrays.items()}
                    scores["conditions"][name] = {
                        **condition_scores(subset["responses"], subset["predictions"], subset["stimulus_id"]),
                        "n_trials": _n_trials(subset),
                    }
        results[session] = scores
    return results


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for telling ``positive`` items from the rest.

    Computed by the rank-sum (Mann-Whitney) identity, ties counted half.

    Args:
        score: (n,) any real values, larger = more likely positive.
        positive: (n,) bool ground truth.

    Returns:
        AUC in [0, 1] (0.5 = chance), NaN if either class is empty.
    """
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _n_trials(arrays: dict[str, np.ndarray]) -> int:
    """Trials behind the rows: rows are trials for images and frames for videos."""
    if "trial_id" in arrays:
        return int(np.unique(arrays["trial_id"]).size)
    return int(arrays["responses"].shape[0])

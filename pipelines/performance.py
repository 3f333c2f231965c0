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
        ``single_trial_correlation``, ``correlation_to_average``, ``fev``, ``feve`` and
        ``oracle_correlation``, each (n_neurons,) float64.
    """
    return {
        "single_trial_correlation": prediction.correlation(responses, predictions),
        "correlation_to_average": prediction.correlation_to_average(responses, predictions, stimulus_id),
        "fev": prediction.fev(responses, stimulus_id),
        "feve": prediction.feve(responses, predictions, stimulus_id),
        "oracle_correlation": prediction.oracle_correlation(responses, stimulus_id),
    }


def mean_feve(feve: np.ndarray, fev: np.ndarray, threshold: float = FEV_THRESHOLD) -> float:
    """Mean FEVE over neurons whose FEV reaches ``threshold`` (NaN if none does)."""
    keep = (fev >= threshold) & np.isfinite(feve)
    return float(np.mean(feve[keep])) if keep.any() else float("nan")


def evaluate(model, data, device: str = "cpu", tier: str = "test") -> dict[str, dict[str, Any]]:
    """Predict one tier of a `DataBundle` and score every session.

    Returns:
        ``{session: scores}`` with the arrays of `score_predictions` plus ``n_trials`` (int).
    """
    if tier not in data.loaders:
        raise ValueError(f"the data has no {tier!r} tier; it has {sorted(data.loaders)}")
    results = {}
    for session, arrays in predict(model, data.loaders[tier], device).items():
        scores = score_predictions(arrays["responses"], arrays["predictions"], arrays["stimulus_id"])
        scores["n_trials"] = int(arrays["responses"].shape[0])
        results[session] = scores
    return results

"""Spectro-temporal receptive fields: closed-form ridge fits and recovery of known STRFs.

Pure numpy, float64, batched over neurons (one eigendecomposition serves every neuron and every
λ). Layout: ``features`` (n_trials, T, C, F): C input channels (1, or ON and OFF after a
front end) and F bands per time bin; ``responses`` (n_trials, T, N). An STRF is
(N, C, n_lags, F) with lag 0 = the present bin, the layout of
`neurofit.datasets.auditory.gabor_strfs` and `neurofit.models.auditory.AuditoryModel.strf`.

References:
    Theunissen, F. E. et al. (2001). Estimating spatio-temporal receptive fields of auditory
    and visual neurons from their responses to natural stimuli. Network 12: 289-316.

    Hoerl, A. E. & Kennard, R. W. (1970). Ridge regression. Technometrics 12: 55-67.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import numeric

__all__ = ["RidgeSTRF", "fit_ridge_strf", "lagged_design", "ridge_path", "strf_recovery"]

DEFAULT_LAMBDAS = tuple(float(v) for v in 10.0 ** np.arange(-1, 6))


def lagged_design(features: np.ndarray, n_lags: int) -> np.ndarray:
    """Time-lagged design matrix, causal within each trial (zeros before its start).

    Args:
        features: (n_trials, T, C, F) stimulus features.
        n_lags: lags 0..n_lags-1 (bins).

    Returns:
        (n_trials * T, n_lags * C * F) float64; column ``(l, c, f)`` holds feature (c, f) at
        t - l, in C order, so a weight vector reshapes to (n_lags, C, F).
    """
    x = numeric(features, "features")
    if x.ndim != 4:
        raise ValueError(f"features must be (n_trials, T, C, F), got shape {x.shape}")
    if n_lags < 1:
        raise ValueError(f"n_lags must be >= 1, got {n_lags}")
    n, t = x.shape[:2]
    padded = np.concatenate([np.zeros((n, n_lags - 1, *x.shape[2:])), x], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_lags, axis=1)  # (n, T, C, F, L)
    return np.ascontiguousarray(windows[..., ::-1].transpose(0, 1, 4, 2, 3)).reshape(n * t, -1)


def ridge_path(x: np.ndarray, y: np.ndarray, lambdas) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights for every λ and neuron from one eigendecomposition of XᵀX (centred data).

    Args:
        x: (n_rows, n_features) design; y: (n_rows, N) responses; lambdas: (n_lambdas,) >= 0.

    Returns:
        ``(weights, intercepts)``: (n_lambdas, n_features, N) and (n_lambdas, N), minimising
        ``Σ (y - x w - b)² + λ ‖w‖²`` (the intercept is not penalised).
    """
    lambdas = np.asarray(lambdas, dtype=np.float64)
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc = x - x_mean
    eigenvalues, vectors = np.linalg.eigh(xc.T @ xc)
    projected = vectors.T @ (xc.T @ (y - y_mean))  # (n_features, N)
    shrunk = projected[None] / (np.maximum(eigenvalues, 0.0)[None, :, None] + lambdas[:, None, None])
    weights = np.einsum("ij,ljn->lin", vectors, shrunk)
    return weights, y_mean[None] - np.einsum("i,lin->ln", x_mean, weights)


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r over axis -2 (broadcasting over leading axes); 0 where constant."""
    a = a - a.mean(-2, keepdims=True)
    b = b - b.mean(-2, keepdims=True)
    den = np.sqrt((a * a).sum(-2) * (b * b).sum(-2))
    return np.divide((a * b).sum(-2), den, out=np.zeros_like(den), where=den > 0)


@dataclass
class RidgeSTRF:
    """A fitted ridge STRF per neuron.

    Attributes:
        strf: (N, C, n_lags, F) weights (lag 0 = the present bin).
        intercept: (N,) offsets.
        lambda_: (N,) the chosen penalty of each neuron.
        cv_correlation: (n_lambdas, N) mean held-out correlation per λ and neuron.
        lambdas: (n_lambdas,) the penalties tried.
    """

    strf: np.ndarray
    intercept: np.ndarray
    lambda_: np.ndarray
    cv_correlation: np.ndarray
    lambdas: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted responses (n_trials, T, N) for features (n_trials, T, C, F)."""
        n, t = features.shape[:2]
        design = lagged_design(features, self.strf.shape[2])
        weights = self.strf.transpose(2, 1, 3, 0).reshape(-1, self.strf.shape[0])  # (L·C·F, N)
        return (design @ weights + self.intercept).reshape(n, t, -1)


def fit_ridge_strf(features: np.ndarray, responses: np.ndarray, *, n_lags: int, lambdas=DEFAULT_LAMBDAS,
                   n_folds: int = 5) -> RidgeSTRF:
    """Ridge STRFs with λ chosen per neuron by k-fold cross-validation over trials.

    Trials are split into ``n_folds`` contiguous folds; for each λ and neuron the held-out
    Pearson r is averaged over folds, the best λ of each neuron is kept and the STRF refitted on
    all trials with it.

    Args:
        features: (n_trials, T, C, F) stimulus features (e.g. z-scored spectrograms).
        responses: (n_trials, T, N) responses.
        n_lags: STRF length (bins).
        lambdas: penalties to try (>= 0).
        n_folds: folds (2 <= n_folds <= n_trials).

    Returns:
        A `RidgeSTRF`.
    """
    y_all = numeric(responses, "responses")
    if y_all.ndim != 3 or y_all.shape[:2] != np.shape(features)[:2]:
        raise ValueError(f"responses must be (n_trials, T, N) matching features {np.shape(features)}, got {y_all.shape}")
    n_trials, t, n = y_all.shape
    if not 2 <= n_folds <= n_trials:
        raise ValueError(f"n_folds must lie in [2, n_trials={n_trials}], got {n_folds}")
    lambdas = np.asarray(lambdas, dtype=np.float64)
    x = lagged_design(features, n_lags)
    y = y_all.reshape(-1, n)
    fold_of = np.repeat(np.arange(n_trials) * n_folds // n_trials, t)
    scores = np.zeros((len(lambdas), n))
    for fold in range(n_folds):  # a handful of folds; everything inside is batched
        held = fold_of == fold
        weights, intercepts = ridge_path(x[~held], y[~held], lambdas)
        predicted = np.einsum("ri,lin->lrn", x[held], weights) + intercepts[:, None]
        scores += _correlation(predicted, y[held][None]) / n_folds
    best = scores.argmax(0)
    weights, intercepts = ridge_path(x, y, lambdas)
    w = weights[best, :, np.arange(n)]  # (N, n_features)
    c, f = np.shape(features)[2:]
    return RidgeSTRF(
        strf=w.reshape(n, n_lags, c, f).transpose(0, 2, 1, 3), intercept=intercepts[best, np.arange(n)],
        lambda_=lambdas[best], cv_correlation=scores, lambdas=lambdas,
    )


def strf_recovery(fitted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r between each fitted and true STRF over all their entries.

    Args:
        fitted, true: (N, ...) kernels of the same shape (e.g. (N, C, n_lags, F)); a fitted
            kernel shorter in lag than the true one is compared on the common lags.

    Returns:
        (N,) correlation per neuron (0 for a constant kernel).
    """
    fitted = numeric(fitted, "fitted")
    true = numeric(true, "true")
    if fitted.ndim == 4 and true.ndim == 4 and fitted.shape[2] != true.shape[2]:
        lags = min(fitted.shape[2], true.shape[2])
        fitted, true = fitted[:, :, :lags], true[:, :, :lags]
    if fitted.shape != true.shape:
        raise ValueError(f"fitted STRFs {fitted.shape} and true STRFs {true.shape} differ in shape")
    n = fitted.shape[0]
    return _correlation(fitted.reshape(n, -1, 1), true.reshape(n, -1, 1))[:, 0]

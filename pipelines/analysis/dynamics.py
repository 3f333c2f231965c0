"""Metrics of the Computation-Through-Dynamics benchmark for latent-dynamics models.

Pure numpy, float64, vectorised over dimensions. Definitions follow the benchmark's code,
``snel-repo/ComputationThruDynamicsBenchmark`` ``ctd/comparison/metrics.py``
(``get_signal_r2``, ``get_signal_r2_linear``, ``get_cycle_consistency``) and, for bits
per spike, the Neural Latents Benchmark's ``nlb_tools/evaluation.py::bits_per_spike``
(project note ``metrics.md``, section 5).

Conventions shared by every function:

* A signal (rates, latents, spikes) has shape ``(n_trials, n_time, n_dims)`` or
  ``(n_samples, n_dims)``. Trials x time are flattened to samples (row-major, as
  ``reshape(-1, n_dims)``); the last axis indexes dimensions (neurons, latents).
* Two signals that are compared sample by sample must have the same samples: equal
  shapes where the dimensions must also match, equal leading axes otherwise. Errors name
  both shapes.
* Inputs must be finite (``bits_per_spike`` accepts NaN spike counts as "missing").

"VW-R²" is the variance-weighted coefficient of determination, sklearn's
``r2_score(y_true, y_pred, multioutput="variance_weighted")``::

    VW-R² = 1 - Σ_d SSres_d / Σ_d SStot_d        (sums over dimensions with SStot_d > 0)

References:
    Versteeg, C., McCart, J. D., Ostrow, M., ... & Pandarinath, C. (2025). Computation-
    through-Dynamics Benchmark: simulated datasets and quality metrics for dynamical
    models of neural activity. bioRxiv preprint (code:
    snel-repo/ComputationThruDynamicsBenchmark).

    Pei, F. et al. (2021). Neural Latents Benchmark '21: evaluating latent variable
    models of neural population activity. NeurIPS Datasets and Benchmarks.
    arXiv:2109.04463.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = [
    "variance_weighted_r2",
    "rate_r2",
    "state_r2",
    "cycle_consistency",
    "bits_per_spike",
    "co_bps",
    "state_r2_both",
    "bit_accuracy",
    "run_task_model",
    "compare_dynamics",
]


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------


def _as_signal(values: ArrayLike, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """Validates a 2-D or 3-D signal and returns it flattened to (n_samples, n_dims)."""
    array = np.asarray(values)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have shape (n_trials, n_time, n_dims) or (n_samples, n_dims), "
            f"got shape {array.shape}"
        )
    if array.shape[-1] == 0:
        raise ValueError(f"{name} has no dimensions (shape {array.shape})")
    array = numeric(array, name, allow_nan=allow_nan)
    return array.reshape(-1, array.shape[-1])


def _same_samples(
    name_a: str, a: ArrayLike, flat_a: np.ndarray, name_b: str, b: ArrayLike, flat_b: np.ndarray
) -> None:
    """Checks that two signals have the same samples (leading axes)."""
    shape_a, shape_b = np.shape(a), np.shape(b)
    leading_ok = shape_a[:-1] == shape_b[:-1] or (
        flat_a.shape[0] == flat_b.shape[0] and (len(shape_a) == 2 or len(shape_b) == 2)
    )
    if not leading_ok:
        raise ValueError(
            f"{name_a} and {name_b} must have the same trials and time points (leading "
            f"axes), got {name_a} {shape_a} and {name_b} {shape_b}"
        )


def _same_shape(name_a: str, a: ArrayLike, name_b: str, b: ArrayLike) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a} {np.shape(a)} "
            f"and {name_b} {np.shape(b)}"
        )


def _vw_r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """VW-R² of validated (n_samples >= 2, n_dims) arrays, exactly as sklearn's r2_score."""
    if y_true.shape[0] < 2:
        raise ValueError(
            f"R² needs at least 2 samples, got {y_true.shape[0]} (shape {y_true.shape})"
        )
    residual = y_true - y_pred
    numerator = np.einsum("ij,ij->j", residual, residual)
    centred = y_true - y_true.mean(axis=0)
    denominator = np.einsum("ij,ij->j", centred, centred)
    nonzero = denominator != 0
    if not np.any(nonzero):
        # sklearn (force_finite=True): every output constant -> uniform mean of
        # 1 (exact prediction) or 0 (any error).
        return float(np.mean(numerator == 0))
    return float(1.0 - numerator[nonzero].sum() / denominator.sum())


def _affine_fit(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine map ``targets ≈ inputs @ coef + intercept`` (ordinary LS).

    As sklearn's ``LinearRegression``: centre both sides, minimum-norm ``lstsq`` for the
    coefficients, intercept from the means. Returns ``(coef (d_in, d_out), intercept)``.
    """
    mean_in = inputs.mean(axis=0)
    mean_out = targets.mean(axis=0)
    coef, *_ = np.linalg.lstsq(inputs - mean_in, targets - mean_out, rcond=None)
    return coef, mean_out - mean_in @ coef


def _pca(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full PCA fitted on ``train``: ``(mean, components (k, d))``, k = min(n, d).

    Same subspace and scores as ``sklearn.decomposition.PCA()`` (n_components=None, full
    SVD); component signs may differ, which no metric here depends on.
    """
    mean = train.mean(axis=0)
    _, _, components = np.linalg.svd(train - mean, full_matrices=False)
    return mean, components


# ----------------------------------------------------------------------------------------
# public metrics
# ----------------------------------------------------------------------------------------



def _train_val_pairs(first, second):
    """Validate two signals given as (name, train, val): samples match within each split,
    dimensions match across splits. Returns first_train, second_train, first_val, second_val."""
    (name_a, a_tr_raw, a_va_raw), (name_b, b_tr_raw, b_va_raw) = first, second
    a_tr, b_tr = _as_signal(a_tr_raw, f"{name_a}_train"), _as_signal(b_tr_raw, f"{name_b}_train")
    a_va, b_va = _as_signal(a_va_raw, f"{name_a}_val"), _as_signal(b_va_raw, f"{name_b}_val")
    _same_samples(f"{name_a}_train", a_tr_raw, a_tr, f"{name_b}_train", b_tr_raw, b_tr)
    _same_samples(f"{name_a}_val", a_va_raw, a_va, f"{name_b}_val", b_va_raw, b_va)
    _same_dims(f"{name_a}_train", a_tr, f"{name_a}_val", a_va)
    _same_dims(f"{name_b}_train", b_tr, f"{name_b}_val", b_va)
    return a_tr, b_tr, a_va, b_va

def variance_weighted_r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Variance-weighted R² over all dimensions, with trials x time flattened to samples.

    ``1 - Σ_d SSres_d / Σ_d SStot_d``: each dimension's R² weighted by its variance, so
    high-variance dimensions dominate. Identical to
    ``sklearn.metrics.r2_score(y_true, y_pred, multioutput="variance_weighted")`` on the
    flattened arrays, including its edge cases: dimensions with zero variance contribute
    neither residual nor weight, and if every dimension of ``y_true`` is constant the
    result is the fraction of dimensions predicted exactly.

    Args:
        y_true: Reference signal, shape (n_trials, n_time, n_dims) or (n_samples, n_dims).
        y_pred: Prediction, same shape and units as ``y_true``.

    Returns:
        VW-R², a float <= 1 (unbounded below; 0 for predicting the mean of each dimension).

    Raises:
        ValueError: On different or unsupported shapes, non-finite values, or fewer than 2
            samples.
        TypeError: On non-numeric input.

    Examples:
        >>> variance_weighted_r2(np.array([[0.0, 0.0], [2.0, 4.0]]),
        ...                      np.array([[1.0, 0.0], [1.0, 4.0]]))  # 1 - 2 / (2 + 8)
        0.8
    """
    _same_shape("y_true", y_true, "y_pred", y_pred)
    return _vw_r2(_as_signal(y_true, "y_true"), _as_signal(y_pred, "y_pred"))


def rate_r2(true_rates: ArrayLike, inferred_rates: ArrayLike) -> float:
    """Rate R²: VW-R² of the inferred rates against the true rates, with no mapping.

    CTD's ``get_signal_r2`` (evaluated on validation trials): the model's rates must
    reproduce the true firing rates neuron by neuron.

    Args:
        true_rates: Ground-truth rates, shape (n_trials, n_time, n_neurons) or
            (n_samples, n_neurons), e.g. spikes per bin.
        inferred_rates: The model's rates, same shape and units.

    Returns:
        VW-R², a float <= 1 (1 for perfect rates).

    Raises:
        ValueError: On different or unsupported shapes, non-finite values, or fewer than 2
            samples.

    Examples:
        >>> rates = np.array([[[1.0, 2.0], [3.0, 1.0]], [[2.0, 2.0], [0.5, 4.0]]])
        >>> rate_r2(rates, rates)
        1.0
    """
    _same_shape("true_rates", true_rates, "inferred_rates", inferred_rates)
    return _vw_r2(
        _as_signal(true_rates, "true_rates"), _as_signal(inferred_rates, "inferred_rates")
    )


def state_r2(
    true_latents_train: ArrayLike,
    inferred_latents_train: ArrayLike,
    true_latents_val: ArrayLike,
    inferred_latents_val: ArrayLike,
) -> float:
    """State R²: how well an affine map of the true latents explains the inferred latents.

    CTD's ``get_signal_r2_linear``: fit ``inferred ≈ true @ W + b`` by ordinary least
    squares on the training trials, then score ``VW-R²(inferred_val, true_val @ W + b)``.
    The direction (true -> inferred) penalises inferred dimensions that the true system
    does not explain; a model that merely contains the true latents among many spurious
    ones scores low. The number of dimensions may differ between true and inferred
    latents.

    Args:
        true_latents_train: True latents, (n_trials, n_time, d_true) or (n_samples, d_true).
        inferred_latents_train: Inferred latents of the same samples, d_inferred dims.
        true_latents_val: True latents of held-out samples (d_true dims).
        inferred_latents_val: Inferred latents of the held-out samples (d_inferred dims).

    Returns:
        VW-R² on the validation samples, a float <= 1.

    Raises:
        ValueError: On unsupported shapes, train or val pairs with different samples,
            dimension counts that differ between train and val, non-finite values, or
            fewer than 2 validation samples.

    Examples:
        >>> t = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> state_r2(t[:3], 2 * t[:3] + 1, t, 2 * t + 1)
        1.0
    """
    x_tr, y_tr, x_va, y_va = _train_val_pairs(
        ("true_latents", true_latents_train, true_latents_val),
        ("inferred_latents", inferred_latents_train, inferred_latents_val),
    )
    coef, intercept = _affine_fit(x_tr, y_tr)
    return _vw_r2(y_va, x_va @ coef + intercept)


def _same_dims(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of dimensions (last axis), "
            f"got {a.shape[1]} and {b.shape[1]}"
        )


def cycle_consistency(
    inferred_latents_train: ArrayLike,
    inferred_rates_train: ArrayLike,
    inferred_latents_val: ArrayLike,
    inferred_rates_val: ArrayLike,
    variance_threshold: float = 0.01,
    *,
    reconstruct_from: str = "predicted",
) -> float:
    """Cycle consistency: can the inferred latents be recovered from the model's rates?

    CTD's ``get_cycle_consistency``, with everything fitted on the training samples:

    1. PCA (all components) of the inferred latents and of the log inferred rates.
    2. Affine readout ``N ≈ L W + b`` from latent PCs ``L`` to log-rate PCs ``N`` (OLS).
    3. Log-rate PCs of the validation samples, ``N̂``: with ``reconstruct_from=
       "predicted"`` (default, as CTD's code) the readout's prediction
       ``N̂ = L_val W + b``; with ``"observed"`` the projection of the validation
       log-rates themselves, ``log(inferred_rates_val)``, onto the training log-rate PCs.
    4. ``L̂ = (N̂ - b) W⁺`` with a truncated pseudoinverse: SVD ``W = U S Vᵀ``; keep the
       first ``k`` singular values, ``k`` = the first index at which the cumulative
       fraction of ``Σ S²`` reaches ``1 - variance_threshold`` (``numpy.searchsorted``
       + 1, as CTD's code).
    5. Score ``VW-R²(L_val, L̂)``.

    With ``"predicted"`` (CTD's definition) the validation rates are not used: the score
    is the fraction of validation latent variance that lies in directions the readout
    does not discard, i.e. it penalises latent dimensions that barely affect the rates;
    it can be high even for rates unrelated to the latents, since then ``W`` is noise but
    usually well conditioned. ``"observed"`` also tests that the model's actual rates
    determine its latents; then unrelated rates score low (typically far below 0).
    Singular values that are exactly 0 are never inverted (CTD's code would divide by 0).

    Args:
        inferred_latents_train: Latents, (n_trials, n_time, n_latents) or
            (n_samples, n_latents).
        inferred_rates_train: The model's rates for the same samples, > 0, with
            n_neurons dims.
        inferred_latents_val: Latents of held-out samples.
        inferred_rates_val: Rates of the held-out samples, > 0 (only used with
            ``reconstruct_from="observed"``, but always validated).
        variance_threshold: Fraction of ``Σ S²`` that may be discarded, in [0, 1).
        reconstruct_from: ``"predicted"`` or ``"observed"`` (see above).

    Returns:
        VW-R² between the validation latent PCs and their reconstruction, a float <= 1.

    Raises:
        ValueError: On unsupported shapes, latents and rates with different samples,
            dimension counts that differ between train and val, non-finite or
            non-positive rates, a threshold outside [0, 1), an unknown
            ``reconstruct_from``, or fewer than 2 samples.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> lat = rng.standard_normal((200, 3))
        >>> rates = np.exp(lat @ rng.standard_normal((3, 10)) * 0.3)
        >>> round(cycle_consistency(lat[:100], rates[:100], lat[100:], rates[100:]), 9)
        1.0
    """
    if reconstruct_from not in ("predicted", "observed"):
        raise ValueError(
            f"reconstruct_from must be 'predicted' or 'observed', got {reconstruct_from!r}"
        )
    threshold = float(variance_threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"variance_threshold must be in [0, 1), got {variance_threshold}")
    lat_tr, rates_tr, lat_va, rates_va = _train_val_pairs(
        ("inferred_latents", inferred_latents_train, inferred_latents_val),
        ("inferred_rates", inferred_rates_train, inferred_rates_val),
    )
    for name, rates in (("inferred_rates_train", rates_tr), ("inferred_rates_val", rates_va)):
        if np.any(rates <= 0):
            raise ValueError(f"{name} must be > 0 (its log is taken), min is {rates.min()}")
    if lat_tr.shape[0] < 2:
        raise ValueError(f"at least 2 training samples are needed, got {lat_tr.shape[0]}")

    lat_mean, lat_components = _pca(lat_tr)
    log_tr = np.log(rates_tr)
    log_mean, log_components = _pca(log_tr)
    pcs_lat_tr = (lat_tr - lat_mean) @ lat_components.T
    pcs_lat_va = (lat_va - lat_mean) @ lat_components.T
    pcs_log_tr = (log_tr - log_mean) @ log_components.T

    coef, intercept = _affine_fit(pcs_lat_tr, pcs_log_tr)  # N ≈ L @ coef + b
    if reconstruct_from == "predicted":
        pcs_log_va = pcs_lat_va @ coef + intercept
    else:
        pcs_log_va = (np.log(rates_va) - log_mean) @ log_components.T

    # Truncated pseudoinverse of the readout W = coefᵀ (n_log_pcs, n_lat_pcs).
    u, sing, vt = np.linalg.svd(coef.T, full_matrices=False)
    total = np.sum(sing**2)
    if total > 0:
        cumulative = np.cumsum(sing**2) / total
        keep = min(int(np.searchsorted(cumulative, 1.0 - threshold)) + 1, sing.shape[0])
        keep = min(keep, int(np.count_nonzero(sing > 0)))
    else:
        keep = 0
    pinv = (vt[:keep].T / sing[:keep]) @ u[:, :keep].T  # (n_lat_pcs, n_log_pcs)
    reconstructed = (pcs_log_va - intercept) @ pinv.T
    return _vw_r2(pcs_lat_va, reconstructed)


def bits_per_spike(predicted_rates: ArrayLike, spikes: ArrayLike, *, eps: float = 1e-9) -> float:
    """Bits per spike of predicted rates (Neural Latents Benchmark; Pei et al., 2021).

    The Poisson log-likelihood of the observed counts under the predicted rates, minus
    that under a null model predicting each neuron's mean count over all trials and time
    points, in bits, divided by the total number of spikes::

        LL(λ) = Σ (k log λ - λ - log k!)
        bps   = (LL(λ_pred) - LL(λ_null)) / (Σ k · ln 2)

    (the ``log k!`` terms cancel and are not computed). As NLB's ``bits_per_spike``: rates
    that are exactly 0 are replaced by ``eps`` (NLB: 1e-9), as is a null rate of 0 (a
    neuron without spikes); NaN spike counts mark missing bins, which are excluded from
    every sum and from the null means. Predicting the mean rate gives exactly 0; better
    predictions give > 0. Rates are expected counts per bin, not log-rates (CTD's
    ``get_bps`` passes log-rates to a function that expects them; this one does not).

    Args:
        predicted_rates: Expected spike counts per bin, >= 0, shape
            (n_trials, n_time, n_neurons) or (n_samples, n_neurons).
        spikes: Observed counts, same shape, >= 0 (NaN = missing).
        eps: Replacement for zero rates, > 0.

    Returns:
        Bits per spike, a float; NaN if there are no spikes at all.

    Raises:
        ValueError: On different or unsupported shapes, non-finite or negative rates
            (where spikes are present), infinite or negative counts, or ``eps <= 0``.

    Examples:
        >>> spikes = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])
        >>> bits_per_spike(np.full((3, 2), 1.0), spikes)  # the mean rates: 0 bits
        0.0
    """
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    _same_shape("predicted_rates", predicted_rates, "spikes", spikes)
    counts = _as_signal(spikes, "spikes", allow_nan=True)
    present = ~np.isnan(counts)
    rates = np.asarray(predicted_rates)
    if not (np.issubdtype(rates.dtype, np.number) or rates.dtype == np.bool_):
        raise TypeError(f"predicted_rates must be numeric, got dtype {rates.dtype}")
    rates = rates.astype(np.float64, copy=False).reshape(counts.shape)
    if not np.all(np.isfinite(rates[present])):
        raise ValueError("predicted_rates contains non-finite values (NaN or inf)")
    if np.any(rates[present] < 0) or np.any(counts[present] < 0):
        raise ValueError("predicted_rates and spikes must be >= 0")
    counts = np.where(present, counts, 0.0)
    total = counts.sum()
    if total == 0:
        return math.nan
    n_present = present.sum(axis=0)
    null = np.divide(
        counts.sum(axis=0), n_present, out=np.zeros(counts.shape[1]), where=n_present > 0
    )
    null = np.where(null == 0, eps, null)
    rates = np.where(present, np.where(rates == 0, eps, rates), 1.0)  # 1.0: masked, unused

    ll_model = np.sum(np.where(present, counts * np.log(rates) - rates, 0.0))
    log_null = np.log(null)
    ll_null = np.sum(counts * log_null) - np.sum(n_present * null)
    return float((ll_model - ll_null) / (total * math.log(2.0)))


# ----------------------------------------------------------------------------------------
# additions for the Computation-Through-Dynamics workflow
# ----------------------------------------------------------------------------------------


def co_bps(
    predicted_rates: ArrayLike, spikes: ArrayLike, n_heldin: int, *, variant: str = "nlb"
) -> float:
    """Co-smoothing bits per spike: `bits_per_spike` of the held-out neurons only.

    The model saw the first ``n_heldin`` neurons' spikes and predicts every neuron; the score is
    that of neurons ``n_heldin:`` (NLB's co-bps). ``variant="ctd"`` reproduces CtD's
    ``bits_per_spike`` (``ctd/data_modeling/callbacks/metrics.py``): float32 arithmetic on
    log-rates, and the null rate offset by torch's ``poisson_nll_loss`` eps (1e-8) everywhere
    instead of only where it is 0; the two agree to a few 1e-6 on typical data.

    Args:
        predicted_rates: (n_trials, T, N) or (n_samples, N) expected counts, > 0.
        spikes: observed counts, same shape.
        n_heldin: neurons seen by the model, 1 <= n_heldin < N.
        variant: "nlb" (default) or "ctd".

    Returns:
        Bits per spike of the held-out neurons (NaN without held-out spikes).
    """
    rates, counts = np.asarray(predicted_rates), np.asarray(spikes)
    _same_shape("predicted_rates", rates, "spikes", counts)
    if not 1 <= int(n_heldin) < rates.shape[-1]:
        raise ValueError(f"n_heldin={n_heldin} must lie in [1, {rates.shape[-1]}) to leave held-out neurons")
    if variant == "nlb":
        return bits_per_spike(rates[..., n_heldin:], counts[..., n_heldin:])
    if variant != "ctd":
        raise ValueError(f"variant {variant!r}: use 'nlb' or 'ctd'")
    r = _as_signal(rates[..., n_heldin:], "predicted_rates").astype(np.float32)
    k = _as_signal(counts[..., n_heldin:], "spikes").astype(np.float32)
    null = k.mean(axis=0, keepdims=True)
    ll_model = np.sum(k * np.log(r) - r, dtype=np.float64)
    ll_null = np.sum(k * np.log(null + np.float32(1e-8)) - null, dtype=np.float64)
    total = float(k.sum())
    return float((ll_model - ll_null) / total / math.log(2.0)) if total else math.nan


def state_r2_both(
    true_latents_train: ArrayLike,
    inferred_latents_train: ArrayLike,
    true_latents_val: ArrayLike,
    inferred_latents_val: ArrayLike,
) -> dict[str, float]:
    """State R² in both directions.

    ``true_to_inferred`` is CtD's state R² (`state_r2`: penalises inferred dimensions the true
    system does not explain); ``inferred_to_true`` maps the inferred latents to the true ones
    (penalises true dimensions the model misses; CtD's "latent R²" in the other direction).

    Returns:
        ``{"true_to_inferred": float, "inferred_to_true": float}``.
    """
    return {
        "true_to_inferred": state_r2(true_latents_train, inferred_latents_train, true_latents_val,
                                     inferred_latents_val),
        "inferred_to_true": state_r2(inferred_latents_train, true_latents_train, inferred_latents_val,
                                     true_latents_val),
    }


def bit_accuracy(outputs: ArrayLike, targets: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Fraction of (trial, step, bit) entries the mask keeps where ``outputs > 0.5`` equals the bit.

    Args:
        outputs: (n_trials, T, n_bits) the task model's outputs.
        targets: the same shape, bits in {0, 1}.
        mask: the same shape (or (n_trials, T)), 0 = ignored; None keeps every entry.
    """
    outputs, targets = np.asarray(outputs), np.asarray(targets)
    _same_shape("outputs", outputs, "targets", targets)
    keep = np.ones(outputs.shape, bool) if mask is None else np.broadcast_to(
        np.asarray(mask).reshape(np.shape(mask) + (1,) * (outputs.ndim - np.ndim(mask))), outputs.shape) > 0
    if not keep.any():
        raise ValueError("the mask keeps no entry")
    return float(np.mean(((outputs > 0.5) == (targets > 0.5))[keep]))


def run_task_model(model, loaders_by_tier, device="cpu") -> dict[str, dict[str, np.ndarray]]:
    """A task model's outputs and latents on every trial of its data, tier by tier, in loader order.

    Args:
        model: with ``run(inputs) -> (outputs, latents)`` (`neurofit.models.task_rnns.TaskRNN`).
        loaders_by_tier: ``{tier: {"all": loader}}`` of a task dataset; each loader's dataset is
            read in its stored order (a shuffling train loader would make the result irreproducible).
        device: where the model runs.

    Returns:
        ``{tier: {"inputs", "targets", "weights", "outputs", "latents"}}`` float64 arrays
        (n_trials, T, ...).
    """
    import torch
    from torch.utils.data import DataLoader

    out: dict[str, dict[str, np.ndarray]] = {}
    was = model.training
    model.to(device).eval()
    try:
        with torch.no_grad():
            for tier, sessions in loaders_by_tier.items():
                parts: dict[str, list] = {}
                loader = sessions["all"]
                for batch in DataLoader(loader.dataset, batch_size=loader.batch_size or 64):
                    outputs, latents = model.run(batch["inputs"].to(device))
                    for name, value in (("inputs", batch["inputs"]), ("targets", batch["targets"]),
                                        ("weights", batch["weights"]), ("outputs", outputs), ("latents", latents)):
                        parts.setdefault(name, []).append(value.double().cpu().numpy())
                out[tier] = {k: np.concatenate(v) for k, v in parts.items()}
    finally:
        model.train(was)
    return out


def compare_dynamics(true: dict[str, np.ndarray], inferred: dict[str, np.ndarray], n_heldin: int,
                     *, bps_variant: str = "nlb") -> dict[str, float]:
    """CtD's comparison of a data-trained model with the task model that generated its data.

    Args:
        true: ``train_latents``, ``valid_latents`` (n, T, L_true) and ``valid_activity``
            (n, T, N) true rates, ``valid_recon_data`` (n, T, N) spikes (CtD h5 keys).
        inferred: ``train_latents``, ``valid_latents`` (n, T, L) and ``train_rates``,
            ``valid_rates`` (n, T, N) of the data-trained model on the same trials.
        n_heldin: held-in neurons (the first ones).
        bps_variant: co-bps definition, "nlb" or "ctd" (`co_bps`).

    Returns:
        ``rate_r2``, ``state_r2`` (true -> inferred, CtD), ``state_r2_reverse`` (inferred ->
        true), ``cycle_consistency`` and ``co_bps``.
    """
    both = state_r2_both(true["train_latents"], inferred["train_latents"], true["valid_latents"],
                         inferred["valid_latents"])
    return {
        "rate_r2": rate_r2(true["valid_activity"], inferred["valid_rates"]),
        "state_r2": both["true_to_inferred"],
        "state_r2_reverse": both["inferred_to_true"],
        "cycle_consistency": cycle_consistency(inferred["train_latents"], inferred["train_rates"],
                                               inferred["valid_latents"], inferred["valid_rates"]),
        "co_bps": co_bps(inferred["valid_rates"], true["valid_recon_data"], n_heldin, variant=bps_variant),
    }

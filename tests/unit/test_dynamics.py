"""Tests for neurofit.pipelines.analysis.dynamics (no database, fast).

References used here, independently of the library: sklearn's ``r2_score``, ``PCA`` and
``LinearRegression`` (the building blocks of the Computation-Through-Dynamics benchmark's
``ctd/comparison/metrics.py``, re-assembled here following its steps), an NLB-style
Poisson log-likelihood with ``gammaln``, and simulations with known answers.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.special import gammaln
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from neurofit.pipelines.analysis import dynamics
from neurofit.pipelines.analysis.dynamics import (
    bits_per_spike,
    cycle_consistency,
    rate_r2,
    state_r2,
    variance_weighted_r2,
)

# ----------------------------------------------------------------------------------------
# references built from sklearn / scipy
# ----------------------------------------------------------------------------------------


def flat(a):
    return a.reshape(-1, a.shape[-1])


def ref_vw_r2(y_true, y_pred):
    return r2_score(flat(y_true), flat(y_pred), multioutput="variance_weighted")


def ref_state_r2(true_tr, inf_tr, true_va, inf_va):
    reg = LinearRegression().fit(flat(true_tr), flat(inf_tr))
    return ref_vw_r2(flat(inf_va), reg.predict(flat(true_va)))


def ref_cycle_consistency(lat_tr, rates_tr, lat_va, threshold=0.01):
    """CTD's get_cycle_consistency, step by step, with sklearn."""
    lat_tr, lat_va = flat(lat_tr), flat(lat_va)
    log_tr = np.log(flat(rates_tr))
    pca_lat = PCA().fit(lat_tr)
    pca_log = PCA().fit(log_tr)
    l_tr, l_va = pca_lat.transform(lat_tr), pca_lat.transform(lat_va)
    readout = LinearRegression().fit(l_tr, pca_log.transform(log_tr))
    predicted = readout.predict(l_va)
    w, b = readout.coef_, readout.intercept_
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    cumulative = np.cumsum(s**2 / np.sum(s**2))
    k = min(np.searchsorted(cumulative, 1 - threshold) + 1, len(s))
    pinv = vt[:k].T @ np.diag(1 / s[:k]) @ u[:, :k].T
    return r2_score(l_va, (predicted - b) @ pinv.T, multioutput="variance_weighted")


def ref_bits_per_spike(rates, spikes):
    """NLB's definition with the full Poisson NLL (gammaln terms included, NaN = missing)."""
    present = ~np.isnan(spikes)

    def nll(lam):
        lam, k = lam[present], spikes[present]
        lam = np.where(lam == 0, 1e-9, lam)
        return np.sum(lam - k * np.log(lam) + gammaln(k + 1.0))

    null = np.tile(np.nanmean(spikes, axis=tuple(range(spikes.ndim - 1)), keepdims=True),
                   spikes.shape[:-1] + (1,))
    return (nll(null) - nll(rates)) / np.nansum(spikes) / np.log(2)


def latent_system(seed, n_trials=24, n_time=40, n_latents=3, n_neurons=20, gain=0.4):
    """Smooth latents and log-linear Poisson rates (an invertible latent -> rate map)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, n_time)
    phases = rng.uniform(0, 2 * np.pi, (n_trials, 1, n_latents))
    freqs = np.arange(1, n_latents + 1)
    latents = np.sin(freqs * t[None, :, None] + phases)
    latents = latents + 0.2 * rng.standard_normal(latents.shape)
    readout = rng.standard_normal((n_latents, n_neurons))
    log_rates = gain * latents @ readout - 1.0
    return rng, latents, np.exp(log_rates)


# ----------------------------------------------------------------------------------------
# variance-weighted R², rate R², state R²
# ----------------------------------------------------------------------------------------


def test_vw_r2_equals_sklearn():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((6, 30, 5)) * np.array([0.1, 1, 3, 10, 0.5])
    noisy = y + rng.standard_normal(y.shape)
    assert variance_weighted_r2(y, noisy) == pytest.approx(ref_vw_r2(y, noisy), abs=1e-12)
    assert variance_weighted_r2(flat(y), flat(noisy)) == pytest.approx(
        ref_vw_r2(y, noisy), abs=1e-12
    )
    # variance weighting differs from the uniform mean: the test can tell them apart
    uniform = r2_score(flat(y), flat(noisy))
    assert abs(uniform - variance_weighted_r2(y, noisy)) > 0.1
    # a constant target dimension (zero weight), and all-constant targets
    y[..., 1] = 2.0
    assert variance_weighted_r2(y, noisy) == pytest.approx(ref_vw_r2(y, noisy), abs=1e-12)
    constant = np.ones((10, 2))
    for pred in (constant, constant + np.array([0.0, 1.0]), constant + 1.0):
        assert variance_weighted_r2(constant, pred) == pytest.approx(
            r2_score(constant, pred, multioutput="variance_weighted")
        )


def test_rate_r2_perfect_and_sklearn():
    rng, _, rates = latent_system(1)
    assert rate_r2(rates, rates) == 1.0
    inferred = rates * np.exp(0.3 * rng.standard_normal(rates.shape))
    value = rate_r2(rates, inferred)
    assert value == pytest.approx(ref_vw_r2(rates, inferred), abs=1e-12)
    assert value < 0.99
    # argument order matters (true first): R² is not symmetric
    assert rate_r2(inferred, rates) != pytest.approx(value, abs=1e-6)


def test_state_r2_exact_affine_is_one_and_matches_sklearn():
    rng, latents, _ = latent_system(2)
    mixing = rng.standard_normal((3, 5))
    inferred = latents @ mixing + np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    train, val = slice(0, 16), slice(16, None)
    assert state_r2(latents[train], inferred[train], latents[val], inferred[val]) == (
        pytest.approx(1.0, abs=1e-10)
    )
    noisy = inferred + 0.5 * rng.standard_normal(inferred.shape)
    value = state_r2(latents[train], noisy[train], latents[val], noisy[val])
    assert value == pytest.approx(
        ref_state_r2(latents[train], noisy[train], latents[val], noisy[val]), abs=1e-10
    )
    assert 0.3 < value < 0.99


def test_state_r2_near_zero_for_independent_latents():
    rng = np.random.default_rng(3)
    true = rng.standard_normal((40, 50, 3))
    inferred = rng.standard_normal((40, 50, 4))
    value = state_r2(true[:20], inferred[:20], true[20:], inferred[20:])
    assert abs(value) < 0.01  # 1000 training samples, 3 + 1 parameters per dimension


def test_state_r2_penalises_spurious_inferred_dimensions():
    rng, latents, _ = latent_system(4)
    spurious = np.concatenate([latents, rng.standard_normal(latents.shape)], axis=-1)
    value = state_r2(latents[:16], spurious[:16], latents[16:], spurious[16:])
    assert value < 0.7  # the true latents explain only their own half of the variance


# ----------------------------------------------------------------------------------------
# cycle consistency
# ----------------------------------------------------------------------------------------


def test_cycle_consistency_matches_ctd_steps():
    rng, latents, rates = latent_system(5, n_latents=4)
    latents = latents * np.array([2.0, 1.0, 1.0, 0.3])
    rates = rates * np.exp(0.2 * rng.standard_normal(rates.shape))  # not exactly log-linear
    value = cycle_consistency(latents[:12], rates[:12], latents[12:], rates[12:])
    assert value == pytest.approx(ref_cycle_consistency(latents[:12], rates[:12], latents[12:]),
                                  abs=1e-10)


def test_cycle_consistency_high_for_invertible_map():
    _, latents, rates = latent_system(6)
    for mode in ("predicted", "observed"):
        value = cycle_consistency(latents[:12], rates[:12], latents[12:], rates[12:],
                                  reconstruct_from=mode)
        assert value == pytest.approx(1.0, abs=1e-8), mode


def test_cycle_consistency_low_for_unrelated_rates():
    rng, latents, _ = latent_system(7)
    unrelated = np.exp(0.5 * rng.standard_normal((24, 40, 20)))
    observed = cycle_consistency(latents[:12], unrelated[:12], latents[12:], unrelated[12:],
                                 reconstruct_from="observed")
    assert observed < 0.0
    # CTD's own definition reconstructs from *predicted* log-rates and ignores the
    # validation rates: there, unrelated rates need not score low (documented).
    predicted = cycle_consistency(latents[:12], unrelated[:12], latents[12:], unrelated[12:])
    assert predicted > observed


def test_cycle_consistency_penalises_latents_that_do_not_drive_rates():
    # 4 equally variable latents, rates driven by 3: the 4th readout column is ~0 and is
    # truncated, so about 1/4 of the latent variance cannot be recovered.
    rng = np.random.default_rng(8)
    latents = rng.standard_normal((30, 40, 4))
    weights = rng.standard_normal((4, 20))
    weights[3] = 0.0
    rates = np.exp(0.3 * latents @ weights)
    value = cycle_consistency(latents[:15], rates[:15], latents[15:], rates[15:])
    assert value == pytest.approx(0.75, abs=0.03)


# ----------------------------------------------------------------------------------------
# bits per spike
# ----------------------------------------------------------------------------------------


def test_bits_per_spike_zero_for_mean_rate_and_positive_for_true_rates():
    rng, _, rates = latent_system(9)
    spikes = rng.poisson(rates).astype(float)
    mean_rate = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    assert bits_per_spike(mean_rate, spikes) == pytest.approx(0.0, abs=1e-12)
    good = bits_per_spike(rates, spikes)
    assert good > 0.1
    assert good == pytest.approx(ref_bits_per_spike(rates, spikes), rel=1e-10)
    # a wrong model (shuffled trials) is worse than the mean
    assert bits_per_spike(rates[::-1], spikes) < 0.0


def test_bits_per_spike_zero_rates_and_missing_bins():
    spikes = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    rates = np.array([[0.0, 1.0], [1.5, 0.0], [1.0, 0.0], [0.5, 0.0]])
    assert bits_per_spike(rates, spikes) == pytest.approx(ref_bits_per_spike(rates, spikes),
                                                          rel=1e-12)
    missing = spikes.copy()
    missing[3, 0] = np.nan
    value = bits_per_spike(rates, missing)
    assert value == pytest.approx(ref_bits_per_spike(rates, missing), rel=1e-12)
    assert value != pytest.approx(bits_per_spike(rates, spikes), rel=1e-3)  # the mask acts
    assert np.isnan(bits_per_spike(rates, np.zeros_like(spikes)))


def test_validation_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        variance_weighted_r2(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(5, 4, 3\).*\(5, 3, 2\)"):
        state_r2(np.zeros((5, 4, 3)), np.zeros((5, 3, 2)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="> 0"):
        cycle_consistency(np.ones((5, 2)), np.zeros((5, 3)), np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        bits_per_spike(-np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="reconstruct_from"):
        cycle_consistency(np.ones((5, 2)), np.ones((5, 3)), np.ones((5, 2)), np.ones((5, 3)),
                          reconstruct_from="val")


def test_doctests():
    result = doctest.testmod(dynamics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5
    assert result.failed == 0

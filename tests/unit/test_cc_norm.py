"""Tests for the repeat-based noise ceilings in neurofit.pipelines.analysis.prediction.

Signal power, CCabs, CCmax, CCnorm (Sahani & Linden 2003; Schoppe et al. 2016) and the
split-half CCmax (Hsu, Borst & Theunissen 2004), checked against (a) both closed forms of
the signal power written here independently (project note ``metrics.md`` section 1c),
(b) a brute-force split-half loop, and (c) a simulation oracle: a known noise-free
signal, noisy repeats and a prediction with a known correlation to the signal, with
tolerances derived from the sample sizes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurofit.pipelines.analysis.prediction import (
    cc_abs,
    cc_max,
    cc_norm,
    repeats_array,
    signal_power,
    split_half_cc_max,
)

# ----------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------


def ref_sp_sahani(r):
    """SP = (N P(mean) - mean_k P(r_k)) / (N - 1), one neuron at a time, P = var ddof 0."""
    n_rep, _, n_neurons = r.shape
    out = np.empty(n_neurons)
    for j in range(n_neurons):
        trials = r[:, :, j]
        out[j] = (n_rep * np.var(trials.mean(0)) - np.mean([np.var(t) for t in trials])) / (
            n_rep - 1
        )
    return out


def ref_sp_schoppe(r):
    """SP = (Var(Σ_k r_k) - Σ_k Var(r_k)) / (N (N - 1)), one neuron at a time."""
    n_rep, _, n_neurons = r.shape
    out = np.empty(n_neurons)
    for j in range(n_neurons):
        trials = r[:, :, j]
        out[j] = (np.var(trials.sum(0)) - sum(np.var(t) for t in trials)) / (n_rep * (n_rep - 1))
    return out


def ref_split_half(r):
    """Hsu split-half CCmax by brute force over all complementary splits (even N)."""
    n_rep, _, n_neurons = r.shape
    out = np.empty(n_neurons)
    for j in range(n_neurons):
        values = []
        for half in itertools.combinations(range(n_rep), n_rep // 2):
            if 0 not in half:
                continue  # each split once
            other = [k for k in range(n_rep) if k not in half]
            a = r[list(half), :, j].mean(0)
            b = r[other, :, j].mean(0)
            values.append(np.corrcoef(a, b)[0, 1])
        m = abs(np.mean(values))
        out[j] = np.sqrt(2 / (1 + 1 / m))
    return out


def simulate(seed, n_samples=400, n_neurons=300, n_repeats=8, noise_sd=2.0, pred_noise_sd=0.4):
    """Signal s, repeats s + noise, prediction s + independent noise (corr(ŷ, s) ≈ 0.78)."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.7, 1.5, n_neurons)
    signal = rng.standard_normal((n_samples, n_neurons)) * scale
    repeats = signal + noise_sd * rng.standard_normal((n_repeats, n_samples, n_neurons))
    prediction = 0.5 * signal + pred_noise_sd * scale * rng.standard_normal((n_samples, n_neurons))
    return signal, repeats, prediction


def columnwise_corr(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


# ----------------------------------------------------------------------------------------
# signal power
# ----------------------------------------------------------------------------------------


def test_signal_power_equals_both_closed_forms():
    _, r, _ = simulate(0, n_samples=50, n_neurons=7, n_repeats=5)
    r = r + 10.0  # an offset must not matter
    sp = signal_power(r)
    np.testing.assert_allclose(sp, ref_sp_sahani(r), rtol=1e-12, atol=0)
    np.testing.assert_allclose(sp, ref_sp_schoppe(r), rtol=1e-12, atol=0)
    np.testing.assert_allclose(ref_sp_sahani(r), ref_sp_schoppe(r), rtol=1e-12, atol=0)


def test_signal_power_is_unbiased_for_the_signal_variance():
    # One fixed signal; 3000 independent noise draws (one per column).
    rng = np.random.default_rng(1)
    n_draws, n_samples, n_repeats, noise_sd = 3000, 100, 4, 1.5
    signal = rng.standard_normal(n_samples)[:, None] * np.ones((1, n_draws))
    r = signal + noise_sd * rng.standard_normal((n_repeats, n_samples, n_draws))
    sp = signal_power(r)
    truth = signal[:, 0].var()  # ddof 0, matching the convention
    standard_error = sp.std() / np.sqrt(n_draws)
    assert abs(sp.mean() - truth) < 4 * standard_error
    assert abs(sp.mean() / truth - 1) < 0.02
    # The naive power of the mean is biased upwards by the noise: the test can tell.
    naive = r.mean(0).var(0).mean()
    assert naive - truth > 10 * standard_error


# ----------------------------------------------------------------------------------------
# CCabs, CCmax, CCnorm: simulation oracle
# ----------------------------------------------------------------------------------------


def test_cc_norm_recovers_correlation_with_the_signal():
    signal, r, prediction = simulate(2)
    truth = columnwise_corr(prediction, signal)  # the sample corr(ŷ, s) per neuron
    assert 0.7 < truth.mean() < 0.85
    norm = cc_norm(r, prediction)
    assert not np.any(np.isnan(norm))
    difference = norm - truth
    standard_error = difference.std() / np.sqrt(difference.size)
    assert abs(difference.mean()) < 4 * standard_error + 2e-3
    # spread: a few times the sampling SD of a correlation over 400 samples
    assert np.sqrt(np.mean(difference**2)) < 3 * np.mean(1 - truth**2) / np.sqrt(400)

    absolute = cc_abs(r, prediction)
    assert truth.mean() - absolute.mean() > 10 * standard_error  # biased low
    np.testing.assert_allclose(norm, absolute / cc_max(r), rtol=1e-10)


def test_cc_abs_and_cc_norm_match_per_neuron_formulas():
    _, r, prediction = simulate(3, n_samples=30, n_neurons=5)
    expected = [np.corrcoef(r.mean(0)[:, j], prediction[:, j])[0, 1] for j in range(5)]
    np.testing.assert_allclose(cc_abs(r, prediction), expected, rtol=1e-12)
    sp = ref_sp_schoppe(r)
    expected_norm = []
    for j in range(5):
        mean_j, pred_j = r.mean(0)[:, j], prediction[:, j]
        cov = np.mean((mean_j - mean_j.mean()) * (pred_j - pred_j.mean()))  # ddof 0
        expected_norm.append(cov / np.sqrt(sp[j] * np.var(pred_j)))
    np.testing.assert_allclose(cc_norm(r, prediction), expected_norm, rtol=1e-10)
    np.testing.assert_allclose(cc_max(r), np.sqrt(sp / r.mean(0).var(0)), rtol=1e-12)


def test_cc_max_matches_theory_and_split_half():
    signal, r, _ = simulate(4)
    ceiling = cc_max(r)
    assert np.all((ceiling > 0) & (ceiling <= 1))
    # theory: corr(ȳ, s) = sqrt(P(s) / (P(s) + σ²/N))
    expected = columnwise_corr(r.mean(0), signal)
    assert abs(ceiling.mean() - expected.mean()) < 0.01
    hsu = split_half_cc_max(r)
    assert abs(hsu.mean() - ceiling.mean()) < 0.01
    assert np.corrcoef(hsu, ceiling)[0, 1] > 0.9


def test_cc_norm_nan_where_signal_power_not_positive():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 3))
    r = np.stack([x, -x])  # ȳ = 0: SP = -P(x) < 0
    r[:, :, 2] = rng.standard_normal((2, 20)) + 3 * rng.standard_normal(20)  # has signal
    prediction = rng.standard_normal((20, 3))
    assert np.all(signal_power(r)[:2] < 0)
    norm = cc_norm(r, prediction)
    assert np.all(np.isnan(norm[:2])) and np.isfinite(norm[2])
    assert np.all(np.isnan(cc_max(r)[:2])) and np.isfinite(cc_max(r)[2])
    # constant prediction with positive SP: 0 by policy
    assert cc_norm(r, np.ones((20, 3)))[2] == 0.0


def test_cc_norm_can_exceed_one():
    # Few samples, little signal: the SP estimate is noisy and CCnorm overshoots 1 for
    # some neurons when the prediction is the true signal.
    signal, r, _ = simulate(6, n_samples=20, n_neurons=400, n_repeats=2, noise_sd=3.0)
    norm = cc_norm(r, signal)
    assert np.nanmax(norm) > 1.0


# ----------------------------------------------------------------------------------------
# split-half CCmax
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_repeats", [2, 4, 6])
def test_split_half_equals_brute_force(n_repeats):
    _, r, _ = simulate(7, n_samples=40, n_neurons=6, n_repeats=n_repeats, noise_sd=1.0)
    np.testing.assert_allclose(split_half_cc_max(r), ref_split_half(r), rtol=1e-10)


def test_split_half_odd_repeats_drop_the_last():
    _, r, _ = simulate(8, n_samples=40, n_neurons=6, n_repeats=7)
    assert np.array_equal(split_half_cc_max(r), split_half_cc_max(r[:6]))
    assert not np.array_equal(split_half_cc_max(r), split_half_cc_max(r[1:]))


def test_split_half_sampling_is_seeded():
    # 14 repeats: 1716 distinct splits > 126, so a seeded subset is drawn.
    _, r, _ = simulate(9, n_samples=50, n_neurons=20, n_repeats=14)
    a = split_half_cc_max(r, seed=3)
    assert np.array_equal(a, split_half_cc_max(r, seed=3))
    b = split_half_cc_max(r, seed=4)
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=0.02)
    everything = split_half_cc_max(r, n_splits=2000)  # all 1716 splits
    np.testing.assert_allclose(a, everything, atol=0.02)


# ----------------------------------------------------------------------------------------
# repeats_array and validation
# ----------------------------------------------------------------------------------------


def test_repeats_array_orders_by_sorted_id_then_trial():
    responses = np.arange(12.0).reshape(6, 2)
    ids = np.array([5, 1, 5, 3, 1, 3])
    stacked = repeats_array(responses, ids)
    assert stacked.shape == (2, 3, 2)
    np.testing.assert_array_equal(stacked[:, :, 0], [[2.0, 6.0, 0.0], [8.0, 10.0, 4.0]])


def test_repeats_array_unequal_counts_error_names_counts():
    with pytest.raises(ValueError, match=r"repeat counts 1 \(e\.g\. stimulus 'b'\), 2"):
        repeats_array(np.zeros((3, 1)), ["a", "a", "b"])


def test_shape_errors_name_both_shapes():
    r = np.zeros((3, 10, 4))
    with pytest.raises(ValueError, match=r"\(10, 5\).*\(3, 10, 4\)"):
        cc_norm(r, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="3-D"):
        signal_power(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2 repeats"):
        cc_max(np.zeros((1, 10, 4)))
    with pytest.raises(ValueError, match="n_splits"):
        split_half_cc_max(r, n_splits=0)

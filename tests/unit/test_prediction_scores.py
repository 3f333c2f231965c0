"""Tests for neurofit.pipelines.analysis.prediction (no database, fast).

The library is checked against (a) straightforward per-neuron / per-stimulus reference
loops written here independently of the library (and following the formulas of
neuralpredictors' ``np_functions.py`` and the project note ``metrics.md`` section 1),
(b) ``scipy.stats.pearsonr``, (c) algebraic identities, and (d) simulations with known
signal and noise variances, where tolerances are derived from the sample sizes.
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from scipy import stats

from neurofit.pipelines.analysis import prediction
from neurofit.pipelines.analysis.prediction import (
    correlation,
    correlation_to_average,
    fev,
    feve,
    oracle_correlation,
    trial_average,
)

# ----------------------------------------------------------------------------------------
# independent reference implementations (loops are fine here, never in the library)
# ----------------------------------------------------------------------------------------


def ref_corr_1d(a, b):
    """neuralpredictors-style mean(z(a) z(b)) with ddof-0 std and eps = 0; 0 if constant."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    za = (a - a.mean()) / a.std(ddof=0)
    zb = (b - b.mean()) / b.std(ddof=0)
    return float(np.mean(za * zb))


def ref_corr(responses, predictions):
    return np.array(
        [ref_corr_1d(responses[:, n], predictions[:, n]) for n in range(responses.shape[1])]
    )


def ref_groups(stimulus_id):
    """Ordered dict {stimulus: [trial indices]} built with a plain loop."""
    groups = {}
    for trial, sid in enumerate(stimulus_id):
        groups.setdefault(sid, []).append(trial)
    return {sid: groups[sid] for sid in sorted(groups)}


def ref_trial_average(values, stimulus_id):
    groups = ref_groups(stimulus_id)
    out = np.empty((len(groups), values.shape[1]))
    for row, trials in enumerate(groups.values()):
        for n in range(values.shape[1]):
            out[row, n] = sum(values[t, n] for t in trials) / len(trials)
    return out, list(groups)


def ref_fev_feve(responses, predictions, stimulus_id):
    """The note's FEV/FEVE formulas, one neuron and one stimulus at a time."""
    groups = ref_groups(stimulus_id)
    n_trials, n_neurons = responses.shape
    fev_out = np.empty(n_neurons)
    feve_out = np.empty(n_neurons)
    for n in range(n_neurons):
        x = responses[:, n]
        grand = sum(x) / n_trials
        total_var = sum((v - grand) ** 2 for v in x) / (n_trials - 1)
        per_stim = []
        for trials in groups.values():
            if len(trials) < 2:
                continue
            vals = x[trials]
            m = sum(vals) / len(vals)
            per_stim.append(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
        noise_var = sum(per_stim) / len(per_stim)
        mse = sum((x[t] - predictions[t, n]) ** 2 for t in range(n_trials)) / n_trials
        fev_out[n] = (total_var - noise_var) / total_var if total_var > 0 else np.nan
        explainable = total_var - noise_var
        feve_out[n] = 1 - (mse - noise_var) / explainable if explainable > 0 else np.nan
    return fev_out, feve_out


def ref_oracle(responses, stimulus_id):
    groups = ref_groups(stimulus_id)
    trials_kept, oracles = [], []
    for trials in groups.values():
        if len(trials) < 2:
            continue
        for t in trials:
            others = [u for u in trials if u != t]
            trials_kept.append(responses[t])
            oracles.append(np.mean(responses[others], axis=0))
    return ref_corr(np.array(trials_kept), np.array(oracles))


def make_repeats(rng, repeat_counts, n_neurons, shuffle=True):
    """Random responses with the given repeat count per stimulus (shuffled trial order)."""
    ids = np.repeat(np.arange(len(repeat_counts)) * 3 + 11, repeat_counts)  # non-contiguous
    if shuffle:
        ids = rng.permutation(ids)
    signal = rng.normal(size=(len(repeat_counts), n_neurons))
    _, inverse = np.unique(ids, return_inverse=True)
    responses = signal[inverse] + rng.normal(scale=0.8, size=(ids.size, n_neurons)) + 2.0
    predictions = 0.7 * signal[inverse] + rng.normal(scale=0.5, size=(ids.size, n_neurons))
    return responses, predictions, ids


TOL = dict(rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------
# correlation
# ----------------------------------------------------------------------------------------


def test_correlation_matches_scipy_pearsonr():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(57, 13))
    y = 0.4 * x + rng.normal(size=(57, 13))
    expected = np.array([stats.pearsonr(x[:, n], y[:, n])[0] for n in range(13)])
    got = correlation(x, y)
    assert got.shape == (13,)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, **TOL)


def test_correlation_matches_reference_loop_with_large_offset():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(200, 31)) + 1e4  # post-ReLU-like offset
    y = x + rng.normal(scale=3.0, size=x.shape) - 5e3
    np.testing.assert_allclose(correlation(x, y), ref_corr(x, y), rtol=1e-10, atol=1e-10)


def test_correlation_is_exact_pearson_not_ddof_mixed():
    # torch neuralpredictors.corr mixes ddof 1 and a mean and gives (N-1)/N = 0.95 at N=20.
    x = np.arange(20.0)[:, None]
    assert correlation(x, 3 * x + 2)[0] == pytest.approx(1.0, abs=1e-14)
    assert correlation(x, -x)[0] == pytest.approx(-1.0, abs=1e-14)


def test_correlation_affine_invariance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 9))
    y = x + rng.normal(size=(80, 9))
    base = correlation(x, y)
    assert np.all(np.abs(base) > 0.1)  # non-trivial values
    scales = rng.uniform(0.1, 50.0, size=9)
    shifts = rng.normal(scale=100.0, size=9)
    np.testing.assert_allclose(correlation(x, scales * y + shifts), base, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(correlation(x, -scales * y + shifts), -base, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(correlation(3.0 * x - 7.0, y), base, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(correlation(y, x), base, rtol=1e-12, atol=1e-12)


def test_constant_neurons_give_zero_correlation_without_warnings():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 4))
    y = x + rng.normal(size=(40, 4))
    x[:, 1] = 0.1  # constant response whose float mean is not exactly 0.1
    y[:, 2] = 7.3  # constant prediction
    x[:, 3] = 0.0
    y[:, 3] = 0.0  # both constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = correlation(x, y)
    assert got[1] == 0.0 and got[2] == 0.0 and got[3] == 0.0
    assert got[0] == pytest.approx(stats.pearsonr(x[:, 0], y[:, 0])[0], abs=1e-12)


def test_float32_inputs_are_computed_in_float64():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 5)).astype(np.float32)
    y = (x + rng.normal(size=(100, 5))).astype(np.float32)
    got = correlation(x, y)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref_corr(x.astype(float), y.astype(float)), **TOL)


# ----------------------------------------------------------------------------------------
# trial averaging and correlation to average
# ----------------------------------------------------------------------------------------


def test_trial_average_matches_loop_with_unequal_repeats():
    rng = np.random.default_rng(5)
    responses, _, ids = make_repeats(rng, [1, 4, 2, 7, 1, 3], n_neurons=6)
    averaged, unique_ids = trial_average(responses, ids)
    expected, expected_ids = ref_trial_average(responses, ids)
    np.testing.assert_array_equal(unique_ids, expected_ids)
    np.testing.assert_allclose(averaged, expected, **TOL)


def test_trial_average_with_string_ids():
    values = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [8.0, 80.0]])
    averaged, unique_ids = trial_average(values, np.array(["b", "a", "b", "b"]))
    assert list(unique_ids) == ["a", "b"]
    np.testing.assert_allclose(averaged, [[2.0, 20.0], [13.0 / 3, 130.0 / 3]], **TOL)


@pytest.mark.parametrize("repeat_counts", [[5] * 30, [1, 2, 3, 4, 5, 6, 7, 1, 1, 2] * 3])
def test_correlation_to_average_matches_loop(repeat_counts):
    rng = np.random.default_rng(6)
    responses, predictions, ids = make_repeats(rng, repeat_counts, n_neurons=8)
    mean_r, _ = ref_trial_average(responses, ids)
    mean_p, _ = ref_trial_average(predictions, ids)
    expected = np.array([stats.pearsonr(mean_r[:, n], mean_p[:, n])[0] for n in range(8)])
    np.testing.assert_allclose(correlation_to_average(responses, predictions, ids), expected, **TOL)


def test_correlation_to_average_exceeds_single_trial_correlation():
    # Averaging repeats removes trial noise, so the averaged correlation must be higher.
    rng = np.random.default_rng(7)
    responses, predictions, ids = make_repeats(rng, [10] * 50, n_neurons=20)
    assert np.all(
        correlation_to_average(responses, predictions, ids) > correlation(responses, predictions)
    )


# ----------------------------------------------------------------------------------------
# FEV / FEVE / oracle against reference loops
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repeat_counts",
    [[4] * 25, [1, 2, 3, 4, 5, 6, 7, 1, 1, 2] * 3, [2, 9, 1, 3]],
    ids=["equal", "unequal", "few-stimuli"],
)
def test_fev_feve_oracle_match_reference_loops(repeat_counts):
    rng = np.random.default_rng(8)
    responses, predictions, ids = make_repeats(rng, repeat_counts, n_neurons=7)
    expected_fev, expected_feve = ref_fev_feve(responses, predictions, ids)
    np.testing.assert_allclose(fev(responses, ids), expected_fev, **TOL)
    np.testing.assert_allclose(feve(responses, predictions, ids), expected_feve, **TOL)
    np.testing.assert_allclose(oracle_correlation(responses, ids), ref_oracle(responses, ids), **TOL)


def test_fev_feve_equal_repeats_match_neuralpredictors_formula():
    # neuralpredictors' fev(), written out on its (images, repeats, neurons) layout.
    rng = np.random.default_rng(9)
    n_images, n_repeats, n_neurons = 12, 6, 5
    targets = rng.normal(size=(n_images, 1, n_neurons)) + rng.normal(
        scale=0.7, size=(n_images, n_repeats, n_neurons)
    )
    outputs = targets.mean(axis=1, keepdims=True) + rng.normal(
        scale=0.3, size=(n_images, n_repeats, n_neurons)
    )
    total_var = np.var(np.vstack(targets), axis=0, ddof=1)
    noise_var = np.mean(np.var(targets, axis=1, ddof=1), axis=0)
    pred_var = np.mean(np.vstack((targets - outputs) ** 2), axis=0)
    np_fev = (total_var - noise_var) / total_var
    np_feve = 1 - (pred_var - noise_var) / (total_var - noise_var)

    ids = np.repeat(np.arange(n_images), n_repeats)
    flat_r = targets.reshape(-1, n_neurons)
    flat_p = outputs.reshape(-1, n_neurons)
    np.testing.assert_allclose(fev(flat_r, ids), np_fev, **TOL)
    np.testing.assert_allclose(feve(flat_r, flat_p, ids), np_feve, **TOL)


def test_trial_order_does_not_matter():
    rng = np.random.default_rng(10)
    responses, predictions, ids = make_repeats(rng, [1, 3, 2, 5, 4] * 4, n_neurons=5)
    perm = rng.permutation(ids.size)
    for func in (fev, oracle_correlation):
        np.testing.assert_allclose(func(responses[perm], ids[perm]), func(responses, ids), **TOL)
    for func in (feve, correlation_to_average):
        np.testing.assert_allclose(
            func(responses[perm], predictions[perm], ids[perm]),
            func(responses, predictions, ids),
            **TOL,
        )


def test_single_repeat_stimuli_enter_total_but_not_noise_variance():
    rng = np.random.default_rng(11)
    repeated, _, ids = make_repeats(rng, [3] * 10, n_neurons=4)
    singles = rng.normal(loc=5.0, scale=2.0, size=(6, 4))
    all_r = np.vstack([repeated, singles])
    all_ids = np.concatenate([ids, np.arange(1000, 1006)])

    def noise_var(r, i):  # recovered from FEV = 1 - noise / total
        return (1 - fev(r, i)) * r.var(axis=0, ddof=1)

    np.testing.assert_allclose(noise_var(all_r, all_ids), noise_var(repeated, ids), **TOL)
    # ... while the singles do change the total variance, hence FEV.
    assert np.all(np.abs(fev(all_r, all_ids) - fev(repeated, ids)) > 1e-3)


def test_oracle_unequal_repeats_weights_each_trial_once():
    # Hand-computable case: stimulus A repeats [0, 2, 4], stimulus B [10, 12], single C.
    r = np.array([[0.0], [2.0], [4.0], [10.0], [12.0], [99.0]])
    ids = ["A", "A", "A", "B", "B", "C"]
    others = np.array([3.0, 2.0, 1.0, 12.0, 10.0])  # leave-one-out means, C dropped
    expected = stats.pearsonr(r[:5, 0], others)[0]
    assert oracle_correlation(r, ids)[0] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------
# policies for undefined values
# ----------------------------------------------------------------------------------------


def test_fev_feve_nan_policies():
    ids = [0, 0, 1, 1]
    r = np.array(
        [
            [0.0, 5.0, 0.0],  # col 0: stimulus means equal -> total - noise < 0
            [2.0, 5.0, 2.0],  # col 1: constant -> total var 0
            [0.0, 5.0, 10.0],  # col 2: well defined
            [2.0, 5.0, 12.0],
        ]
    )
    p = np.ones_like(r)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = fev(r, ids)
        fe = feve(r, p, ids)
    # col 0: total = 4/3 (ddof 1), noise = 2 -> FEV = (4/3 - 2) / (4/3) = -0.5
    assert f[0] == pytest.approx(-0.5, abs=1e-14)
    assert np.isnan(f[1])
    assert np.isnan(fe[0]) and np.isnan(fe[1])
    assert np.isfinite(f[2]) and np.isfinite(fe[2])


# ----------------------------------------------------------------------------------------
# simulation oracles with known signal and noise variances
# ----------------------------------------------------------------------------------------

S, R, N_NEURONS = 200, 5, 400


@pytest.fixture(scope="module")
def simulation():
    """r[s, k, n] = baseline_n + mu[s, n] + eps, mu ~ N(0, sig_s^2), eps ~ N(0, sig_e^2)."""
    rng = np.random.default_rng(12)
    sig_s2 = rng.uniform(0.5, 2.0, size=N_NEURONS)
    sig_e2 = rng.uniform(0.5, 3.0, size=N_NEURONS)
    baseline = rng.uniform(-3.0, 3.0, size=N_NEURONS)
    mu = rng.normal(size=(S, N_NEURONS)) * np.sqrt(sig_s2)
    ids = rng.permutation(np.repeat(np.arange(S), R))
    signal = baseline + mu[ids]
    responses = signal + rng.normal(size=(S * R, N_NEURONS)) * np.sqrt(sig_e2)
    return dict(responses=responses, signal=signal, ids=ids, sig_s2=sig_s2, sig_e2=sig_e2)


def test_fev_recovers_true_signal_fraction(simulation):
    sig_s2, sig_e2 = simulation["sig_s2"], simulation["sig_e2"]
    got = fev(simulation["responses"], simulation["ids"])
    true_fev = sig_s2 / (sig_s2 + sig_e2)

    # One-way ANOVA: between SS ~ a chi2_{S-1}, within SS ~ b chi2_{S(R-1)}, independent,
    # a = R sig_s2 + sig_e2, b = sig_e2. Delta method on log(noise/total):
    # sd(FEV) ~ (1 - FEV) w_B sqrt(2/(S(R-1)) + 2/(S-1)), w_B = a(S-1)/(a(S-1) + bS(R-1)).
    a, b = R * sig_s2 + sig_e2, sig_e2
    w_b = a * (S - 1) / (a * (S - 1) + b * S * (R - 1))
    sd = (1 - true_fev) * w_b * np.sqrt(2 / (S * (R - 1)) + 2 / (S - 1))
    # Finite-sample bias: E[total var] = sig_e2 + sig_s2 R(S-1)/(RS-1) (not sig_s2 + sig_e2).
    expected_total = sig_e2 + sig_s2 * R * (S - 1) / (R * S - 1)
    bias = np.abs((1 - sig_e2 / expected_total) - true_fev)
    assert bias.max() < 0.01  # the estimator is close to unbiased at this sample size

    err = got - true_fev
    assert np.all(np.abs(err) <= 5.5 * sd + bias)
    assert abs(err.mean()) <= 4 * np.sqrt(np.mean(sd**2) / N_NEURONS) + bias.max()
    # The derived sd must describe the actual spread (guards against a too-loose tolerance).
    assert 0.7 < np.std(err / sd) < 1.3


def test_feve_of_true_signal_is_one(simulation):
    sig_s2, sig_e2 = simulation["sig_s2"], simulation["sig_e2"]
    got = feve(simulation["responses"], simulation["signal"], simulation["ids"])
    # MSE - noise_var = -W/(S R) + sum_s eps_bar_s^2 / S, mean 0 and variance
    # 2 sig_e^4 / (S R ); dividing by the explainable variance ~ sig_s2:
    sd = sig_e2 * np.sqrt(2 / (S * R * (R - 1))) / sig_s2
    err = got - 1.0
    assert np.all(np.abs(err) <= 6 * sd)
    assert abs(np.mean(err / sd)) <= 4 / np.sqrt(N_NEURONS)


def test_feve_of_constant_prediction_is_low(simulation):
    responses, ids = simulation["responses"], simulation["ids"]
    n_trials = responses.shape[0]
    grand_mean = np.broadcast_to(responses.mean(axis=0), responses.shape)
    got = feve(responses, grand_mean, ids)
    # Identity: MSE(grand mean) = (N-1)/N total_var  =>  FEVE = total / (N (total - noise)).
    total = responses.var(axis=0, ddof=1)
    noise = (1 - fev(responses, ids)) * total
    np.testing.assert_allclose(got, total / (n_trials * (total - noise)), rtol=1e-10)
    assert np.all(np.abs(got) < 0.05)
    # Any other constant is worse, and far below the true signal.
    assert np.all(feve(responses, grand_mean + 0.5, ids) < got)
    assert np.all(got < feve(responses, simulation["signal"], ids) - 0.5)


def test_oracle_correlation_matches_theory(simulation):
    sig_s2, sig_e2 = simulation["sig_s2"], simulation["sig_e2"]
    got = oracle_correlation(simulation["responses"], simulation["ids"])
    # corr(single trial, mean of the R-1 other repeats)
    rho = sig_s2 / np.sqrt((sig_s2 + sig_e2) * (sig_s2 + sig_e2 / (R - 1)))
    err = got - rho
    se_mean = err.std(ddof=1) / np.sqrt(N_NEURONS)  # neurons are independent
    assert abs(err.mean()) <= 5 * se_mean + 1.0 / S


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(10, 4\)"):
        correlation(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"\(6, 2\).*\(5, 2\)"):
        feve(np.zeros((6, 2)), np.zeros((5, 2)), np.arange(6))


def test_fewer_than_two_samples_rejected():
    with pytest.raises(ValueError, match="at least 2"):
        correlation(np.ones((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        fev(np.ones((1, 3)), [0])
    with pytest.raises(ValueError, match="2 distinct stimuli"):
        correlation_to_average(np.ones((3, 2)), np.ones((3, 2)), [4, 4, 4])


def test_stimulus_id_length_mismatch_rejected():
    r = np.zeros((6, 2))
    for call in (
        lambda: trial_average(r, np.arange(5)),
        lambda: fev(r, np.arange(5)),
        lambda: feve(r, r, np.arange(7)),
        lambda: oracle_correlation(r, np.arange(5)),
        lambda: correlation_to_average(r, r, np.arange(5)),
    ):
        with pytest.raises(ValueError, match="stimulus_id has length"):
            call()
    with pytest.raises(ValueError, match="1-D"):
        fev(r, np.zeros((6, 1)))


def test_other_invalid_inputs_rejected():
    with pytest.raises(ValueError, match="2-D"):
        correlation(np.zeros(5), np.zeros(5))
    bad = np.zeros((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        correlation(bad, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="shown once"):
        fev(np.random.default_rng(0).normal(size=(4, 2)), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="shown once"):
        oracle_correlation(np.random.default_rng(0).normal(size=(4, 2)), [0, 1, 2, 3])


def test_docstring_examples():
    result = doctest.testmod(prediction, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6
    assert result.failed == 0

"""Auditory scores against their definitions (metrics.md 1c; Sahani & Linden 2003; Pennington & David 2023)."""

import numpy as np
import pytest

from neurofit.pipelines.analysis import prediction as p


@pytest.fixture
def simulated():
    rng = np.random.default_rng(3)
    signal = rng.gamma(2.0, 1.0, (400, 4))
    repeats = rng.poisson(signal[None].repeat(12, 0)).astype(float)
    prediction = signal + rng.normal(0, 0.5, signal.shape)
    return signal, repeats, prediction


def test_predictive_power_is_the_fraction_of_signal_power_explained(simulated):
    signal, repeats, prediction = simulated
    pp = p.predictive_power(repeats, prediction)
    np.testing.assert_allclose(pp, p.signal_power_explained(repeats, prediction), rtol=1e-10)  # algebraic identity
    truth = 1 - ((signal - prediction) ** 2).mean(0) / signal.var(0)
    np.testing.assert_allclose(pp, truth, atol=0.08)
    np.testing.assert_allclose(p.predictive_power(repeats, signal), 1.0, atol=0.08)


def test_deepstrf_signal_power_is_not_the_definition(simulated):
    _, repeats, prediction = simulated
    mean = repeats.mean(0)
    wrong_sp = mean.var(0)  # deepSTRF's sahani_performance: SP collapses to P(mean response)
    sp = p.signal_power(repeats)
    assert np.all(wrong_sp > sp * 1.02)  # the noise left in the mean inflates it


def test_ttrc_and_hsu_agree_with_schoppe_on_poisson_repeats(simulated):
    signal, repeats, prediction = simulated
    true_r = np.array([np.corrcoef(signal[:, i], prediction[:, i])[0, 1] for i in range(4)])
    for score in (p.cc_norm(repeats, prediction), p.cc_norm_hsu(repeats, prediction), p.ttrc(repeats, prediction)):
        np.testing.assert_allclose(score, true_r, atol=0.04)
    assert p.cc_max_schoppe is p.cc_max and p.cc_max_hsu is p.split_half_cc_max


def test_jackknife_interval_brackets_and_needs_three_repeats(simulated):
    _, repeats, prediction = simulated
    out = p.cc_norm_jackknife(repeats, prediction)
    assert np.all(out["low"] < out["cc_norm"]) and np.all(out["cc_norm"] < out["high"])
    assert out["values"].shape == (12, 4)
    with pytest.raises(ValueError, match=">= 3 repeats"):
        p.cc_norm_jackknife(repeats[:2], prediction)

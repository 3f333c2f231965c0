"""Ridge STRFs recover known STRFs; models are causal with the documented parameter counts."""

import numpy as np
import pytest
import torch

from neurofit.datasets.auditory import build_synthetic_strf, simulate_strf_neurons
from neurofit.models import auditory as models
from neurofit.pipelines.analysis.strf import (
    fit_ridge_strf,
    lagged_design,
    ridge_path,
    strf_recovery,
)
from neurofit.pipelines.trainers.auditory import train_ridge_strf
from neurofit.pipelines.training import RunContext

torch.set_num_threads(1)
DRC = dict(n_neurons=6, n_bands=10, n_lags=8, stimulus="drc", n_train_clips=30, n_validation_clips=2,
           n_test_clips=2, n_repeats=4, clip_bins=100, mean_rate=2.0)


def _train_arrays(sim):
    index = sim.trials.meta.select(tier="train")
    x = np.stack([sim.trials.read(int(i))["videos"][:, 0, 0, :] for i in index])[:, :, None, :]
    y = np.stack([sim.trials.read(int(i))["responses"] for i in index])
    return (x - x.mean((0, 1))) / x.std((0, 1)), y


def test_ridge_recovers_true_strfs_on_drc():
    sim = simulate_strf_neurons(**DRC)
    x, y = _train_arrays(sim)
    fit = fit_ridge_strf(x, y, n_lags=8, n_folds=3)
    assert strf_recovery(fit.strf, sim.strfs).min() >= 0.9


def test_ridge_matches_the_normal_equations_and_the_lagged_design_is_causal():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 5)), rng.normal(size=(200, 2))
    w, b = ridge_path(x, y, [3.0])
    xc, yc = x - x.mean(0), y - y.mean(0)
    np.testing.assert_allclose(w[0], np.linalg.solve(xc.T @ xc + 3.0 * np.eye(5), xc.T @ yc), atol=1e-10)
    features = np.arange(6.0).reshape(1, 6, 1, 1)
    design = lagged_design(features, 3)  # columns: lag 0, 1, 2
    np.testing.assert_array_equal(design[:, 1], [0, 0, 1, 2, 3, 4])


def test_ridge_trainer_sets_the_linear_model_to_the_closed_form_fit():
    data = build_synthetic_strf(0, **DRC)
    model = models.build_strf_linear(data.info, 0, n_lags=8)
    result = train_ridge_strf(model, data, 0, RunContext(), lambdas=(10.0, 1000.0))
    assert len(result.history) == 2 and result.score > 0.5
    assert strf_recovery(model.strf("session_0").numpy(), data.artefacts["strf"]).mean() > 0.9
    with pytest.raises(TypeError, match="linear STRF"):
        train_ridge_strf(models.build_strf_nrf(data.info, 0), data, 0, RunContext())


@pytest.mark.parametrize("build", [models.build_strf_linear, models.build_strf_ln, models.build_strf_nrf,
                                   models.build_strf_dnet, models.build_strf_cnn2d, models.build_strf_statenet])
@pytest.mark.parametrize("front_end", ["none", "adaptrans"])
def test_models_are_causal_and_shaped(build, front_end):
    info = build_synthetic_strf(0, n_neurons=3, n_bands=12, n_lags=5, n_train_clips=2, n_validation_clips=1,
                                n_test_clips=1, n_repeats=2, clip_bins=40).info
    torch.manual_seed(0)
    model = build(info, 0, front_end=front_end).eval()
    x = torch.randn(2, 40, 12)
    y = model(x, "session_0")
    assert y.shape == (2, 40, 3)
    changed = x.clone()
    changed[:, 25:] += 1.0
    assert torch.allclose(model(changed, "session_0")[:, :25], y[:, :25], atol=1e-6)  # no look-ahead


def test_parameter_counts_and_adaptrans_has_three_per_band():
    info = build_synthetic_strf(0, n_neurons=4, n_bands=18, n_lags=15, n_train_clips=2, n_validation_clips=1,
                                n_test_clips=1, n_repeats=2, clip_bins=30).info
    assert models.parameter_count(models.build_strf_linear(info, 0)) == 4 * (18 * 15 + 1)
    with_front = models.build_strf_linear(info, 0, front_end="adaptrans")
    assert models.parameter_count(with_front.front_end) == 3 * 18
    assert models.parameter_count(with_front) == 3 * 18 + 4 * (2 * 18 * 15 + 1)
    assert models.parameter_count(models.build_strf_nrf(info, 0, hidden=5)) == 5 * (18 * 15 + 1) + 4 * 6


def test_adaptrans_dt_is_explicit():
    slow = models.AdapTrans(4, dt_ms=1.0)  # deepSTRF's dt = 1 for 5 ms bins
    fast = models.AdapTrans(4, dt_ms=5.0)
    tau_slow, _ = slow.time_constants_ms()
    tau_fast, _ = fast.time_constants_ms()
    np.testing.assert_allclose(tau_slow, tau_fast, rtol=1e-4)  # the same tau in ms ...
    a_slow = 1 / (1 + slow.d_on.detach() ** 2)
    a_fast = 1 / (1 + fast.d_on.detach() ** 2)
    assert torch.all(a_fast < a_slow)  # ... decays 5x faster per 5 ms bin
    on, off = (k.detach() for k in fast.kernels())
    np.testing.assert_allclose(on[:, 0, :-1].sum(1), -0.75, rtol=1e-5)  # past average weighted by -w
    np.testing.assert_allclose(off[:, 0, :-1].sum(1), 1.0, rtol=1e-5)

"""Synthetic STRF neurons and spectrogram loaders: shapes, calibration of the ceiling, ground truth."""

import numpy as np
import pytest
import torch

from neurofit.datasets.auditory import (
    _cc_norm,
    adaptrans_kernels,
    apply_on_off,
    build_synthetic_strf,
    simulate_strf_neurons,
)
from neurofit.pipelines.analysis import prediction

SMALL = dict(n_neurons=5, n_bands=8, n_lags=6, n_train_clips=8, n_validation_clips=2, n_test_clips=3,
             n_repeats=6, clip_bins=50)


def test_batches_are_spectrograms_and_repeats_share_a_stimulus_id():
    bundle = build_synthetic_strf(0, **SMALL, batch_size=6)
    info = bundle.info
    assert info.modality == "spectrogram" and info.input_shape == (8,) and info.batch_input_axes == ("batch", "time", "frequency")
    batch = next(iter(bundle.loaders["test"]["session_0"]))
    assert batch["inputs"].shape == (6, 50, 8) and batch["responses"].shape == (6, 50, 5)
    assert len(set(batch["stimulus_id"].tolist())) == 1  # six repeats of one sound
    assert torch.equal(batch["inputs"][0], batch["inputs"][5])
    assert bundle.artefacts["strf"].shape == (5, 1, 6, 8)


def test_true_rates_are_calibrated_and_the_dataset_ceiling_matches_pipelines():
    sim = simulate_strf_neurons(**{**SMALL, "n_repeats": 10, "mean_rate": 3.0})
    assert sim.ceiling["cc_norm"] >= 0.98  # the metric is calibrated: truth scores ~1
    rng = np.random.default_rng(1)
    repeats = rng.poisson(2.0, (5, 40, 3)).astype(float) + np.linspace(0, 3, 40)[None, :, None]
    predicted = rng.normal(size=(40, 3))
    np.testing.assert_allclose(_cc_norm(repeats, predicted), prediction.cc_norm(repeats, predicted), rtol=1e-12)


def test_ground_truth_depends_on_config_not_seed():
    a, b = build_synthetic_strf(0, **SMALL), build_synthetic_strf(5, **SMALL)
    assert np.array_equal(a.artefacts["strf"], b.artefacts["strf"])
    assert not np.array_equal(a.artefacts["strf"], build_synthetic_strf(0, **SMALL, ground_truth_seed=1).artefacts["strf"])


def test_on_off_front_end_responds_to_onsets_and_offsets():
    on, off = adaptrans_kernels(np.full(1, 0.8), np.full(1, 1.0), kernel_size=10)
    np.testing.assert_allclose(on.sum(1), 0.0, atol=1e-12)  # w = 1: no response to a steady level
    step = np.concatenate([np.zeros(20), np.ones(20), np.zeros(20)])[None, :, None]
    channels = apply_on_off(step, on, off)[0, :, :, 0]
    assert channels[0].argmax() == 20 and channels[1].argmax() == 40  # ON at the onset, OFF at the offset
    sim = simulate_strf_neurons(**SMALL, front_end="on_off")
    assert sim.strfs.shape == (5, 2, 6, 8) and sim.ceiling["cc_norm"] > 0.9


def test_gaussian_responses_are_continuous():
    bundle = build_synthetic_strf(0, **SMALL, response="gaussian")
    responses = next(iter(bundle.loaders["train"]["session_0"]))["responses"]
    assert not torch.equal(responses, responses.round())


@pytest.mark.parametrize("bad", [dict(window=0), dict(window=51)])
def test_windows_that_do_not_fit_are_refused(bad):
    with pytest.raises(ValueError, match="window"):
        build_synthetic_strf(0, **SMALL, **bad)

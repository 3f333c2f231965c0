"""The synthetic dLGN movie data set: trial format, determinism and its known ground truth."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from neurofit.datasets.synthetic_dlgn import (
    BEHAVIOR_NAMES,
    make_population,
    receptive_field_drive,
    simulate_dlgn,
    spatial_receptive_fields,
    true_rate,
)
from neurofit.pipelines.analysis.prediction import correlation

FIELDS = ("videos", "responses", "behavior", "pupil_center", "optogenetic_signal")
# Smaller than the defaults where a test does not need the full size.
SMALL = dict(n_sessions=2, n_neurons=12, n_train_clips=6, n_validation_clips=2, n_test_clips=2,
             n_test_repeats=4, clip_length=(20, 30))


@pytest.fixture(scope="module")
def data():
    return simulate_dlgn(0)


def _session_indices(data, session):
    return [i for i, s in enumerate(data.trials["session"]) if s == session]


def _laser_on(data, index):
    return data.trials["optogenetic_signal"][index].mean() > 0.5


def test_trial_format_matches_the_spec(data):
    trials = data.trials
    n_trials = len(trials["session"])
    assert n_trials == 2 * (40 + 8 + 4 * 6)
    assert set(trials) == {"session", "tier", "clip_id", *FIELDS}
    assert all(len(trials[key]) == n_trials for key in trials)
    assert len(data.rates) == n_trials
    assert data.frame_rate == 30.0 and isinstance(data.frame_rate, float)
    assert data.behavior_names == list(BEHAVIOR_NAMES) == ["running_speed", "pupil_dilation"]
    assert list(data.neurons) == ["session_0", "session_1"]
    for columns in data.neurons.values():
        assert np.array_equal(columns["unit_id"], np.arange(30))
        assert all(len(v) == 30 for v in columns.values())
    for i in range(n_trials):
        assert isinstance(trials["session"][i], str)
        assert trials["tier"][i] in ("train", "validation", "test")
        assert type(trials["clip_id"][i]) is int
        video = trials["videos"][i]
        t = len(video)
        assert video.shape == (t, 16, 24) and video.dtype == np.float32
        responses = trials["responses"][i]
        assert responses.shape == (t, 30) and responses.dtype == np.float32
        assert np.array_equal(responses, np.round(responses)) and responses.min() >= 0
        assert trials["behavior"][i].shape == (t, 2) and trials["behavior"][i].dtype == np.float32
        assert trials["behavior"][i][:, 0].min() >= 0  # running speed
        assert trials["behavior"][i][:, 1].min() > 0  # pupil dilation
        assert trials["pupil_center"][i].shape == (t, 2)
        assert trials["pupil_center"][i].dtype == np.float32
        signal = trials["optogenetic_signal"][i]
        assert signal.shape == (t,) and signal.dtype == np.float32
        assert np.isin(signal, (0.0, 1.0)).all() and len(np.unique(signal)) == 1  # whole trial
        assert data.rates[i].shape == (t, 30) and data.rates[i].dtype == np.float64
        assert (data.rates[i] > 0).all()
        for key in FIELDS:
            assert np.isfinite(trials[key][i]).all()
        if trials["tier"][i] == "test":
            assert t == 80
        else:
            assert 40 <= t <= 80


def test_clip_pool_is_shared_and_lengths_are_jagged(data):
    by_clip = {}
    for clip_id, tier, video in zip(data.trials["clip_id"], data.trials["tier"],
                                    data.trials["videos"]):
        by_clip.setdefault(clip_id, (tier, video))
        assert by_clip[clip_id][0] == tier
        assert np.array_equal(by_clip[clip_id][1], video)  # same clip, same frames everywhere
    assert sorted(by_clip) == list(range(52))
    assert len({len(v) for tier, v in by_clip.values() if tier != "test"}) > 5


def test_movies_are_smooth_in_space_and_time(data):
    video = np.concatenate(data.trials["videos"][:10])
    assert abs(video.mean()) < 0.1 and abs(video.std() - 1) < 0.1
    assert np.corrcoef(video[1:].ravel(), video[:-1].ravel())[0, 1] > 0.7
    assert np.corrcoef(video[:, :, 1:].ravel(), video[:, :, :-1].ravel())[0, 1] > 0.3


def test_ground_truth_is_json_and_complete(data):
    ground_truth = json.loads(json.dumps(data.ground_truth))
    assert ground_truth == data.ground_truth
    assert ground_truth["seed"] == 0 and ground_truth["ground_truth_seed"] == 0
    for session in ("session_0", "session_1"):
        truth = ground_truth["sessions"][session]
        for key in ("optogenetic_gain", "modulated", "on_off", "running_gain", "center_sigma"):
            assert len(truth[key]) == 30
        assert np.shape(truth["rf_center"]) == (30, 2)
        assert np.shape(truth["temporal_kernel"]) == (30, 8)
        assert isinstance(truth["pupil_shift_gain"], float)
        assert sum(truth["modulated"]) == 12  # round(0.4 * 30)
        gain = np.array(truth["optogenetic_gain"])
        modulated = np.array(truth["modulated"])
        assert (gain[~modulated] == 1).all()
        assert set(np.round(gain[modulated], 9)) == {0.4, 2.5}  # 3 of 12 facilitated
        assert set(truth["on_off"]) == {1, -1}
        assert len(ground_truth["ceiling_per_neuron"][session]) == 30
        assert 0 < ground_truth["ceiling"][session] < 1
    centers = [np.array(ground_truth["sessions"][s]["rf_center"]) for s in ("session_0", "session_1")]
    assert not np.allclose(centers[0], centers[1])  # different neurons per session


def test_realistic_mean_rates(data):
    rates = np.concatenate(data.rates)
    counts = np.concatenate(data.trials["responses"])
    assert 0.1 < counts.mean() < 0.6  # a few to ~15 spikes/s at 30 Hz
    off = np.concatenate([r for i, r in enumerate(data.rates) if not _laser_on(data, i)])
    assert 0.2 < np.median(off.mean(axis=0)) < 0.5  # median near mean_rate=0.3
    assert abs(counts.mean() / rates.mean() - 1) < 0.05


def test_deterministic_given_seeds():
    a, b = simulate_dlgn(3, **SMALL), simulate_dlgn(3, **SMALL)
    for key in a.trials:
        for x, y in zip(a.trials[key], b.trials[key]):
            assert np.array_equal(x, y)
    assert all(np.array_equal(x, y) for x, y in zip(a.rates, b.rates))
    assert a.ground_truth == b.ground_truth

    c = simulate_dlgn(4, **SMALL)
    assert not np.array_equal(a.trials["videos"][0], c.trials["videos"][0])
    assert not all(
        np.array_equal(x, y) for x, y in zip(a.trials["responses"], c.trials["responses"])
    )
    # ground_truth_seed fixes the neurons whatever the seed, and changes them when it changes.
    assert a.ground_truth["sessions"] == c.ground_truth["sessions"]
    d = simulate_dlgn(3, **SMALL, ground_truth_seed=1)
    assert d.ground_truth["sessions"]["session_0"]["rf_center"] != (
        a.ground_truth["sessions"]["session_0"]["rf_center"]
    )
    assert np.array_equal(a.trials["videos"][0], d.trials["videos"][0])  # clips follow seed
    # Adding a session keeps the earlier ones' neurons.
    e = simulate_dlgn(3, **{**SMALL, "n_sessions": 3})
    assert e.ground_truth["sessions"]["session_1"] == a.ground_truth["sessions"]["session_1"]


def test_test_clips_repeat_with_both_conditions(data):
    for session in data.neurons:
        test = [i for i in _session_indices(data, session) if data.trials["tier"][i] == "test"]
        clip_ids = sorted({data.trials["clip_id"][i] for i in test})
        assert len(clip_ids) == 4
        for clip_id in clip_ids:
            repeats = [i for i in test if data.trials["clip_id"][i] == clip_id]
            assert len(repeats) == 6
            laser = [_laser_on(data, i) for i in repeats]
            assert sum(laser) == 3 and len(laser) - sum(laser) == 3
        once = [i for i in _session_indices(data, session) if data.trials["tier"][i] != "test"]
        assert len({data.trials["clip_id"][i] for i in once}) == len(once) == 48
        assert 0.25 < np.mean([_laser_on(data, i) for i in once]) < 0.75


def test_optogenetic_gain_is_exact_without_nuisances():
    """With no running gain and no eye-movement shift, repeats differ only by the laser."""
    data = simulate_dlgn(1, **SMALL, running_gain_range=(0.0, 0.0), pupil_shift_gain=0.0)
    for session in data.neurons:
        gain = np.array(data.ground_truth["sessions"][session]["optogenetic_gain"])
        modulated = np.array(data.ground_truth["sessions"][session]["modulated"])
        test = [i for i in _session_indices(data, session) if data.trials["tier"][i] == "test"]
        for clip_id in {data.trials["clip_id"][i] for i in test}:
            repeats = [i for i in test if data.trials["clip_id"][i] == clip_id]
            on = np.mean([data.rates[i] for i in repeats if _laser_on(data, i)], axis=0)
            off = np.mean([data.rates[i] for i in repeats if not _laser_on(data, i)], axis=0)
            ratio = on.mean(axis=0) / off.mean(axis=0)
            np.testing.assert_allclose(ratio, gain, rtol=1e-9)
            np.testing.assert_allclose(ratio[~modulated], 1.0, rtol=1e-9)


def test_optogenetic_gain_recovered_from_rates_at_defaults(data):
    for session in data.neurons:
        gain = np.array(data.ground_truth["sessions"][session]["optogenetic_gain"])
        indices = _session_indices(data, session)
        on = np.concatenate([data.rates[i] for i in indices if _laser_on(data, i)])
        off = np.concatenate([data.rates[i] for i in indices if not _laser_on(data, i)])
        # Laser-off and -on trials see different clips and behaviour: equal only on average.
        log_ratio = np.log(on.mean(axis=0) / off.mean(axis=0))
        assert np.abs(log_ratio - np.log(gain)).max() < 0.3


def test_running_gain(data):
    population = data.populations["session_0"]
    i = _session_indices(data, "session_0")[0]
    video, pupil = data.trials["videos"][i], data.trials["pupil_center"][i]
    still = true_rate(population, video, pupil, np.zeros(len(video)))
    fast = true_rate(population, video, pupil, np.full(len(video), 1e6))
    np.testing.assert_allclose(fast / still, np.broadcast_to(1 + population.running_gain, still.shape))

    for session in data.neurons:
        indices = _session_indices(data, session)
        speed = np.concatenate([data.trials["behavior"][i][:, 0] for i in indices])
        rates = np.concatenate([data.rates[i] for i in indices])
        running_gain = np.array(data.ground_truth["sessions"][session]["running_gain"])
        r = correlation(np.repeat(speed[:, None], rates.shape[1], axis=1), rates)
        assert (r[running_gain > 0.6] > 0).all()
        rank = np.corrcoef(np.argsort(np.argsort(running_gain)), np.argsort(np.argsort(r)))[0, 1]
        assert rank > 0.6


def test_pupil_shifts_the_receptive_field(data):
    """Probe with single-pixel frames: the RF centre moves by pupil_shift_gain * Δpupil."""
    population = make_population(0, 0, pupil_shift_gain=1.5)
    height, width = 16, 24
    probes = np.eye(height * width).reshape(-1, height, width)
    maps = []
    for pupil in ((0.0, 0.0), (1.0, -0.6)):
        drive = receptive_field_drive(population, probes, np.tile(pupil, (len(probes), 1)))
        rf = drive.T.reshape(-1, height, width)  # (n, H, W)
        np.testing.assert_allclose(rf, spatial_receptive_fields(population, (height, width), pupil),
                                   atol=1e-12)
        maps.append(rf)

    def centroid(rf):
        # The centre lobe (same sign as the cell) is symmetric and stays inside the frame.
        lobe = np.maximum(rf * population.on_off[:, None, None], 0)
        ys, xs = np.mgrid[:height, :width]
        total = lobe.sum(axis=(1, 2))
        return np.stack([(lobe * xs).sum(axis=(1, 2)) / total,
                         (lobe * ys).sum(axis=(1, 2)) / total], axis=1)

    np.testing.assert_allclose(centroid(maps[0]), population.rf_center, atol=0.1)
    shift = centroid(maps[1]) - centroid(maps[0])
    np.testing.assert_allclose(shift, np.broadcast_to([1.5, -0.9], shift.shape), atol=0.1)

    # And in the data: the same clip seen with another eye position gives other rates.
    i = 0
    video = data.trials["videos"][i]
    speed = data.trials["behavior"][i][:, 0]
    pupil = data.trials["pupil_center"][i]
    population = data.populations[data.trials["session"][i]]
    moved = true_rate(population, video, pupil + 2.0, speed)
    assert np.abs(moved - true_rate(population, video, pupil, speed)).max() > 0.05


def test_true_rate_reproduces_the_stored_rates(data):
    for i in (0, 50, 100, 143):
        population = data.populations[data.trials["session"][i]]
        rate = true_rate(population, data.trials["videos"][i], data.trials["pupil_center"][i],
                         data.trials["behavior"][i][:, 0], data.trials["optogenetic_signal"][i])
        np.testing.assert_allclose(rate, data.rates[i], rtol=1e-12)


def test_temporal_kernel_is_causal_and_biphasic(data):
    population = data.populations["session_0"]
    kernel = population.temporal_kernel
    assert (kernel.max(axis=1) > 0).all() and (kernel.min(axis=1) < 0).all()
    assert (np.argmax(kernel, axis=1) < np.argmin(kernel, axis=1)).all()  # positive lobe first

    rng = np.random.default_rng(0)
    i = _session_indices(data, "session_0")[0]
    video = data.trials["videos"][i].copy()
    pupil = data.trials["pupil_center"][i].copy()
    speed = data.trials["behavior"][i][:, 0].copy()
    laser = data.trials["optogenetic_signal"][i].copy()
    before = true_rate(population, video, pupil, speed, laser)
    t = 20
    video[t + 1:] = rng.standard_normal(video[t + 1:].shape)
    pupil[t + 1:] += 1.0
    speed[t + 1:] += 10.0
    laser[t + 1:] = 1.0 - laser[t + 1:]
    after = true_rate(population, video, pupil, speed, laser)
    assert np.array_equal(before[: t + 1], after[: t + 1])
    assert not np.allclose(before[t + 1:], after[t + 1:])
    # The frame 7 lags back still matters, one more does not (kernel length 8).
    video2 = data.trials["videos"][i].copy()
    video2[t - 7] += 1.0
    changed = true_rate(population, video2, data.trials["pupil_center"][i],
                        data.trials["behavior"][i][:, 0])
    unchanged = true_rate(population, data.trials["videos"][i], data.trials["pupil_center"][i],
                          data.trials["behavior"][i][:, 0])
    assert not np.allclose(changed[t], unchanged[t])
    assert np.array_equal(changed[t + 1:], unchanged[t + 1:])


def test_ceiling_matches_the_test_trials_and_rises_with_rate(data):
    for session in data.neurons:
        test = [i for i in _session_indices(data, session) if data.trials["tier"][i] == "test"]
        rates = np.concatenate([data.rates[i] for i in test])
        counts = np.concatenate([data.trials["responses"][i] for i in test]).astype(np.float64)
        expected = correlation(counts, rates)
        np.testing.assert_allclose(data.ground_truth["ceiling_per_neuron"][session], expected,
                                   atol=1e-12)
        assert data.ground_truth["ceiling"][session] == pytest.approx(expected.mean())
    low = simulate_dlgn(0, **SMALL, mean_rate=0.05).ground_truth["ceiling"]
    high = simulate_dlgn(0, **SMALL, mean_rate=1.0).ground_truth["ceiling"]
    for session in low:
        assert 0 < low[session] < high[session] < 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_neurons": 0}, "n_neurons"),
        ({"n_test_repeats": 3}, "n_test_repeats"),
        ({"clip_length": (50, 40)}, "clip_length"),
        ({"modulated_fraction": 1.5}, "modulated_fraction"),
        ({"optogenetic_gain": 0.0}, "optogenetic_gain"),
        ({"mean_rate": -1.0}, "mean_rate"),
        ({"running_gain_range": (-1.5, 0.5)}, "running_gain_range"),
        ({"frame_size": (16,)}, "frame_size"),
    ],
)
def test_invalid_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_dlgn(0, **kwargs)


def test_default_sizes_are_fast():
    start = time.perf_counter()
    simulate_dlgn(5)
    # The target is < 2 s on one core; the bound leaves room for a loaded test machine.
    assert time.perf_counter() - start < 6.0

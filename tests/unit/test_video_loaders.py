"""Nested video loaders: identical batches from every backend, train-only statistics, windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofit.datasets.synthetic_dlgn import simulate_dlgn
from neurofit.datasets.trial_storage import open_trials, write_trials
from neurofit.datasets.trials import TrialFormatError, TrialSet
from neurofit.datasets.video_loaders import build_video_loaders, normalization_statistics

SMALL = dict(n_sessions=2, n_neurons=6, frame_size=(8, 12), n_train_clips=6, n_validation_clips=2,
             n_test_clips=2, n_test_repeats=4, clip_length=(20, 30))


@pytest.fixture(scope="module")
def simulation():
    return simulate_dlgn(3, **SMALL)


@pytest.fixture(scope="module")
def frame(simulation):
    import pandas as pd

    frame = pd.DataFrame(simulation.trials)
    frame.index = [f"t{i}" for i in range(len(frame))]
    return frame


def _all_batches(bundle, seed=0):
    torch.manual_seed(seed)  # the train sampler draws its pass from the global torch RNG
    return {(tier, session): list(loader) for tier, d in bundle.loaders.items() for session, loader in d.items()}


def test_dataframe_to_both_backends_gives_identical_batches(simulation, frame, tmp_path):
    in_memory = TrialSet.from_dataframe(frame, neurons=simulation.neurons, frame_rate=simulation.frame_rate,
                                        behavior_names=simulation.behavior_names)
    readers = {"memory": in_memory}
    for backend in ("memmap", "deeplake"):
        readers[backend] = open_trials(write_trials(in_memory, tmp_path / backend, backend=backend))
    bundles = {name: build_video_loaders(r, 5, subsequence_length=16, burn_in=4, batch_size=3)
               for name, r in readers.items()}
    reference = _all_batches(bundles["memory"])
    assert {tier for tier, _ in reference} == {"train", "validation", "test"}
    for name in ("memmap", "deeplake"):
        assert bundles[name].info == bundles["memory"].info
        batches = _all_batches(bundles[name])
        assert batches.keys() == reference.keys()
        for key, expected in reference.items():
            assert len(batches[key]) == len(expected)
            for ours, theirs in zip(batches[key], expected):
                assert ours.keys() == theirs.keys()
                for field in ours:
                    torch.testing.assert_close(ours[field], theirs[field], rtol=0, atol=0)


def test_train_windows_are_seeded_random_subsequences(simulation):
    trials = TrialSet.from_arrays(simulation.trials, frame_rate=simulation.frame_rate)
    bundle = build_video_loaders(trials, 0, subsequence_length=16, burn_in=4, batch_size=4, normalize=False)
    loader = bundle.loaders["train"]["session_0"]
    first, again = _all_batches(bundle, 1), _all_batches(bundle, 1)
    other = _all_batches(bundle, 2)
    starts = torch.cat([b["start"] for b in first[("train", "session_0")]])
    assert torch.equal(starts, torch.cat([b["start"] for b in again[("train", "session_0")]]))
    assert not torch.equal(starts, torch.cat([b["start"] for b in other[("train", "session_0")]]))
    # Every train trial appears once per pass, as a window of its own frames.
    torch.manual_seed(1)
    for batch in loader:
        assert batch["inputs"].shape[2] == 16 and batch["responses"].shape[1] == 16
        for trial, start, responses in zip(batch["trial_id"], batch["start"], batch["responses"]):
            recorded = trials.read(int(trial), int(start), int(start) + 16)["responses"]
            np.testing.assert_array_equal(responses.numpy(), recorded)
    ids = torch.cat([b["trial_id"] for b in first[("train", "session_0")]]).sort().values.numpy()
    np.testing.assert_array_equal(ids, trials.meta.select(session="session_0", tier="train"))


def test_normalisation_uses_train_trials_only(simulation):
    trials = dict(simulation.trials)
    trials["videos"] = [np.asarray(v) + (1000.0 if tier == "test" else 0.0)
                        for v, tier in zip(trials["videos"], trials["tier"])]
    shifted = TrialSet.from_arrays(trials, frame_rate=simulation.frame_rate)
    original = TrialSet.from_arrays(simulation.trials, frame_rate=simulation.frame_rate)
    for session in original.meta.sessions:
        a = normalization_statistics(original, session)
        b = normalization_statistics(shifted, session)
        np.testing.assert_array_equal(a.video_mean, b.video_mean)
        np.testing.assert_array_equal(a.response_scale, b.response_scale)
    bundle = build_video_loaders(original, 0, subsequence_length=16, burn_in=4)
    # Applied to every tier: z-scored with the train statistics, so held-out frames come out
    # near zero mean too (the same movie statistics), not at their raw luminance.
    validation = torch.cat([b["inputs"].flatten() for b in bundle.loaders["validation"]["session_0"]])
    assert abs(float(validation.mean())) < 0.5
    stats = normalization_statistics(original, "session_0")
    first = next(iter(bundle.loaders["validation"]["session_0"]))
    trial = int(first["trial_id"][0])
    raw = original.read(trial)
    expected = (raw["behavior"] - stats.behavior_mean) / stats.behavior_std
    np.testing.assert_allclose(first["behavior"][0].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first["responses"][0].numpy(), raw["responses"] / stats.response_scale, rtol=1e-5)


def test_evaluation_tiers_hold_whole_trials_of_one_length(simulation):
    trials = TrialSet.from_arrays(simulation.trials, frame_rate=simulation.frame_rate)
    bundle = build_video_loaders(trials, 0, subsequence_length=16, burn_in=4, batch_size=8)
    seen = []
    for batch in bundle.loaders["validation"]["session_1"]:
        assert torch.all(batch["start"] == 0)
        for trial in batch["trial_id"]:
            assert trials.meta.length[int(trial)] == batch["responses"].shape[1]
        seen += batch["trial_id"].tolist()
    assert sorted(seen) == trials.meta.select(session="session_1", tier="validation").tolist()
    conditions = torch.cat([b["condition"] for b in bundle.loaders["test"]["session_0"]])
    assert set(conditions.tolist()) == {0, 1}


def test_sizes_that_do_not_fit_are_refused_with_the_fix(simulation):
    trials = TrialSet.from_arrays(simulation.trials, frame_rate=simulation.frame_rate)
    with pytest.raises(ValueError, match="use a subsequence_length <= 20"):
        build_video_loaders(trials, 0, subsequence_length=25, burn_in=4)
    with pytest.raises(ValueError, match="burn_in=16 must be smaller"):
        build_video_loaders(trials, 0, subsequence_length=16, burn_in=16)
    with pytest.raises(ValueError, match="unknown sessions"):
        build_video_loaders(trials, 0, subsequence_length=16, sessions=["nope"])


def test_malformed_dataframe_names_trial_and_column(frame, simulation):
    broken = frame.copy()
    responses = np.array(broken.at["t3", "responses"], dtype=np.float32)
    responses[2, 1] = np.nan
    broken.at["t3", "responses"] = responses
    with pytest.raises(TrialFormatError, match=r"trial 't3'.*'responses'"):
        TrialSet.from_dataframe(broken, frame_rate=30.0)
    with pytest.raises(TrialFormatError, match="pupil_center"):
        TrialSet.from_dataframe(frame.drop(columns="pupil_center"), frame_rate=30.0)

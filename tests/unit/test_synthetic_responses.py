"""The synthetic Poisson LN dataset and its known ground truth (no database, fast)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from neurofit.datasets.info import TIERS, DataInfo
from neurofit.datasets.synthetic_responses import (
    build_synthetic_responses,
    ground_truth_ceiling,
    simulate_sessions,
)
from neurofit.pipelines.analysis.prediction import correlation, correlation_to_average

SIM = dict(
    n_sessions=2, n_neurons=12, image_size=16, n_train_images=60, n_validation_images=20,
    n_test_images=10, n_repeats=5,
)


@pytest.fixture(scope="module")
def sessions():
    return simulate_sessions(0, **SIM)


@pytest.fixture(scope="module")
def bundle():
    return build_synthetic_responses(0, **SIM, batch_size=16)


def _all_batches(loader):
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_shapes_and_tiers(sessions):
    assert list(sessions) == ["session_0", "session_1"]
    n_trials = {"train": 60, "validation": 20, "test": 50}
    for session in sessions.values():
        assert set(session.tiers) == set(TIERS)
        assert session.filters.shape == (12, 2, 16, 16)
        for tier, data in session.tiers.items():
            n = n_trials[tier]
            assert data.images.shape == (n, 1, 16, 16) and data.images.dtype == np.float32
            assert data.rates.shape == (n, 12) and (data.rates > 0).all()
            assert data.counts.shape == (n, 12) and data.counts.dtype == np.float32
            assert data.stimulus_id.shape == (n,) and data.stimulus_id.dtype == np.int64
            assert np.array_equal(data.counts, np.round(data.counts)) and data.counts.min() >= 0


def test_repeats_share_ids_images_and_rates(sessions):
    test = sessions["session_0"].tiers["test"]
    ids, counts = np.unique(test.stimulus_id, return_counts=True)
    assert len(ids) == 10 and (counts == 5).all()
    for stimulus in ids:
        rows = test.stimulus_id == stimulus
        assert (test.images[rows] == test.images[rows][0]).all()
        assert (test.rates[rows] == test.rates[rows][0]).all()
    # Poisson noise differs between repeats.
    assert not (test.counts[test.stimulus_id == ids[0]] == test.counts[0]).all()


def test_ids_are_unique_per_image_and_disjoint_between_tiers(sessions):
    tiers = sessions["session_0"].tiers
    train, validation = tiers["train"].stimulus_id, tiers["validation"].stimulus_id
    assert len(np.unique(train)) == 60 and len(np.unique(validation)) == 20
    all_ids = [set(tiers[t].stimulus_id.tolist()) for t in TIERS]
    assert not (all_ids[0] & all_ids[1] or all_ids[0] & all_ids[2] or all_ids[1] & all_ids[2])


def test_counts_follow_the_rates(sessions):
    train = sessions["session_0"].tiers["train"]
    # Poisson: mean count equals mean rate up to sampling error (n = 720 draws per check).
    assert train.counts.mean() == pytest.approx(train.rates.mean(), rel=0.15)
    r = correlation(train.rates.ravel()[:, None], train.counts.ravel()[:, None])[0]
    assert r > 0.5


def test_rates_are_a_function_of_the_filter_drive(sessions):
    session = sessions["session_0"]
    train = session.tiers["train"]
    drive = np.einsum("ihw,nhw->in", train.images[:, 0], session.filters[:, 0])
    # Simple cells: log rate is linear in the drive, so the rank order must match exactly.
    simple = ~session.is_complex
    assert simple.all()  # default complex_fraction is 0
    for n in range(3):
        assert np.array_equal(np.argsort(drive[:, n]), np.argsort(np.log(train.rates[:, n])))


def test_complex_cells_are_phase_invariant():
    session = simulate_sessions(1, **{**SIM, "n_sessions": 1}, complex_fraction=1.0)["session_0"]
    assert session.is_complex.all()
    train = session.tiers["train"]
    pair = np.einsum("ihw,nkhw->ink", train.images[:, 0], session.filters)
    energy = np.sqrt((pair**2).sum(-1))
    assert np.array_equal(np.argsort(energy[:, 0]), np.argsort(train.rates[:, 0]))


def test_deterministic_given_ground_truth_seed(sessions):
    again = simulate_sessions(0, **SIM)
    other = simulate_sessions(1, **SIM)
    for name in sessions:
        for tier in TIERS:
            a, b = sessions[name].tiers[tier], again[name].tiers[tier]
            assert np.array_equal(a.images, b.images) and np.array_equal(a.counts, b.counts)
    assert not np.array_equal(sessions["session_0"].filters, other["session_0"].filters)


def test_sessions_have_different_neurons_and_extra_sessions_change_nothing(sessions):
    assert not np.allclose(sessions["session_0"].filters, sessions["session_1"].filters)
    single = simulate_sessions(0, **{**SIM, "n_sessions": 1})["session_0"]
    assert np.array_equal(single.tiers["test"].counts, sessions["session_0"].tiers["test"].counts)


def test_ceiling_is_the_perfect_models_score(bundle, sessions):
    ceiling = bundle.info.ceiling
    single, average = [], []
    for session in sessions.values():
        test = session.tiers["test"]
        single.append(correlation(test.counts, test.rates))
        average.append(correlation_to_average(test.counts, test.rates, test.stimulus_id))
    assert ceiling["single_trial_correlation"] == pytest.approx(np.mean(np.concatenate(single)))
    assert ceiling["correlation_to_average"] == pytest.approx(np.mean(np.concatenate(average)))
    assert 0 < ceiling["single_trial_correlation"] < ceiling["correlation_to_average"] < 1
    by_session = bundle.artefacts["ceiling_by_session"]
    assert by_session["session_1"]["single_trial_correlation"] == pytest.approx(single[1].mean())


def test_ground_truth_ceiling_per_neuron(sessions):
    per_neuron = ground_truth_ceiling(sessions["session_0"].tiers["test"])
    assert len(per_neuron["single_trial_correlation"]) == 12
    assert all(-1 <= v <= 1 for v in per_neuron["correlation_to_average"])


def test_loaders_deliver_the_simulated_data(bundle, sessions):
    assert set(bundle.loaders) == set(TIERS)
    for tier in TIERS:
        assert set(bundle.loaders[tier]) == {"session_0", "session_1"}
    test = _all_batches(bundle.loaders["test"]["session_1"])
    truth = sessions["session_1"].tiers["test"]
    assert test["inputs"].dtype == torch.float32 and test["stimulus_id"].dtype == torch.int64
    # Test and validation loaders keep the trial order.
    assert np.array_equal(test["responses"].numpy(), truth.counts)
    assert np.array_equal(test["stimulus_id"].numpy(), truth.stimulus_id)
    assert np.array_equal(test["inputs"].numpy(), truth.images)


def test_seed_changes_only_the_train_order():
    a = build_synthetic_responses(0, **SIM, batch_size=16)
    b = build_synthetic_responses(1, **SIM, batch_size=16)
    torch.manual_seed(0)
    ids_a = _all_batches(a.loaders["train"]["session_0"])["stimulus_id"]
    torch.manual_seed(0)
    ids_a_again = _all_batches(a.loaders["train"]["session_0"])["stimulus_id"]
    torch.manual_seed(0)
    ids_b = _all_batches(b.loaders["train"]["session_0"])["stimulus_id"]
    # Same global RNG state -> same order, even on a second pass over the same loader.
    assert torch.equal(ids_a, ids_a_again)
    assert not torch.equal(ids_a, ids_b)
    assert sorted(ids_a.tolist()) == sorted(ids_b.tolist()) == list(range(60))
    assert a.info == b.info
    ids_next_pass = _all_batches(a.loaders["train"]["session_0"])["stimulus_id"]
    assert not torch.equal(ids_a, ids_next_pass)


def test_info(bundle, sessions):
    info = bundle.info
    assert info.input_shape == (1, 16, 16)
    assert info.n_neurons == {"session_0": 12, "session_1": 12}
    means = info.mean_response["session_0"]
    assert np.allclose(means, sessions["session_0"].tiers["train"].counts.mean(axis=0))
    # DataInfo is stored as JSON with every trained model.
    assert DataInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_builder_and_simulator_share_defaults():
    built = inspect.signature(build_synthetic_responses).parameters
    for name, param in inspect.signature(simulate_sessions).parameters.items():
        if name != "ground_truth_seed":
            assert built[name].default == param.default, name
        assert built[name].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    "bad", [{"n_neurons": 0}, {"n_repeats": 1.5}, {"complex_fraction": 1.5}, {"n_test_images": 1}]
)
def test_invalid_settings_raise(bad):
    with pytest.raises(ValueError):
        simulate_sessions(0, **{**SIM, **bad})

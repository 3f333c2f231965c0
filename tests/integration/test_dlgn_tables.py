"""The dLGN movie workflow on a real database: DataFrame -> stored dataset -> configs -> training
-> per-condition scores -> one tidy row per model x seed x session x neuron."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.db

SIMULATION = dict(n_sessions=2, n_neurons=5, frame_size=(8, 12), n_train_clips=6, n_validation_clips=2,
                  n_test_clips=2, n_test_repeats=4, clip_length=(20, 30))
LOADER = {"subsequence_length": 16, "burn_in": 4, "batch_size": 4}


@pytest.fixture(scope="module")
def converted(db, tmp_path_factory):
    """A DataFrame of trials converted with `neurofit convert`, as a lab would do it."""
    from neurofit.datasets.synthetic_dlgn import simulate_dlgn

    simulation = simulate_dlgn(4, **SIMULATION)
    folder = tmp_path_factory.mktemp("dlgn")
    frame = pd.DataFrame(simulation.trials)
    frame.to_pickle(folder / "trials.pkl")
    pd.to_pickle(simulation.neurons, folder / "neurons.pkl")
    result = subprocess.run(
        [sys.executable, "-m", "neurofit.schemas.cli", "convert", str(folder / "trials.pkl"), str(folder / "store"),
         "--frame-rate", "30", "--neurons", str(folder / "neurons.pkl"),
         "--behavior-names", "running_speed", "pupil_dilation"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 32 trials of 2 session(s)" in result.stdout  # (6 + 2 + 2 clips x 4 repeats) x 2 sessions
    return folder, simulation


@pytest.fixture(scope="module")
def trained(converted):
    from neurofit import schemas

    folder, _ = converted
    dataset = schemas.Dataset.add("neurofit.video_trials", {"path": str(folder / "store"), **LOADER})
    models = [schemas.Model.add("neurofit.factorized_3d", {"hidden_channels": 4, "layers": 1}),
              schemas.Model.add("neurofit.conv_gru", {"hidden_channels": 4, "feature_layers": 1})]
    trainer = schemas.Trainer.add("neurofit.poisson", {"max_epochs": 2})
    keys = schemas.TrainingSelection.add_grid(dataset, models, trainer, [1])
    results = schemas.populate(["TrainedModel", "Performance"], keys, display_progress=False, suppress_errors=False)
    return keys, results


def test_convert_refuses_a_malformed_dataframe_naming_trial_and_column(converted, tmp_path):
    folder, simulation = converted
    frame = pd.DataFrame(simulation.trials)
    frame.at[5, "behavior"] = np.zeros((3, 2), np.float32)  # 3 frames, the trial has more
    frame.to_pickle(tmp_path / "bad.pkl")
    result = subprocess.run(
        [sys.executable, "-m", "neurofit.schemas.cli", "convert", str(tmp_path / "bad.pkl"), str(tmp_path / "out"),
         "--frame-rate", "30"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "trial 5" in result.stderr and "'behavior'" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_video_models_train_and_are_scored_per_condition(trained):
    from neurofit import schemas

    keys, results = trained
    assert results["TrainedModel"]["success_count"] == 2
    assert results["Performance"]["success_count"] == 2
    conditions = (schemas.Performance.Condition & keys).to_dicts()
    assert len(conditions) == 2 * 2 * 2  # models x sessions x conditions
    assert {row["condition"] for row in conditions} == {"control", "optogenetic"}
    for row in conditions:
        assert row["n_trials"] == 4  # half of the 2 clips x 4 repeats
        assert row["mean_prediction"].shape == (5,) and np.all(row["mean_prediction"] > 0)
    info = (schemas.TrainedModel & keys[0]).fetch1("data_info")
    assert info["modality"] == "video" and info["fingerprint"] and info["burn_in"] == LOADER["burn_in"]
    assert info["extra"] == {}


def test_tidy_frame_has_one_row_per_model_seed_session_neuron(trained, converted):
    from neurofit import schemas

    keys, _ = trained
    _, simulation = converted
    frame = schemas.Performance.neurons(keys)
    assert len(frame) == 2 * 2 * 5
    assert not frame.duplicated(["model_fn", "model_hash", "seed", "session", "neuron"]).any()
    expected_units = {s: list(v["unit_id"]) for s, v in simulation.neurons.items()}
    for (session, neuron), unit in zip(frame[["session", "neuron"]].itertuples(index=False), frame["unit_id"]):
        assert unit == expected_units[session][neuron]
    for column in ("single_trial_correlation", "cc_norm", "single_trial_correlation_control",
                   "cc_norm_optogenetic", "predicted_ratio_optogenetic", "recorded_ratio_optogenetic"):
        assert column in frame.columns
    assert np.all(frame["predicted_ratio_optogenetic"] > 0)
    session = (schemas.Performance.Session & keys[0] & {"session": "session_0"}).fetch1()
    np.testing.assert_allclose(
        frame[(frame.model_hash == keys[0]["model_hash"]) & (frame.session == "session_0")]["cc_norm"],
        session["cc_norm"],
    )
    assert len(schemas.Performance.neurons({"model_hash": "0" * 32})) == 0

"""The auditory workflow on a real database: synthetic STRF neurons -> ridge and LN fits ->
AuditoryScore per neuron -> STRFRecovery against the ground truth -> leaderboard (function and CLI)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

DATA = dict(n_neurons=4, n_bands=8, n_lags=6, stimulus="drc", n_train_clips=12, n_validation_clips=2,
            n_test_clips=2, n_repeats=4, clip_bins=60, mean_rate=2.0)


@pytest.fixture(scope="module")
def trained(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_strf", DATA)
    ridge = schemas.Trainer.add("neurofit.ridge_strf", {"lambdas": [1.0, 100.0, 1e4]})
    gradient = schemas.Trainer.add("neurofit.auditory", {"max_epochs": 3, "lr": 0.01})
    linear = schemas.Model.add("neurofit.strf_linear", {"n_lags": 6})
    ln = schemas.Model.add("neurofit.strf_ln", {"n_lags": 6})
    keys = schemas.TrainingSelection.add_grid(dataset, [linear], ridge, [1, 2])
    keys += schemas.TrainingSelection.add_grid(dataset, [ln], gradient, [1])
    results = schemas.populate(["TrainedModel", "Performance", "AuditoryScore", "STRFRecovery"], keys,
                               display_progress=False, suppress_errors=False)
    yield dataset, keys, results
    from neurofit.schemas import auditory

    auditory.schema.drop(prompt=False)  # before neurofit's schema, which its tables reference


def test_scores_and_recovery_are_stored(trained):
    from neurofit import schemas
    from neurofit.schemas.auditory import AuditoryScore, STRFRecovery

    dataset, keys, results = trained
    assert results["TrainedModel"]["success_count"] == 3
    assert len(AuditoryScore & keys) == 3 and len(AuditoryScore.Neuron & keys) == 3 * 4
    assert len(STRFRecovery & keys) == 3  # linear and LN kernels both compared with the truth
    ridge = (STRFRecovery & keys[0]).fetch1()
    assert ridge["mean_r"] > 0.7  # DRC stimuli: ridge recovers the Gabor STRFs
    neuron = (STRFRecovery.Neuron & keys[0] & {"neuron": 0}).fetch1()
    assert neuron["fitted_strf"].shape == (1, 6, 8)
    row = (AuditoryScore & keys[0]).fetch1()
    performance = (schemas.Performance & keys[0]).fetch1()
    np.testing.assert_allclose(row["cc_abs"], performance["cc_abs"], rtol=1e-9)  # one CCraw everywhere
    part = (AuditoryScore.Neuron & keys[0]).to_dicts()
    assert all(p["cc_norm_low"] <= p["cc_norm"] <= p["cc_norm_high"] for p in part if p["cc_norm"] is not None)


def test_leaderboard_ranks_models_by_cc_norm(trained):
    from neurofit.schemas.leaderboard import LEADERBOARD_COLUMNS, leaderboard

    dataset, keys, _ = trained
    table = leaderboard("neurofit.synthetic_strf")
    assert list(table.columns) == list(LEADERBOARD_COLUMNS) and len(table) == 2
    assert table["cc_norm_mean"].is_monotonic_decreasing
    ridge = table[table.trainer_fn == "neurofit.ridge_strf"].iloc[0]
    assert ridge.n_seeds == 2 and np.isfinite(ridge.cc_norm_sd)
    assert ridge.n_parameters == 4 * (6 * 8 + 1) and ridge.parameters_per_neuron == 6 * 8 + 1
    assert leaderboard(dataset["dataset_hash"][:8]).equals(table)
    with pytest.raises(ValueError, match="no dataset"):
        leaderboard("neurofit.nothing_like_it")
    result = subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", "leaderboard", "neurofit.synthetic_strf"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "neurofit.strf_ln" in result.stdout and "parameters_per_neuron" in result.stdout

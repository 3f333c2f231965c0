"""The dLGN workflow recovers its ground truth: fit quality near the ceiling, and which neurons the
laser modulates. Also: wandb offline logging of the same training path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofit.pipelines.performance import evaluate, roc_auc
from neurofit.pipelines.trainers.poisson import train_poisson
from neurofit.pipelines.training import RunContext, TrainingContext, build_data, build_model, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(2)
    data = build_data("neurofit.synthetic_dlgn", {}, seed=0)
    model = build_model("neurofit.factorized_3d", {"hidden_channels": 8, "layers": 2}, data.info, seed=1)
    result = train_poisson(model, data, 1, TrainingContext(device="cpu"), max_epochs=40, lr=0.02, patience=5,
                           grad_clip=10.0)
    return data, result, evaluate(result.model, data, "cpu")


def test_test_correlation_approaches_the_ground_truth_ceiling(fitted):
    data, result, scores = fitted
    per_neuron = data.artefacts["ceiling_per_neuron"]
    r = np.concatenate([s["single_trial_correlation"] for s in scores.values()])
    truth = np.concatenate([per_neuron[s] for s in scores])
    assert data.info.ceiling["single_trial_correlation"] == pytest.approx(truth.mean())
    # The true rates score `ceiling` on the same frames; a fitted model gets most of the way.
    assert r.mean() > 0.75 * truth.mean(), (r.mean(), truth.mean())
    assert r.mean() < truth.mean() + 0.02  # nothing beats the generating rates by more than noise
    assert result.history[-1]["validation_score"] > result.history[0]["validation_score"]


def test_fitted_model_recovers_which_neurons_the_laser_modulates(fitted):
    data, _, scores = fitted
    truth = data.artefacts["ground_truth"]["sessions"]
    for session, session_scores in scores.items():
        conditions = session_scores["conditions"]
        assert set(conditions) == {"control", "optogenetic"}
        ratio = conditions["optogenetic"]["mean_prediction"] / conditions["control"]["mean_prediction"]
        modulated = np.asarray(truth[session]["modulated"], bool)
        gain = np.asarray(truth[session]["optogenetic_gain"], float)
        assert 0 < modulated.sum() < len(modulated)
        # Ranking by predicted change separates the modulated neurons (AUC 1 = perfectly).
        assert roc_auc(np.abs(np.log(ratio)), modulated) > 0.9
        # ... and the size of the change follows the true gain.
        assert np.corrcoef(np.log(ratio), np.log(gain))[0, 1] > 0.8
        # Per-condition scores exist per neuron and repeats exist within each condition.
        for values in conditions.values():
            assert values["cc_norm"].shape == modulated.shape
            assert np.isfinite(values["cc_max"]).mean() > 0.5


def test_training_logs_each_epoch_to_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("NEUROFIT_WANDB", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    small = {"n_sessions": 1, "n_neurons": 6, "n_train_clips": 6, "n_validation_clips": 2, "n_test_clips": 2,
             "n_test_repeats": 4, "clip_length": [20, 30], "subsequence_length": 16, "burn_in": 4}
    outcome = train("neurofit.synthetic_dlgn", small, "neurofit.factorized_3d", {"hidden_channels": 4, "layers": 1},
                    "neurofit.poisson", {"max_epochs": 2}, 0, RunContext(), run_name="wandb-test")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert len(outcome.history) == 2
    assert list(runs[0].glob("*.wandb")), "the offline run holds its log file"


def test_roc_auc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    score = np.round(rng.normal(size=200), 1)  # ties included
    positive = rng.random(200) < 0.3
    assert roc_auc(score, positive) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
    assert np.isnan(roc_auc(score, np.zeros(200, bool)))


def test_an_unknown_wandb_mode_is_refused(monkeypatch):
    from neurofit.pipelines.tracking import wandb_mode

    monkeypatch.setenv("NEUROFIT_WANDB", "sometimes")
    with pytest.raises(ValueError, match="offline, online, disabled"):
        wandb_mode()

"""Task scores (accuracy, cross-entropy, masked MSE and R²) against NumPy and scikit-learn references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurofit.datasets.info import DataBundle, DataInfo
from neurofit.pipelines import task_scores


def _reference_classification(logits, labels):
    accuracy = np.mean([np.argmax(row) == label for row, label in zip(logits, labels)])
    losses = [np.log(np.sum(np.exp(row))) - row[label] for row, label in zip(logits, labels)]
    return accuracy, np.mean(losses)


def test_accuracy_and_cross_entropy_match_a_reference_and_sklearn():
    from sklearn.metrics import accuracy_score, log_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (200, 5))
    labels = rng.integers(0, 5, 200)
    found = task_scores.classification_scores(logits, labels)
    accuracy, cross_entropy = _reference_classification(logits, labels)
    assert found["n"] == 200
    np.testing.assert_allclose(found["accuracy"], accuracy)
    np.testing.assert_allclose(found["cross_entropy"], cross_entropy, rtol=1e-12)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(found["accuracy"], accuracy_score(labels, logits.argmax(1)))
    np.testing.assert_allclose(found["cross_entropy"], log_loss(labels, probabilities, labels=range(5)), rtol=1e-9)


def test_cross_entropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    found = task_scores.classification_scores(logits, np.array([0, 0]))
    assert found["accuracy"] == 0.5
    np.testing.assert_allclose(found["cross_entropy"], 500.0)


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        task_scores.classification_scores(np.zeros((2, 3)), np.array([0, 3]))


def _reference_regression(predictions, targets, mask):
    """Per dimension, only the kept entries: plain MSE and R² on them."""
    r2, mse, ss_res, ss_tot = [], [], [], []
    for d in range(targets.shape[1]):
        keep = mask[:, d]
        y, y_hat = targets[keep, d], predictions[keep, d]
        ss_res.append(np.sum((y - y_hat) ** 2))
        ss_tot.append(np.sum((y - y.mean()) ** 2))
        r2.append(1 - ss_res[-1] / ss_tot[-1])
        mse.append(np.mean((y - y_hat) ** 2))
    overall_mse = np.sum(ss_res) / mask.sum()
    return np.array(mse), np.array(r2), overall_mse, 1 - np.sum(ss_res) / np.sum(ss_tot)


def test_masked_mse_and_r2_match_a_reference_on_the_kept_entries():
    rng = np.random.default_rng(1)
    targets = rng.normal(0, [1.0, 3.0, 0.5], (300, 3))
    predictions = targets + rng.normal(0, 0.7, targets.shape)
    mask = rng.random(targets.shape) < 0.6
    # Entries the mask drops must not matter at all: make them wild.
    predictions[~mask] = 1e6
    found = task_scores.regression_scores(predictions, targets, mask.astype(float))
    mse, r2, overall_mse, overall_r2 = _reference_regression(predictions, targets, mask)
    np.testing.assert_allclose(found["mse_per_dim"], mse, rtol=1e-12)
    np.testing.assert_allclose(found["r2_per_dim"], r2, rtol=1e-12)
    np.testing.assert_allclose(found["mse"], overall_mse, rtol=1e-12)
    np.testing.assert_allclose(found["r2"], overall_r2, rtol=1e-12)
    assert found["n_values"] == mask.sum()
    assert list(found["n_values_per_dim"]) == list(mask.sum(0))


def test_r2_is_sklearns_variance_weighted_r2_with_sample_weights():
    from sklearn.metrics import mean_squared_error, r2_score

    rng = np.random.default_rng(2)
    targets = rng.normal(0, [1.0, 2.0], (100, 2))
    predictions = 0.8 * targets + rng.normal(0, 0.5, targets.shape)
    weights = (rng.random(100) < 0.5).astype(float)
    found = task_scores.regression_scores(predictions, targets, weights[:, None])
    np.testing.assert_allclose(
        found["r2"], r2_score(targets, predictions, sample_weight=weights, multioutput="variance_weighted"), rtol=1e-10)
    np.testing.assert_allclose(
        found["r2_per_dim"], r2_score(targets, predictions, sample_weight=weights, multioutput="raw_values"), rtol=1e-10)
    np.testing.assert_allclose(found["mse"], mean_squared_error(targets, predictions, sample_weight=weights), rtol=1e-10)


def test_a_constant_target_has_no_r2_and_an_empty_mask_is_refused():
    targets = np.stack([np.ones(10), np.arange(10.0)], axis=1)
    found = task_scores.regression_scores(targets + 0.1, targets)
    assert np.isnan(found["r2_per_dim"][0]) and np.isfinite(found["r2_per_dim"][1])
    with pytest.raises(ValueError, match="weight 0"):
        task_scores.regression_scores(targets, targets, np.zeros_like(targets))


# ---- models on loaders -------------------------------------------------------------------------


class Fixed(nn.Module):
    """Returns what it is told for each batch, in order (logits, predictions or a dict)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, inputs, session, **other):
        return self.outputs.pop(0)


def _bundle(info, tiers):
    return DataBundle(loaders={tier: {"all": batches} for tier, batches in tiers.items()}, info=info)


def test_per_step_labels_lose_their_burn_in_and_the_tier_falls_back_to_validation():
    rng = np.random.default_rng(3)
    info = DataInfo(input_shape=(4,), input_axes=("feature",), modality="sequence", n_neurons={"all": 0},
                    provides=("labels",), n_classes=3, burn_in=2)
    labels = [torch.as_tensor(rng.integers(0, 3, (5, 6))) for _ in range(2)]
    logits = [torch.as_tensor(rng.normal(0, 1, (5, 6, 3)), dtype=torch.float32) for _ in range(2)]
    batches = [{"inputs": torch.zeros(5, 6, 4), "labels": y} for y in labels]
    scores = task_scores.evaluate_task(Fixed(logits), _bundle(info, {"train": [], "validation": batches}))
    assert scores.tier == "validation" and scores.n_trials == 10
    kept_logits = np.concatenate([x[:, 2:].numpy().reshape(-1, 3) for x in logits])
    kept_labels = np.concatenate([y[:, 2:].numpy().reshape(-1) for y in labels])
    accuracy, cross_entropy = _reference_classification(kept_logits.astype(np.float64), kept_labels)
    assert scores.n_labels == 2 * 5 * 4
    np.testing.assert_allclose([scores.accuracy, scores.cross_entropy], [accuracy, cross_entropy], rtol=1e-6)
    assert np.isnan(scores.mse) and scores.per_target == {}


def test_targets_are_scored_with_the_batch_mask_broadcast_over_target_dimensions():
    rng = np.random.default_rng(4)
    info = DataInfo(input_shape=(8, 3), input_axes=("time", "feature"), modality="sequence", n_neurons={"all": 0},
                    provides=("targets", "mask"), target_shape=(2,), target_names=("x", "y"))
    targets = torch.as_tensor(rng.normal(0, 1, (6, 8, 2)), dtype=torch.float32)
    predictions = targets + torch.as_tensor(rng.normal(0, 0.5, (6, 8, 2)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random((6, 8)) < 0.5, dtype=torch.float32)  # (B, T): leading axes
    batch = {"inputs": torch.zeros(6, 8, 3), "targets": targets, "weights": mask}
    scores = task_scores.evaluate_task(Fixed([predictions]), _bundle(info, {"test": [batch]}))
    keep = np.repeat(mask.numpy().reshape(-1, 1).astype(bool), 2, axis=1)
    mse, r2, overall_mse, overall_r2 = _reference_regression(
        predictions.numpy().reshape(-1, 2).astype(np.float64), targets.numpy().reshape(-1, 2).astype(np.float64), keep)
    assert scores.tier == "test" and scores.n_target_values == keep.sum()
    np.testing.assert_allclose([scores.mse, scores.r2], [overall_mse, overall_r2], rtol=1e-6)
    np.testing.assert_allclose(scores.per_target["r2"], r2, rtol=1e-6)
    np.testing.assert_allclose(scores.per_target["mse"], mse, rtol=1e-6)


def test_wrong_output_shapes_and_ambiguous_outputs_are_explained():
    info = DataInfo(input_shape=(4,), n_neurons={"all": 0}, provides=("labels",), n_classes=3)
    batch = {"inputs": torch.zeros(2, 4), "labels": torch.tensor([0, 1])}
    with pytest.raises(ValueError, match=r"need logits of shape \(2, 3\)"):
        task_scores.evaluate_task(Fixed([torch.zeros(2, 4)]), _bundle(info, {"test": [batch]}))
    both = DataInfo(input_shape=(4,), n_neurons={"all": 0}, provides=("labels", "targets"), n_classes=3,
                    target_shape=(1,))
    batch = {"inputs": torch.zeros(2, 4), "labels": torch.tensor([0, 1]), "targets": torch.zeros(2, 1)}
    with pytest.raises(ValueError, match="must return a dict"):
        task_scores.evaluate_task(Fixed([torch.zeros(2, 3)]), _bundle(both, {"test": [batch]}))
    output = {"labels": torch.tensor([[5.0, 0, 0], [0, 5.0, 0]]), "targets": torch.ones(2, 1)}
    scores = task_scores.evaluate_task(Fixed([output]), _bundle(both, {"test": [batch]}))
    assert scores.accuracy == 1.0 and scores.mse == 1.0


def test_responses_only_data_are_not_task_data():
    info = DataInfo(input_shape=(4,), n_neurons={"s": 2})
    with pytest.raises(ValueError, match="labels or targets"):
        task_scores.evaluate_task(Fixed([]), _bundle(info, {"test": []}))

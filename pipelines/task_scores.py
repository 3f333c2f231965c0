"""How well a trained model does its task: class labels (accuracy, cross-entropy) and regression
targets (masked MSE, R²), on one tier of its data. No database here.

What the model is asked for follows its `DataInfo.provides` and the `Batch` layout:

* ``labels``: the model returns logits, (batch, n_classes) for one label per trial, or
  (batch, time, n_classes) for a label per time step (labels (batch, time));
* ``targets``: the model returns the targets' shape, (batch, *target_shape) or
  (batch, time, *target_shape); the batch's ``weights`` (the loss mask, present when the data
  provide ``mask``) weigh every entry, 0 leaving it out.

A model of data that provide both returns a dict ``{"labels": logits, "targets": outputs}``.
Time-resolved data lose their first ``DataInfo.burn_in`` steps, as in training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .batches import model_inputs

__all__ = [
    "TaskScores",
    "classification_scores",
    "evaluate_task",
    "gather_task_outputs",
    "regression_scores",
    "scoring_tier",
    "task_output",
]


def classification_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and mean cross-entropy of class logits.

    Args:
        logits: (n, n_classes) unnormalised log-probabilities.
        labels: (n,) int class indices in [0, n_classes).

    Returns:
        ``accuracy`` (fraction with the largest logit at the label; ties go to the first
        class), ``cross_entropy`` (mean negative log-softmax at the label, in nats) and ``n``.

    Raises:
        ValueError: shapes that disagree, no rows, or labels outside [0, n_classes).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or not len(labels):
        raise ValueError(f"need logits (n, n_classes) and labels (n,) with n > 0, got {logits.shape} and {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got {labels.min()} .. {labels.max()}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    return {
        "accuracy": float(np.mean(logits.argmax(axis=1) == labels)),
        "cross_entropy": float(-log_softmax[rows, labels].mean()),
        "n": len(labels),
    }


def regression_scores(
    predictions: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, Any]:
    """Masked mean squared error and R² of predicted targets, overall and per target dimension.

    With weights w (a 0/1 loss mask, or any non-negative weights) and per-dimension weighted
    means m_d: SSres_d = Σ w (y - ŷ)², SStot_d = Σ w (y - m_d)². Then ``r2_d = 1 - SSres_d /
    SStot_d`` and the variance-weighted ``r2 = 1 - Σ_d SSres_d / Σ_d SStot_d`` (scikit-learn's
    ``multioutput="variance_weighted"``), ``mse = Σ w (y - ŷ)² / Σ w``.

    Args:
        predictions, targets: (n, n_dims) float.
        weights: (n, n_dims) non-negative, or None (every entry counts once).

    Returns:
        ``mse``, ``r2`` (NaN when no dimension varies), ``n_values`` (entries with weight > 0)
        and per dimension ``mse_per_dim``, ``r2_per_dim`` (NaN where SStot is 0) and
        ``n_values_per_dim``, each (n_dims,).

    Raises:
        ValueError: shapes that disagree, negative or non-finite weights, or no weight at all.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape or targets.ndim != 2:
        raise ValueError(f"need predictions and targets of one shape (n, n_dims), got {predictions.shape} and {targets.shape}")
    w = np.ones_like(targets) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), targets.shape)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights (the loss mask) must be finite and >= 0")
    total = w.sum(axis=0)
    if not total.sum() > 0:
        raise ValueError("every target entry has weight 0: the loss mask leaves nothing to score")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (w * targets).sum(axis=0) / total
        ss_res = (w * (targets - predictions) ** 2).sum(axis=0)
        ss_tot = (w * (targets - np.where(total > 0, means, 0.0)) ** 2).sum(axis=0)
        r2_per_dim = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)
        mse_per_dim = np.where(total > 0, ss_res / total, np.nan)
    denominator = ss_tot.sum()
    return {
        "mse": float(ss_res.sum() / total.sum()),
        "r2": float(1 - ss_res.sum() / denominator) if denominator > 0 else float("nan"),
        "n_values": int((w > 0).sum()),
        "mse_per_dim": mse_per_dim,
        "r2_per_dim": r2_per_dim,
        "n_values_per_dim": (w > 0).sum(axis=0).astype(np.int64),
    }


def task_output(outputs: Any, kind: str, provides: tuple[str, ...]) -> torch.Tensor:
    """The part of a model's output that answers ``kind`` ("labels" or "targets")."""
    if isinstance(outputs, Mapping):
        if kind not in outputs:
            raise ValueError(f"the model returned a dict with keys {sorted(outputs)}; scoring {kind} needs key {kind!r}")
        return outputs[kind]
    if "labels" in provides and "targets" in provides:
        raise ValueError(
            "these data provide both labels and targets: the model must return a dict "
            "{'labels': logits, 'targets': predictions} to be scored on both"
        )
    return outputs


def _trim(tensor: torch.Tensor, timed: bool, burn_in: int) -> torch.Tensor:
    return tensor[:, burn_in:] if timed and burn_in else tensor


def gather_task_outputs(model, loaders_by_session: Mapping[str, Any], info, device) -> dict[str, Any]:
    """Model outputs next to labels and targets over one tier, pooled over sessions.

    Args:
        model: called as ``model(inputs, session, **other_inputs)`` (`neurofit.pipelines.batches`).
        loaders_by_session: ``{session: loader}`` of one tier.
        info: the data's `DataInfo` (what it provides, ``n_classes``, ``burn_in``).
        device: where the model runs.

    Returns:
        ``n_trials`` and, as the data provide them, ``logits`` (n, n_classes) with ``labels``
        (n,), and ``predictions``, ``targets`` and ``weights`` (n, n_dims) with targets
        flattened to their ``prod(target_shape)`` dimensions; float64 / int64 numpy arrays.

    Raises:
        ValueError: an output whose shape does not fit the labels or targets.
    """
    provides = tuple(info.provides)
    timed = bool(info.time_resolved)
    parts: dict[str, list[np.ndarray]] = {}
    n_trials = 0
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.no_grad():
            for session, loader in loaders_by_session.items():
                for batch in loader:
                    inputs, extra = model_inputs(batch, device)
                    outputs = model(inputs, session, **extra)
                    n_trials += int(inputs.shape[0])
                    if "labels" in provides:
                        _add_labels(parts, task_output(outputs, "labels", provides), batch, info, timed, session)
                    if "targets" in provides:
                        _add_targets(parts, task_output(outputs, "targets", provides), batch, info, timed, session)
    finally:
        model.train(was_training)
    if not n_trials:
        raise ValueError("the tier's loaders yielded no batches")
    gathered: dict[str, Any] = {name: np.concatenate(values) for name, values in parts.items()}
    gathered["n_trials"] = n_trials
    return gathered


def _add_labels(parts, logits, batch, info, timed, session) -> None:
    labels = batch["labels"]
    logits = logits.detach().float().cpu()
    if logits.shape[:labels.ndim] != labels.shape or logits.ndim != labels.ndim + 1 or logits.shape[-1] != info.n_classes:
        raise ValueError(
            f"session {session!r}: labels of shape {tuple(labels.shape)} need logits of shape "
            f"{(*labels.shape, info.n_classes)}, the model returned {tuple(logits.shape)}"
        )
    if labels.ndim == 2:  # one label per time step
        labels, logits = _trim(labels, timed, info.burn_in), _trim(logits, timed, info.burn_in)
    parts.setdefault("labels", []).append(labels.reshape(-1).numpy().astype(np.int64))
    parts.setdefault("logits", []).append(logits.reshape(-1, info.n_classes).numpy().astype(np.float64))


def _add_targets(parts, predictions, batch, info, timed, session) -> None:
    targets = batch["targets"]
    predictions = predictions.detach().float().cpu()
    if predictions.shape != targets.shape:
        raise ValueError(
            f"session {session!r}: targets have shape {tuple(targets.shape)}, the model returned "
            f"{tuple(predictions.shape)}; it must return one value per target entry"
        )
    weights = batch.get("weights") if "mask" in info.provides else None
    if weights is None:
        weights = torch.ones_like(targets)
    weights = weights.float()
    if targets.shape[: weights.ndim] != weights.shape:
        raise ValueError(
            f"session {session!r}: the loss mask ('weights') has shape {tuple(weights.shape)}; it must "
            f"be the targets' shape {tuple(targets.shape)} or their leading axes"
        )
    weights = weights.reshape(*weights.shape, *([1] * (targets.ndim - weights.ndim))).expand(targets.shape)
    n_dims = int(np.prod(info.target_shape))
    for name, value in (("predictions", predictions), ("targets", targets), ("weights", weights)):
        parts.setdefault(name, []).append(
            _trim(value, timed, info.burn_in).reshape(-1, n_dims).numpy().astype(np.float64)
        )


def scoring_tier(data, preferred: str = "test") -> str:
    """``preferred`` if the data have it (with at least one loader), else "validation".

    Raises:
        ValueError: neither tier is there.
    """
    for tier in (preferred, "validation"):
        if data.loaders.get(tier):
            return tier
    raise ValueError(f"the data have neither a {preferred!r} nor a 'validation' tier; they have {sorted(data.loaders)}")


@dataclass
class TaskScores:
    """Task scores of one trained model on one tier (NaN / empty where the data lack the kind).

    Attributes:
        tier: the tier scored.
        n_trials: trials scored.
        accuracy, cross_entropy: of the labels (see `classification_scores`); ``n_labels`` of them.
        mse, r2: of the targets over the entries the mask keeps (see `regression_scores`);
            ``n_target_values`` such entries.
        per_target: per target dimension, ``{"mse", "r2", "n_values"}`` arrays (n_dims,).
    """

    tier: str
    n_trials: int
    accuracy: float = float("nan")
    cross_entropy: float = float("nan")
    n_labels: int = 0
    mse: float = float("nan")
    r2: float = float("nan")
    n_target_values: int = 0
    per_target: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate_task(model, data, device: str = "cpu", tier: str | None = None) -> TaskScores:
    """Score a model on its data's labels and targets (test tier, or validation without one).

    Raises:
        ValueError: the data provide neither labels nor targets, lack the tier, or the model's
            outputs do not fit them.
    """
    if not {"labels", "targets"} & set(data.info.provides):
        raise ValueError(
            f"these data provide {list(data.info.provides)}: task scores need labels or targets "
            "(neural responses are scored by Performance)"
        )
    tier = tier or scoring_tier(data)
    if tier not in data.loaders:
        raise ValueError(f"the data have no {tier!r} tier; they have {sorted(data.loaders)}")
    gathered = gather_task_outputs(model, data.loaders[tier], data.info, device)
    scores = TaskScores(tier=tier, n_trials=gathered["n_trials"])
    if "labels" in gathered:
        found = classification_scores(gathered["logits"], gathered["labels"])
        scores.accuracy, scores.cross_entropy, scores.n_labels = found["accuracy"], found["cross_entropy"], found["n"]
    if "targets" in gathered:
        found = regression_scores(gathered["predictions"], gathered["targets"], gathered["weights"])
        scores.mse, scores.r2, scores.n_target_values = found["mse"], found["r2"], found["n_values"]
        scores.per_target = {"mse": found["mse_per_dim"], "r2": found["r2_per_dim"], "n_values": found["n_values_per_dim"]}
    return scores

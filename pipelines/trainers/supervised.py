"""Task training: cross-entropy for class labels, masked MSE for regression targets, on the shared loop.

What is fitted follows the data's `DataInfo.provides` and the output convention of
`neurofit.pipelines.task_scores` (logits for ``labels``, one value per target entry for
``targets``, a dict of both when the data provide both), so one trainer serves character
recognition from spindle inputs (DeepDraw), task-trained RNNs with a loss mask
(Computation-Through-Dynamics) and dense regression (depth, edges, autoencoding).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..batches import model_inputs
from ..loop import EarlyStopping, StepResult, fit
from ..task_scores import evaluate_task, task_output
from ..training import RunContext, TrainResult

__all__ = ["OPTIMIZERS", "task_loss", "train_supervised", "validation_task_score"]

#: optimizer name -> torch class; weight decay is Adam's L2 term, or AdamW's decoupled one.
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def task_loss(outputs, batch, info, device) -> tuple[torch.Tensor, int]:
    """The batch's training loss and how many rows it averages over.

    Cross-entropy (mean over trials, or over trials x time steps for per-step labels) plus the
    masked MSE of the targets (Σ w (y - ŷ)² / Σ w over every entry the loss mask keeps). Time
    steps before ``info.burn_in`` are left out of both, as in scoring.

    Args:
        outputs: the model's output for the batch (see `neurofit.pipelines.task_scores`).
        batch: the `Batch` dict with ``labels`` and/or ``targets`` (and ``weights``).
        info: the data's `DataInfo`.
        device: where the outputs are.

    Returns:
        ``(loss, n_rows)`` with ``loss`` a scalar tensor.
    """
    provides = tuple(info.provides)
    burn_in = info.burn_in if info.time_resolved else 0
    loss = torch.zeros((), device=device)
    n_rows = 0
    if "labels" in provides:
        logits = task_output(outputs, "labels", provides).float()
        labels = batch["labels"].to(device)
        if labels.ndim == 2 and burn_in:
            logits, labels = logits[:, burn_in:], labels[:, burn_in:]
        loss = loss + nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        n_rows = labels.numel()
    if "targets" in provides:
        predictions = task_output(outputs, "targets", provides).float()
        targets = batch["targets"].to(device).float()
        weights = batch["weights"].to(device).float() if "mask" in provides else torch.ones_like(targets)
        weights = weights.reshape(*weights.shape, *([1] * (targets.ndim - weights.ndim))).expand(targets.shape)
        if burn_in:
            predictions, targets, weights = predictions[:, burn_in:], targets[:, burn_in:], weights[:, burn_in:]
        squared = (predictions - targets) ** 2 * weights
        loss = loss + squared.sum() / weights.sum().clamp(min=1.0)
        n_rows = n_rows or len(targets)
    return loss, n_rows


def validation_task_score(model: nn.Module, data, device) -> float:
    """Validation accuracy for labels, R² for targets (their mean when the data provide both)."""
    scores = evaluate_task(model, data, device, tier="validation")
    values = []
    if "labels" in data.info.provides:
        values.append(scores.accuracy)
    if "targets" in data.info.provides:
        values.append(scores.r2)
    return float(np.mean(values))


def train_supervised(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    max_epochs: int = 100,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    patience: int = 5,
    tolerance: float = 1e-4,
    lr_decay_factor: float = 0.25,
    lr_decay_steps: int = 2,
    min_epochs: int = 0,
    steps_per_epoch: int | None = None,
    amp: bool = False,
) -> TrainResult:
    """Fits ``model`` to the data's labels and/or targets, early-stopping on the validation task score.

    The loss is `task_loss` plus ``model.regularizer(session)`` where the model has one (for
    example an L2 penalty on an RNN's latents). The validation score is `validation_task_score`
    (accuracy, or R² of the masked targets). The defaults are DeepDraw's schedule: after
    ``patience`` = 5 epochs without improvement the best weights are restored and the learning rate
    divided by 4; the stall after the second decay stops training, never before ``min_epochs``.
    ``max_epochs: 0`` gives the untrained control through the same path. Checkpoints, exact
    resume and preemption are the shared loop's (`neurofit.pipelines.loop.fit`).

    Args:
        model: called as ``model(inputs, session, **other_inputs)``.
        data: a ``DataBundle`` with "train" and "validation" loaders providing labels or targets.
        seed: passed to ``set_seed`` before anything random happens.
        context: device, epoch reports, checkpoints and stop requests (`RunContext`).
        max_epochs: upper bound on epochs (0: the untrained model and its score).
        lr: initial learning rate.
        optimizer: ``"adam"`` or ``"adamw"`` (`OPTIMIZERS`).
        weight_decay: the optimizer's weight decay.
        grad_clip: maximum gradient norm (None: no clipping).
        patience, tolerance, lr_decay_factor, lr_decay_steps, min_epochs: early stopping
            (`neurofit.pipelines.loop.EarlyStopping`).
        steps_per_epoch: an epoch is this many batches (None: one pass over the train loaders).
        amp: bfloat16 autocast on CUDA devices (no effect on the CPU).

    Returns:
        ``TrainResult`` with the best validation score and one history row per epoch
        (``train_loss`` = mean task loss per row, without the regularizer).

    Raises:
        ValueError: data that provide neither labels nor targets, or an unknown optimizer.
    """
    info = data.info
    if not {"labels", "targets"} & set(info.provides):
        raise ValueError(
            f"neurofit.supervised fits labels or targets; these data provide {list(info.provides)} "
            "(fit neural responses with neurofit.poisson)"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r}: choose one of {sorted(OPTIMIZERS)}")
    regularizer = getattr(model, "regularizer", None)

    def step(model: nn.Module, session: str, batch) -> StepResult:
        inputs, extra = model_inputs(batch, context.device)
        loss, n_rows = task_loss(model(inputs, session, **extra), batch, info, context.device)
        total = loss.item() * n_rows
        if regularizer is not None:
            loss = loss + regularizer(session)
        return StepResult(loss=loss, total=total, count=n_rows)

    config = {
        "max_epochs": max_epochs, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
        "grad_clip": grad_clip, "patience": patience, "tolerance": tolerance, "lr_decay_factor": lr_decay_factor,
        "lr_decay_steps": lr_decay_steps, "min_epochs": min_epochs, "steps_per_epoch": steps_per_epoch, "amp": amp,
    }
    return fit(
        model, data, seed, context, trainer="train_supervised", config=config, step=step,
        validate=lambda m: validation_task_score(m, data, context.device),
        optimizer=lambda parameters: OPTIMIZERS[optimizer](parameters, lr=lr, weight_decay=weight_decay),
        stopping=EarlyStopping(patience=patience, tolerance=tolerance, lr_decay_factor=lr_decay_factor,
                               lr_decay_steps=lr_decay_steps, min_epochs=min_epochs),
        max_epochs=max_epochs, grad_clip=grad_clip, amp=amp, steps_per_epoch=steps_per_epoch,
    )

"""Poisson-loss trainer with early stopping on validation correlation (Sensorium-style)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..analysis.prediction import correlation
from ..batches import forward
from ..evaluation import predict
from ..loop import EarlyStopping, StepResult, fit
from ..training import RunContext, TrainResult

__all__ = ["train_poisson", "validation_correlation"]


def validation_correlation(
    model: nn.Module, loaders_by_session: Mapping[str, Any], device: str | torch.device,
    burn_in: int = 0,
) -> float:
    """Single-trial Pearson correlation, averaged over all neurons of all sessions.

    Args:
        model: called as ``model(inputs, session, **other_inputs)`` (`neurofit.pipelines.batches`).
        loaders_by_session: ``{session: loader}`` of one tier.
        device: where the model runs.
        burn_in: video only: leading frames of each trial that are not scored.

    Returns:
        Mean over neurons of ``neurofit.pipelines.analysis.prediction.correlation`` (ddof 0 on
        both sides; a constant prediction or response counts as 0).
    """
    results = predict(model, loaders_by_session, device, burn_in)
    per_neuron = [correlation(r["responses"], r["predictions"]) for r in results.values()]
    return float(np.mean(np.concatenate(per_neuron)))


def train_poisson(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    max_epochs: int = 12,
    lr: float = 0.01,
    patience: int = 3,
    tolerance: float = 1e-4,
    lr_decay_factor: float = 0.3,
    lr_decay_steps: int = 1,
    grad_clip: float | None = None,
    amp: bool = True,
) -> TrainResult:
    """Fits ``model`` with a Poisson loss and Adam, early-stopping on validation correlation.

    Works for image and video data alike (`neurofit.pipelines.batches`). Each epoch visits every
    train batch of every session once (sessions interleaved batch by batch). The loss of a batch
    is the Poisson negative log-likelihood summed over neurons and averaged over rows (trials for
    images; frames after the data's ``burn_in`` for videos), plus ``model.regularizer(session)``
    if the model has one. The validation score is the single-trial correlation, mean over all
    neurons. Everything else (epochs, early stopping with learning-rate decay back to the best
    weights, gradient clipping, bfloat16 autocast on CUDA, checkpoints with exact resume,
    preemption) is the shared loop's, `neurofit.pipelines.loop.fit`.

    Args:
        model: called as ``model(inputs, session, **other_inputs)`` -> positive rates.
        data: a ``DataBundle`` with "train" and "validation" loaders that provide responses.
        seed: passed to ``set_seed`` before anything random happens.
        context: device, epoch reports, checkpoints and stop requests (`RunContext`).
        max_epochs: upper bound on epochs (0: the untrained model and its score).
        lr: initial Adam learning rate.
        patience: epochs without improvement before a decay or stop.
        tolerance: minimum improvement of the validation score that counts.
        lr_decay_factor: learning-rate multiplier at each decay.
        lr_decay_steps: number of decays before stopping (0: stop at the first stall).
        grad_clip: maximum gradient norm (None: no clipping).
        amp: bfloat16 autocast on CUDA devices (no effect on the CPU).

    Returns:
        ``TrainResult`` with the best validation score, one history row per epoch
        (``train_loss`` = mean Poisson NLL per row without the regularizer) and the model holding
        the best weights. If no epoch beats the initial weights, those are returned.
    """
    burn_in = data.info.burn_in
    regularizer = getattr(model, "regularizer", None)

    def step(model: nn.Module, session: str, batch) -> StepResult:
        output, targets = forward(model, batch, session, context.device, burn_in)
        # The loss in float32 even under autocast: bfloat16 sums lose the NLL's small differences.
        nll = nn.functional.poisson_nll_loss(output.float(), targets, log_input=False, full=False, reduction="sum")
        loss = nll / len(targets)
        if regularizer is not None:
            loss = loss + regularizer(session)
        return StepResult(loss=loss, total=nll.item(), count=len(targets))

    config = {
        "max_epochs": max_epochs, "lr": lr, "patience": patience, "tolerance": tolerance,
        "lr_decay_factor": lr_decay_factor, "lr_decay_steps": lr_decay_steps, "grad_clip": grad_clip, "amp": amp,
    }
    return fit(
        model, data, seed, context, trainer="train_poisson", config=config, step=step,
        validate=lambda m: validation_correlation(m, data.loaders["validation"], context.device, burn_in),
        optimizer=lambda parameters: torch.optim.Adam(parameters, lr=lr),
        stopping=EarlyStopping(patience=patience, tolerance=tolerance, lr_decay_factor=lr_decay_factor,
                               lr_decay_steps=lr_decay_steps),
        max_epochs=max_epochs, grad_clip=grad_clip, amp=amp,
    )

"""Poisson-loss trainer with early stopping on validation correlation (Sensorium-style)."""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..analysis.prediction import correlation
from ..evaluation import predict
from ..seeding import set_seed
from ..training import TrainingContext, TrainResult

__all__ = ["train_poisson", "validation_correlation"]


def validation_correlation(
    model: nn.Module, loaders_by_session: Mapping[str, Any], device: str | torch.device
) -> float:
    """Single-trial Pearson correlation, averaged over all neurons of all sessions.

    Args:
        model: called as ``model(inputs, session)`` -> (batch, n_neurons).
        loaders_by_session: ``{session: loader}`` of one tier.
        device: where the model runs.

    Returns:
        Mean over neurons of ``neurofit.pipelines.analysis.prediction.correlation`` (ddof 0 on
        both sides; a constant prediction or response counts as 0).
    """
    results = predict(model, loaders_by_session, device)
    per_neuron = [correlation(r["responses"], r["predictions"]) for r in results.values()]
    return float(np.mean(np.concatenate(per_neuron)))


def _interleaved(loaders: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Yields (session, batch) round-robin over sessions until every loader is exhausted.

    Alternating sessions keeps the shared core from drifting towards whichever session came last.
    """
    iterators = {session: iter(loader) for session, loader in loaders.items()}
    while iterators:
        for session in list(iterators):
            try:
                yield session, next(iterators[session])
            except StopIteration:
                del iterators[session]


def train_poisson(
    model: nn.Module,
    data,
    seed: int,
    context: TrainingContext,
    *,
    max_epochs: int = 12,
    lr: float = 0.01,
    patience: int = 3,
    tolerance: float = 1e-4,
    lr_decay_factor: float = 0.3,
    lr_decay_steps: int = 1,
) -> TrainResult:
    """Fits ``model`` with a Poisson loss and Adam, early-stopping on validation correlation.

    Each epoch visits every train batch of every session once (sessions interleaved). The loss
    of a batch is the Poisson negative log-likelihood summed over neurons and averaged over
    trials, plus ``model.regularizer(session)`` if the model has one. After each epoch the
    validation score (single-trial correlation, mean over all neurons) is computed in eval mode.
    When it has not improved by more than ``tolerance`` for ``patience`` epochs, the best weights
    are restored and the learning rate is multiplied by ``lr_decay_factor``; after
    ``lr_decay_steps`` such decays the next stall ends training.

    Args:
        model: called as ``model(inputs, session)`` -> positive rates (batch, n_neurons).
        data: a ``DataBundle`` with "train" and "validation" loaders.
        seed: passed to ``set_seed`` before anything random happens.
        context: ``device`` to train on; ``report_epoch`` receives each history row.
        max_epochs: upper bound on epochs.
        lr: initial Adam learning rate.
        patience: epochs without improvement before a decay or stop.
        tolerance: minimum improvement of the validation score that counts.
        lr_decay_factor: learning-rate multiplier at each decay.
        lr_decay_steps: number of decays before stopping (0: stop at the first stall).

    Returns:
        ``TrainResult`` with the best validation score, one history row per epoch (``epoch``
        from 1, ``train_loss`` = mean Poisson NLL per trial without the regularizer,
        ``validation_score``, ``seconds``) and the model holding the best weights, in eval mode
        and on ``context.device``. If no epoch beats the initial weights, those are returned.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite.
    """
    if max_epochs < 1 or patience < 1 or lr_decay_steps < 0:
        raise ValueError("max_epochs and patience must be >= 1 and lr_decay_steps >= 0")
    set_seed(seed)
    device = torch.device(context.device)
    model.to(device)
    train_loaders = data.loaders["train"]
    validation_loaders = data.loaders["validation"]
    regularizer = getattr(model, "regularizer", None)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    best_score = validation_correlation(model, validation_loaders, device)
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, Any]] = []
    stalled = 0
    decays = 0
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum = 0.0
        n_trials = 0
        for session, batch in _interleaved(train_loaders):
            inputs = batch["inputs"].to(device)
            targets = batch["responses"].to(device)
            output = model(inputs, session)
            nll = nn.functional.poisson_nll_loss(
                output, targets, log_input=False, full=False, reduction="sum"
            )
            loss = nll / len(targets)
            if regularizer is not None:
                loss = loss + regularizer(session)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch} ({session})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += nll.item()
            n_trials += len(targets)

        score = validation_correlation(model, validation_loaders, device)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / max(n_trials, 1),
            "validation_score": score,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        context.report_epoch(dict(row))

        if score > best_score + tolerance or math.isnan(best_score):
            best_score = score
            best_state = copy.deepcopy(model.state_dict())
            stalled = 0
            continue
        stalled += 1
        if stalled < patience:
            continue
        if decays >= lr_decay_steps:
            break
        # Continuing from the best weights with a smaller step refines that optimum instead of
        # the worse point the stalled epochs drifted to.
        model.load_state_dict(best_state)
        for group in optimizer.param_groups:
            group["lr"] *= lr_decay_factor
        decays += 1
        stalled = 0

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(score=float(best_score), history=history, model=model)

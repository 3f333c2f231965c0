"""Poisson-NLL trainer for latent models of spiking data, scored by co-bps of held-out neurons.

The validation score is co-smoothing bits per spike (Neural Latents Benchmark): the models see
only the held-in neurons' spikes but predict every neuron; the Poisson log-likelihood of the
held-out neurons' validation spikes, against each neuron's mean rate, in bits per spike
(`neurofit.pipelines.analysis.dynamics.co_bps`). Training fits every neuron of the train trials
(CtD's SAE loss); a model with ``loss_weights()`` (LFADS under coordinated dropout) restricts the
loss to the entries it returns. Everything else is the shared loop (`neurofit.pipelines.loop`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..analysis.dynamics import co_bps
from ..batches import model_inputs
from ..loop import EarlyStopping, StepResult, fit
from ..training import RunContext, TrainResult

__all__ = ["predict_spikes", "train_latent_poisson", "validation_co_bps"]


def predict_spikes(model: nn.Module, loader, device) -> dict[str, np.ndarray]:
    """Rates, latents and spikes of one loader in its order: ``rates`` / ``spikes`` (n, T, N), ``latents`` (n, T, L)."""
    parts: dict[str, list] = {"rates": [], "latents": [], "spikes": []}
    was = model.training
    model.to(device).eval()
    try:
        with torch.no_grad():
            for batch in loader:
                inputs, extra = model_inputs(batch, device)
                rates, latents = model.run(inputs, extra["encod_data"])
                parts["rates"].append(rates.double().cpu().numpy())
                parts["latents"].append(latents.double().cpu().numpy())
                parts["spikes"].append(batch["responses"].double().numpy())
    finally:
        model.train(was)
    return {k: np.concatenate(v) for k, v in parts.items()}


def validation_co_bps(model: nn.Module, data, device) -> float:
    """co-bps of the held-out neurons on the validation tier."""
    out = predict_spikes(model, data.loaders["validation"]["all"], device)
    return co_bps(out["rates"], out["spikes"], int(data.info.extra["n_heldin"]))


def train_latent_poisson(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    max_epochs: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    patience: int = 5,
    tolerance: float = 1e-4,
    lr_decay_factor: float = 0.3,
    lr_decay_steps: int = 1,
    min_epochs: int = 0,
) -> TrainResult:
    """Fits a latent model (`neurofit.models.latent_models`) by Poisson NLL, early-stopping on co-bps.

    Args:
        model: called as ``model(inputs, session, encod_data=...)`` -> rates (B, T, N).
        data: a bundle from ``neurofit.ctd_spikes`` or ``neurofit.nwb_spikes`` (``extra['n_heldin']``).
        seed, context: as every trainer.
        max_epochs, lr, weight_decay, grad_clip: Adam and clipping.
        patience, tolerance, lr_decay_factor, lr_decay_steps, min_epochs: early stopping.

    Returns:
        ``TrainResult`` with the best validation co-bps; ``train_loss`` is the Poisson NLL per
        (trial, step) summed over neurons, without the regularizer.
    """
    if "n_heldin" not in data.info.extra:
        raise ValueError("neurofit.latent_poisson needs held-in / held-out neurons (DataInfo.extra['n_heldin'])")
    regularizer = getattr(model, "regularizer", None)

    def step(model: nn.Module, session: str, batch) -> StepResult:
        inputs, extra = model_inputs(batch, context.device)
        rates = model(inputs, session, **extra).float()
        spikes = batch["responses"].to(context.device).float()
        nll = nn.functional.poisson_nll_loss(rates, spikes, log_input=False, full=False, reduction="none")
        weights = getattr(model, "loss_weights", lambda: None)()
        if weights is not None:
            nll = nll * weights * (weights.numel() / weights.sum().clamp(min=1.0))
        rows = spikes.shape[0] * spikes.shape[1]
        loss = nll.sum() / rows
        total = loss.item() * rows
        if regularizer is not None:
            loss = loss + regularizer(session)
        return StepResult(loss=loss, total=total, count=rows)

    config = {"max_epochs": max_epochs, "lr": lr, "weight_decay": weight_decay, "grad_clip": grad_clip,
              "patience": patience, "tolerance": tolerance, "lr_decay_factor": lr_decay_factor,
              "lr_decay_steps": lr_decay_steps, "min_epochs": min_epochs}
    return fit(
        model, data, seed, context, trainer="train_latent_poisson", config=config, step=step,
        validate=lambda m: validation_co_bps(m, data, context.device),
        optimizer=lambda parameters: torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay),
        stopping=EarlyStopping(patience=patience, tolerance=tolerance, lr_decay_factor=lr_decay_factor,
                               lr_decay_steps=lr_decay_steps, min_epochs=min_epochs),
        max_epochs=max_epochs, grad_clip=grad_clip,
    )

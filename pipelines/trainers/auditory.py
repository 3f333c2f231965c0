"""Trainers of auditory encoding models: gradient descent on the shared loop, and closed-form ridge.

``neurofit.auditory`` fits any model of `neurofit.models.auditory` (or any model of spectrogram
data) with a Poisson or an MSE loss (MSE for membrane potentials, as deepSTRF's current fitter
does for every dataset), AdamW weight decay and early stopping on the validation CCnorm.

``neurofit.ridge_strf`` is the fast baseline: the linear STRF of every neuron in closed form,
XᵀX eigendecomposed once per session, along a path of penalties λ; each neuron keeps the λ with
the best validation CCnorm. One "epoch" is one λ of the path, checkpointed, so it resumes and
reports like the loop's trainers.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Mapping

import numpy as np
import torch
from torch import nn

from ..analysis import prediction
from ..analysis.strf import lagged_design, ridge_path
from ..batches import forward
from ..evaluation import predict
from ..loop import EarlyStopping, StepResult, fit
from ..performance import equal_repeats
from ..seeding import set_seed
from ..training import RunContext, TrainResult

__all__ = ["per_neuron_cc_norm", "train_auditory", "train_ridge_strf", "validation_cc_norm"]


def per_neuron_cc_norm(responses: np.ndarray, predictions: np.ndarray, stimulus_id: np.ndarray) -> np.ndarray:
    """CCnorm per neuron (Schoppe) of rows labelled by stimulus; single-trial r without repeats.

    Args:
        responses, predictions: (n_rows, N); stimulus_id: (n_rows,) (repeats share it).

    Returns:
        (N,) CCnorm; NaN where the signal power is <= 0. When no stimulus is repeated (e.g.
        NAT4 estimation sounds) the noise ceiling is unknown and Pearson r is returned instead.
    """
    try:
        repeats, averaged = equal_repeats(responses, predictions, stimulus_id)
    except ValueError:
        return prediction.correlation(responses, predictions)
    return prediction.cc_norm(repeats, averaged)


def validation_cc_norm(model: nn.Module, loaders_by_session: Mapping, device, burn_in: int = 0) -> float:
    """Mean validation CCnorm over the neurons of all sessions that have signal power (0 if none)."""
    values = [per_neuron_cc_norm(a["responses"], a["predictions"], a["stimulus_id"])
              for a in predict(model, loaders_by_session, device, burn_in).values()]
    joined = np.concatenate(values)
    finite = joined[np.isfinite(joined)]
    return float(finite.mean()) if finite.size else 0.0


def train_auditory(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    loss: Literal["poisson", "mse"] = "mse",
    max_epochs: int = 200,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    patience: int = 10,
    tolerance: float = 1e-4,
    lr_decay_factor: float = 0.3,
    lr_decay_steps: int = 0,
    grad_clip: float | None = None,
    steps_per_epoch: int | None = None,
) -> TrainResult:
    """Fits an auditory model with AdamW, early-stopping on the mean validation CCnorm.

    deepSTRF's current fitter is ``loss="mse"``, AdamW (lr 1e-3, weight decay 1e-4) and a
    patience of 10 on the validation CCnorm; ``lr_decay_steps > 0`` adds learning-rate decays
    back to the best weights before stopping. Poisson needs positive outputs (the LN family's
    softplus); MSE suits any output, e.g. the linear model or membrane potentials (Wehr).

    Args:
        model: called as ``model(inputs, session)`` -> (batch, time, n_neurons).
        data: a spectrogram `DataBundle` with train and validation loaders.
        seed: passed to ``set_seed`` before anything random happens.
        context: device, reports, checkpoints and stop requests.
        loss: "poisson" (NLL of spike counts, summed over neurons, mean over bins) or "mse"
            (squared error summed over neurons, mean over bins).
        max_epochs: upper bound on epochs (0: the untrained model and its score).
        lr: AdamW learning rate.
        weight_decay: AdamW's decoupled weight decay.
        patience, tolerance, lr_decay_factor, lr_decay_steps: early stopping
            (`neurofit.pipelines.loop.EarlyStopping`).
        grad_clip: maximum gradient norm (None: no clipping).
        steps_per_epoch: an epoch is this many batches (None: one pass over the train trials).

    Returns:
        ``TrainResult`` with the best validation CCnorm and one history row per epoch.
    """
    if loss not in ("poisson", "mse"):
        raise ValueError(f"loss {loss!r}: use 'poisson' or 'mse'")
    burn_in = data.info.burn_in

    def step(model: nn.Module, session: str, batch) -> StepResult:
        output, targets = forward(model, batch, session, context.device, burn_in)
        output = output.float()
        if loss == "poisson":
            total = nn.functional.poisson_nll_loss(output, targets, log_input=False, full=False, reduction="sum")
        else:
            total = ((output - targets) ** 2).sum()
        return StepResult(loss=total / len(targets), total=total.item(), count=len(targets))

    config = {
        "loss": loss, "max_epochs": max_epochs, "lr": lr, "weight_decay": weight_decay, "patience": patience,
        "tolerance": tolerance, "lr_decay_factor": lr_decay_factor, "lr_decay_steps": lr_decay_steps,
        "grad_clip": grad_clip, "steps_per_epoch": steps_per_epoch,
    }
    return fit(
        model, data, seed, context, trainer="train_auditory", config=config, step=step,
        validate=lambda m: validation_cc_norm(m, data.loaders["validation"], context.device, burn_in),
        optimizer=lambda parameters: torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay),
        stopping=EarlyStopping(patience=patience, tolerance=tolerance, lr_decay_factor=lr_decay_factor,
                               lr_decay_steps=lr_decay_steps),
        max_epochs=max_epochs, grad_clip=grad_clip, steps_per_epoch=steps_per_epoch,
    )


# --------------------------------------------------------------------------------------------
# closed-form ridge
# --------------------------------------------------------------------------------------------

_RIDGE_FORMAT = "neurofit.ridge_strf/1"


def _tier_arrays(model, loader, device) -> dict[str, np.ndarray]:
    """Front-end features (n_trials, T, C, F), responses (n_trials, T, N), ids, of one tier.

    Trials are sorted by (trial, window start), so the sums of a fit never depend on the
    loader's shuffled order (exact resume).
    """
    parts: dict[str, list] = {"features": [], "responses": [], "trial": [], "start": [], "clip": []}
    with torch.no_grad():
        for batch in loader:
            features = model.features(batch["inputs"].to(device)).double().cpu().numpy()  # (B, C, F, T)
            parts["features"].append(features.transpose(0, 3, 1, 2))
            parts["responses"].append(batch["responses"].double().numpy())
            parts["trial"].append(batch["trial_id"].numpy())
            parts["start"].append(batch["start"].numpy() if "start" in batch else np.zeros(len(features), np.int64))
            parts["clip"].append(batch["stimulus_id"].numpy())
    lengths = {a.shape[1] for a in parts["features"]}
    if len(lengths) != 1:
        raise ValueError(f"ridge_strf needs trials of one length per tier, got lengths {sorted(lengths)}")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.lexsort((arrays["start"], arrays["trial"]))
    return {k: v[order] for k, v in arrays.items()}


def _frame_ids(clip: np.ndarray, n_bins: int, burn_in: int) -> np.ndarray:
    """Stimulus id of every scored row: one per (clip, bin) pair, as `predict` numbers them."""
    pairs = np.stack([np.repeat(clip, n_bins - burn_in), np.tile(np.arange(burn_in, n_bins), len(clip))], 1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)


def train_ridge_strf(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    lambdas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
) -> TrainResult:
    """Sets a linear STRF model's weights by ridge regression, λ per neuron on validation CCnorm.

    For every session the train design (lags 0..n_lags-1 of the model's front-end features) is
    eigendecomposed once; epoch k evaluates ``lambdas[k]`` for all neurons at once, and each
    neuron keeps the λ of its best validation CCnorm so far (single-trial r without repeats).
    The front end (AdapTrans, if any) stays at its initial parameters.

    Args:
        model: from ``neurofit.strf_linear`` (or ``neurofit.strf_ln``, whose kernel is then a
            linear fit under its nonlinearity: a crude initialisation, not a fit).
        data: a spectrogram `DataBundle`.
        seed: seeds the global RNGs (the loaders draw from them).
        context: device, reports, checkpoints (one per λ) and stop requests.
        lambdas: penalties, in the order they are tried (>= 0).

    Returns:
        ``TrainResult`` with the mean validation CCnorm of the per-neuron choice, one history
        row per λ (``train_loss`` = train MSE per bin and neuron at that λ) and the model.
    """
    from neurofit.models.auditory import AuditoryModel, LinearSTRF

    if not isinstance(model, AuditoryModel) or not all(isinstance(n, LinearSTRF) for n in model.networks.values()):
        raise TypeError("neurofit.ridge_strf fits linear STRF models: build them with neurofit.strf_linear")
    if not lambdas or any(not math.isfinite(v) or v < 0 for v in lambdas):
        raise ValueError(f"lambdas must be finite numbers >= 0, got {lambdas!r}")
    config = {"lambdas": [float(v) for v in lambdas]}
    set_seed(seed)
    model.to(context.device).eval()
    burn_in = data.info.burn_in
    started = time.perf_counter()
    fits = {}
    for session, network in model.networks.items():
        n_lags = network.strf_layer.n_lags
        train = _tier_arrays(model, data.loaders["train"][session], context.device)
        valid = _tier_arrays(model, data.loaders["validation"][session], context.device)
        weights, intercepts = ridge_path(lagged_design(train["features"], n_lags),
                                         train["responses"].reshape(-1, train["responses"].shape[-1]), lambdas)
        fits[session] = (network, n_lags, train, valid, weights, intercepts)

    state = context.load_checkpoint()
    history: list[dict] = []
    best: dict[str, np.ndarray] = {}
    if state is not None and state.get("format") == _RIDGE_FORMAT and state.get("config") == config:
        history = list(state["history"])
        best = {s: np.asarray(state["best"][s]) for s in fits}
    elif state is not None:
        context.discard_checkpoint("not a neurofit.ridge_strf checkpoint with these lambdas")
    for k in range(len(history), len(lambdas)):
        scores, errors = [], []
        for session, (_, n_lags, train, valid, weights, intercepts) in fits.items():
            cc, mse = _score_lambda(weights[k], intercepts[k], n_lags, train, valid, burn_in)
            previous = best.get(session, np.full((2, len(cc)), -np.inf))
            better = np.nan_to_num(cc, nan=-np.inf) > previous[1]
            best[session] = np.stack([np.where(better, k, previous[0]), np.where(better, cc, previous[1])])
            scores.append(cc)
            errors.append(mse)
        joined = np.concatenate(scores)
        row = {"epoch": k + 1, "train_loss": float(np.mean(errors)),
               "validation_score": float(np.nanmean(joined)) if np.isfinite(joined).any() else 0.0,
               "seconds": time.perf_counter() - started}
        history.append(row)
        context.report_epoch(row)
        context.save_checkpoint({"format": _RIDGE_FORMAT, "config": config, "history": history,
                                 "best": {s: b.tolist() for s, b in best.items()}})
        context.check_stop(k + 1)
        started = time.perf_counter()
    chosen = []
    for session, (network, n_lags, _, _, weights, intercepts) in fits.items():
        index = np.maximum(best[session][0], 0).astype(int)
        neurons = np.arange(len(index))
        _set_strf(network, weights[index, :, neurons], intercepts[index, neurons], n_lags)
        values = best[session][1]
        chosen.append(np.where(np.isfinite(values), values, np.nan))
    joined = np.concatenate(chosen)
    score = float(np.nanmean(joined)) if np.isfinite(joined).any() else 0.0
    return TrainResult(score=score, history=history, model=model)


def _score_lambda(w, b, n_lags, train, valid, burn_in) -> tuple[np.ndarray, float]:
    """Validation CCnorm per neuron and train MSE of one λ's weights (n_features, N)."""
    n, t = train["features"].shape[:2]
    train_rows = train["responses"].reshape(n * t, -1)
    mse = float(((lagged_design(train["features"], n_lags) @ w + b - train_rows) ** 2).mean())
    nv, tv = valid["features"].shape[:2]
    predicted = (lagged_design(valid["features"], n_lags) @ w + b).reshape(nv, tv, -1)[:, burn_in:]
    observed = valid["responses"][:, burn_in:]
    ids = _frame_ids(valid["clip"], tv, burn_in)
    cc = per_neuron_cc_norm(observed.reshape(-1, observed.shape[-1]), predicted.reshape(-1, predicted.shape[-1]), ids)
    return cc, mse


def _set_strf(network, w: np.ndarray, b: np.ndarray, n_lags: int) -> None:
    """Write ridge weights (N, L·C·F in (lag, channel, band) order) into a LinearSTRF's conv."""
    conv = network.strf_layer.conv
    n, c, f, _ = conv.weight.shape
    kernel = torch.as_tensor(w.reshape(n, n_lags, c, f), dtype=conv.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(kernel.permute(0, 2, 3, 1).flip(-1))  # conv taps run oldest -> present
        conv.bias.copy_(torch.as_tensor(b, dtype=conv.bias.dtype))

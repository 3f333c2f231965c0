"""Poisson-loss trainer with early stopping on validation correlation (Sensorium-style)."""

from __future__ import annotations

import copy
import math
import random
import time
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..analysis.prediction import correlation
from ..batches import forward
from ..evaluation import predict
from ..seeding import set_seed
from ..training import TrainingContext, TrainResult

__all__ = ["train_poisson", "validation_correlation", "CHECKPOINT_FORMAT"]

#: Version of the checkpoint layout written by `train_poisson`; bump it when the layout changes.
CHECKPOINT_FORMAT = 1
_TRAINER = "train_poisson"
_CHECKPOINT_KEYS = frozenset({
    "format", "trainer", "config", "epoch", "finished", "model", "optimizer", "best_state",
    "best_score", "stalled", "decays", "history", "rng",
})


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
    grad_clip: float | None = None,
    amp: bool = True,
) -> TrainResult:
    """Fits ``model`` with a Poisson loss and Adam, early-stopping on validation correlation.

    Works for image and video data alike (`neurofit.pipelines.batches`). Each epoch visits every
    train batch of every session once (sessions interleaved batch by batch). The loss of a batch
    is the Poisson negative log-likelihood summed over neurons and averaged over rows (trials for
    images; frames after the data's ``burn_in`` for videos), plus ``model.regularizer(session)``
    if the model has one. With ``grad_clip`` the gradient norm is clipped to it before each step.
    With ``amp`` on a CUDA device the forward pass runs under bfloat16 autocast (the loss in
    float32; bfloat16 needs no loss scaling); on the CPU ``amp`` changes nothing. After each epoch the
    validation score (single-trial correlation, mean over all neurons) is computed in eval mode.
    When it has not improved by more than ``tolerance`` for ``patience`` epochs, the best weights
    are restored and the learning rate is multiplied by ``lr_decay_factor``; after
    ``lr_decay_steps`` such decays the next stall ends training.

    Checkpoints and resumption: with ``context.checkpoint`` set, the end of every epoch (after
    that epoch's early-stopping bookkeeping, including a decay and weight restore) saves a
    checkpoint, the last epoch's included, and then ``context.check_stop(epoch)`` may raise
    `Preempted` (not after the last epoch: a finished training returns its result). The
    checkpoint is a dict of CPU tensors and plain Python values, readable with
    ``torch.load(weights_only=True)``:

    * ``format`` (`CHECKPOINT_FORMAT`), ``trainer`` (``"train_poisson"``) and ``config`` (``seed``
      and every hyperparameter above): a checkpoint that differs in any of them is refused;
    * ``epoch`` (last finished epoch, from 1) and ``finished`` (the stopping rule fired or
      ``max_epochs`` was reached);
    * ``model`` and ``optimizer`` (state dicts; the optimizer's holds the current, possibly
      decayed, learning rates), ``best_state``, ``best_score``, ``stalled``, ``decays``;
    * ``history``: the rows of epochs 1..``epoch``;
    * ``rng``: the global RNG states: ``torch`` (CPU), ``cuda`` (one per device, empty unless
      CUDA was initialised), ``python`` (``random``) and ``numpy`` (legacy global RNG), the
      arrays as int64 tensors.

    If ``context.load_checkpoint()`` returns a checkpoint (read after ``set_seed`` and building
    the optimizer), ``model`` must be freshly built the same way as for the interrupted run (same
    builder, config and seed; only its architecture is checked). Training then continues at
    epoch ``epoch + 1`` without re-running or re-reporting the saved epochs, and the returned
    model, score and history (all epochs, the saved rows as they were) equal those of an
    uninterrupted run bit for bit on the CPU, under the conditions of
    ``neurofit.pipelines.seeding`` (same versions, machine type and thread count; on a GPU,
    training is not bitwise repeatable anyway). A finished checkpoint trains no further: the
    best weights and the saved history are returned at once. Loaders must draw their
    randomness from the global RNGs (as the synthetic loaders do), not from private generators.

    Args:
        model: called as ``model(inputs, session)`` -> positive rates (batch, n_neurons).
        data: a ``DataBundle`` with "train" and "validation" loaders.
        seed: passed to ``set_seed`` before anything random happens.
        context: ``device`` to train on; ``report_epoch`` receives each history row;
            ``checkpoint`` and ``stop_requested`` as described above.
        max_epochs: upper bound on epochs.
        lr: initial Adam learning rate.
        patience: epochs without improvement before a decay or stop.
        tolerance: minimum improvement of the validation score that counts.
        lr_decay_factor: learning-rate multiplier at each decay.
        lr_decay_steps: number of decays before stopping (0: stop at the first stall).
        grad_clip: maximum gradient norm (None: no clipping).
        amp: mixed precision on CUDA devices.

    Returns:
        ``TrainResult`` with the best validation score, one history row per epoch (``epoch``
        from 1, ``train_loss`` = mean Poisson NLL per row (trial or scored frame) without the regularizer,
        ``validation_score``, ``seconds``) and the model holding the best weights, in eval mode
        and on ``context.device``. If no epoch beats the initial weights, those are returned.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite.
        ValueError: if the checkpoint is not a format-`CHECKPOINT_FORMAT` checkpoint of this
            trainer with this seed and these hyperparameters, or does not fit ``model``.
        Preempted: if a stop was requested; the epoch's checkpoint is saved first.
    """
    if max_epochs < 1 or patience < 1 or lr_decay_steps < 0:
        raise ValueError("max_epochs and patience must be >= 1 and lr_decay_steps >= 0")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    set_seed(seed)
    device = torch.device(context.device)
    model.to(device)
    train_loaders = data.loaders["train"]
    validation_loaders = data.loaders["validation"]
    burn_in = int(data.info.extra.get("burn_in", 0))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")
    regularizer = getattr(model, "regularizer", None)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    config = {
        "seed": int(seed), "max_epochs": max_epochs, "lr": lr, "patience": patience,
        "tolerance": tolerance, "lr_decay_factor": lr_decay_factor,
        "lr_decay_steps": lr_decay_steps, "grad_clip": grad_clip, "amp": amp,
    }

    checkpoint = context.load_checkpoint()
    if checkpoint is None:
        best_score = validation_correlation(model, validation_loaders, device, burn_in)
        best_state = copy.deepcopy(model.state_dict())
        history: list[dict[str, Any]] = []
        stalled = 0
        decays = 0
        done = 0
        finished = False
    else:
        _check_checkpoint(checkpoint, config)
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])  # also the decayed learning rates
        except (RuntimeError, ValueError, KeyError) as error:
            raise ValueError(
                f"incompatible {_TRAINER} checkpoint: it does not fit this model ({error})"
            ) from error
        best_state = checkpoint["best_state"]
        best_score = float(checkpoint["best_score"])
        history = [dict(row) for row in checkpoint["history"]]
        stalled = int(checkpoint["stalled"])
        decays = int(checkpoint["decays"])
        done = int(checkpoint["epoch"])
        finished = bool(checkpoint["finished"])
        # Last, so that nothing above (e.g. a validation pass) draws from the restored streams.
        _set_rng_state(checkpoint["rng"])

    # A checkpoint of a finished training (stopping rule or max_epochs) trains no further.
    for epoch in range(done + 1, max_epochs + 1) if not finished else ():
        start = time.perf_counter()
        model.train()
        loss_sum = 0.0
        n_trials = 0
        for session, batch in _interleaved(train_loaders):
            with autocast:
                output, targets = forward(model, batch, session, device, burn_in)
            nll = nn.functional.poisson_nll_loss(
                output.float(), targets, log_input=False, full=False, reduction="sum"
            )
            loss = nll / len(targets)
            if regularizer is not None:
                loss = loss + regularizer(session)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch} ({session})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            loss_sum += nll.item()
            n_trials += len(targets)

        with autocast:
            score = validation_correlation(model, validation_loaders, device, burn_in)
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
        else:
            stalled += 1
            if stalled >= patience:
                if decays >= lr_decay_steps:
                    finished = True
                else:
                    # Continuing from the best weights with a smaller step refines that optimum
                    # instead of the worse point the stalled epochs drifted to.
                    model.load_state_dict(best_state)
                    for group in optimizer.param_groups:
                        group["lr"] *= lr_decay_factor
                    decays += 1
                    stalled = 0
        finished = finished or epoch == max_epochs

        if context.checkpoint is not None:
            context.save_checkpoint({
                "format": CHECKPOINT_FORMAT,
                "trainer": _TRAINER,
                "config": dict(config),
                "epoch": epoch,
                "finished": finished,
                "model": _snapshot(model.state_dict()),
                "optimizer": _snapshot(optimizer.state_dict()),
                "best_state": _snapshot(best_state),
                "best_score": float(best_score),
                "stalled": stalled,
                "decays": decays,
                "history": _snapshot(history),
                "rng": _get_rng_state(),
            })
        if finished:
            break
        context.check_stop(epoch)

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(score=float(best_score), history=history, model=model)


def _snapshot(value: Any) -> Any:
    """A copy of nested dicts/lists/tuples whose tensors are detached CPU clones.

    The checkpoint must not alias live tensors (parameters, Adam moments) that later steps change
    in place, and CPU tensors load anywhere.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_snapshot(v) for v in value)
    return value


def _get_rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain values (``torch.load(weights_only=True)``-safe)."""
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        # Only when CUDA is initialised: querying it would otherwise start a context on every GPU,
        # and an uninitialised CUDA RNG is in the state ``set_seed`` leaves on resume anyway.
        "cuda": (
            [s.cpu() for s in torch.cuda.get_rng_state_all()]
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else []
        ),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `_get_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state["cuda"])
    if cuda and torch.cuda.is_available():
        for index, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), index)
    python = state["python"]
    random.setstate((
        python["version"], tuple(int(x) for x in python["internal"].tolist()), python["gauss_next"]
    ))
    numpy = state["numpy"]
    np.random.set_state((
        numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
        numpy["has_gauss"], numpy["cached_gaussian"],
    ))


def _check_checkpoint(state: Any, config: Mapping[str, Any]) -> None:
    """Raises ValueError unless ``state`` is a checkpoint of this trainer, layout and config."""
    if not isinstance(state, Mapping):
        raise ValueError(f"incompatible checkpoint: expected a dict, got {type(state).__name__}")
    if state.get("trainer") != _TRAINER or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"incompatible checkpoint: written by trainer {state.get('trainer')!r} in format "
            f"{state.get('format')!r}; {_TRAINER} reads format {CHECKPOINT_FORMAT}. Delete the "
            "checkpoint to restart the training from epoch 0."
        )
    missing = sorted(_CHECKPOINT_KEYS - set(state))
    if missing:
        raise ValueError(f"incompatible {_TRAINER} checkpoint: missing keys {missing}")
    saved = dict(state["config"])
    if saved != dict(config):
        differing = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        raise ValueError(
            f"incompatible {_TRAINER} checkpoint: it was written with other settings "
            + ", ".join(f"{k}={saved.get(k)!r} (now {config.get(k)!r})" for k in differing)
        )

"""The one training loop every neurofit trainer runs on.

A trainer supplies only what is specific to it, its loss (a `Step`) and its validation score,
and calls `fit`. The loop owns everything else, the same way for every trainer:

- epochs: a full pass over the train loaders, or the first ``steps_per_epoch`` batches of a
  fresh (reshuffled) pass when epochs are long; one history row per epoch, reported through
  ``context.report_epoch``;
- early stopping with patience, learning-rate decay back to the best weights, a minimum number
  of epochs and restore-best (`EarlyStopping`, trainer-agnostic; neuralpredictors'
  ``early_stopping`` has the same shape);
- the checkpoint envelope: model, optimizer, scheduler, early-stopping state, history and every
  global random generator, saved after each epoch (and every ``context.step_interval`` steps when a
  stop is requested mid-epoch) with exact resume: an interrupted and resumed run returns the same
  weights, score and history as an uninterrupted one, bit for bit on the CPU;
- preemption: after saving, ``context.check_stop`` raises `Preempted` when the worker was asked
  to stop;
- NaN/inf losses stop training with an error naming the epoch; gradient clipping; bfloat16
  autocast on CUDA devices (``amp``).

Loaders must draw their randomness from the global RNGs (as neurofit's loaders do), so that the
saved generator states reproduce the batches.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from .seeding import get_rng_state, set_rng_state, set_seed
from .training import RunContext, TrainResult

__all__ = [
    "CHECKPOINT_FORMAT",
    "EarlyStopping",
    "IncompatibleCheckpoint",
    "StepResult",
    "fit",
    "interleaved",
]

#: Version of the checkpoint envelope written by `fit`; bump it when the layout changes.
CHECKPOINT_FORMAT = 2
_ENVELOPE_KEYS = frozenset({
    "format", "trainer", "config", "epoch", "finished", "step", "epoch_loss", "epoch_rng", "fetch_states",
    "model", "optimizer", "scheduler", "stopping", "history", "last_score", "rng",
})


class IncompatibleCheckpoint(ValueError):
    """A checkpoint that this trainer, with these settings and this model, cannot resume."""


@dataclass
class StepResult:
    """What a trainer's step returns for one batch.

    Attributes:
        loss: the scalar tensor to minimise (``backward`` is called on it), regularisers included.
        total: the batch's summed loss for the history, e.g. the NLL summed over rows.
        count: how many rows ``total`` sums over; the epoch's ``train_loss`` is the sum of
            totals divided by the sum of counts.
    """

    loss: torch.Tensor
    total: float
    count: int


#: ``step(model, session, batch) -> StepResult``: forward pass and loss of one batch.
Step = Callable[[nn.Module, str, Mapping[str, torch.Tensor]], StepResult]


@dataclass
class EarlyStopping:
    """Patience, learning-rate decay, a minimum number of epochs and restore-best, for any trainer.

    After each epoch `update` compares the validation score with the best so far. When it has
    not improved by more than ``tolerance`` for ``patience`` epochs, the best weights are
    restored and every learning rate is multiplied by ``lr_decay_factor``; after
    ``lr_decay_steps`` such decays the next stall ends training, but never before
    ``min_epochs``. DeepDraw's schedule (divide by 4 after 5 stalled epochs, stop after the second
    decay) is ``EarlyStopping(patience=5, lr_decay_factor=0.25, lr_decay_steps=2)``.

    Attributes:
        patience: epochs without improvement before a decay or stop (>= 1).
        tolerance: improvement that counts (in score units).
        lr_decay_factor: learning-rate multiplier at each decay.
        lr_decay_steps: decays before a stall stops training (0: stop at the first).
        min_epochs: training never stops before this epoch.
        maximize: True when a higher score is better (correlation, accuracy).
        best_score, best_state, stalled, decays: the running state (saved in checkpoints).
    """

    patience: int = 3
    tolerance: float = 1e-4
    lr_decay_factor: float = 0.3
    lr_decay_steps: int = 1
    min_epochs: int = 0
    maximize: bool = True
    best_score: float = math.nan
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    stalled: int = 0
    decays: int = 0

    def __post_init__(self):
        if self.patience < 1 or self.lr_decay_steps < 0 or self.min_epochs < 0:
            raise ValueError("patience must be >= 1, lr_decay_steps and min_epochs >= 0")

    def start(self, model: nn.Module, score: float) -> None:
        """Record the initial weights and their score as the best so far."""
        self.best_score = float(score)
        self.best_state = copy.deepcopy(model.state_dict())

    def improved(self, score: float) -> bool:
        if math.isnan(self.best_score):
            return True
        if self.maximize:
            return score > self.best_score + self.tolerance
        return score < self.best_score - self.tolerance

    def update(self, epoch: int, score: float, model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        """Account for one finished epoch; returns True when training should stop."""
        if self.improved(score):
            self.best_score = float(score)
            self.best_state = copy.deepcopy(model.state_dict())
            self.stalled = 0
            return False
        self.stalled += 1
        if self.stalled < self.patience:
            return False
        if self.decays >= self.lr_decay_steps:
            return epoch >= self.min_epochs
        # Continuing from the best weights with a smaller step refines that optimum instead of
        # the worse point the stalled epochs drifted to.
        model.load_state_dict(self.best_state)
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_decay_factor
        self.decays += 1
        self.stalled = 0
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": float(self.best_score), "best_state": _snapshot(self.best_state),
            "stalled": int(self.stalled), "decays": int(self.decays),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.best_state = state["best_state"]
        self.stalled = int(state["stalled"])
        self.decays = int(state["decays"])


def interleaved(loaders: Mapping[str, Iterable]) -> Iterator[tuple[str, Any]]:
    """(session, batch) round-robin over sessions until every loader is exhausted.

    Alternating sessions keeps a shared core from drifting towards whichever session came last.
    """
    iterators = {session: iter(loader) for session, loader in loaders.items()}
    while iterators:
        for session in list(iterators):
            try:
                yield session, next(iterators[session])
            except StopIteration:
                del iterators[session]


def _require_global_randomness(loaders_by_session) -> None:
    """Refuse train loaders with a generator of their own: a resume could not replay their order."""
    for session, loader in loaders_by_session.items():
        sampler = getattr(loader, "sampler", None)
        if getattr(loader, "generator", None) is not None or getattr(sampler, "generator", None) is not None:
            raise ValueError(
                f"the train loader of session {session!r} shuffles with a torch.Generator of its own, "
                "which checkpoints cannot save: build it without generator= (it then draws from "
                "torch's global generator, which `set_seed` seeds and the loop saves)"
            )


def fit(
    model: nn.Module,
    data,
    seed: int,
    context: RunContext,
    *,
    trainer: str,
    config: Mapping[str, Any],
    step: Step,
    validate: Callable[[nn.Module], float],
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    max_epochs: int,
    stopping: EarlyStopping | None = None,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    grad_clip: float | None = None,
    amp: bool = False,
    steps_per_epoch: int | None = None,
    batches: Callable[[], Iterator[tuple[str, Any]]] | None = None,
) -> TrainResult:
    """Trains ``model`` epoch by epoch with checkpoints, exact resume, preemption and early stopping.

    Args:
        model: freshly built by the model builder (on a resume: built the same way again).
        data: the `DataBundle`; its ``loaders["train"]`` feed the steps unless ``batches`` is given.
        seed: passed to `set_seed` before anything random happens.
        context: device, epoch reports, checkpointer and stop request (`RunContext`).
        trainer: the trainer's name, stored in checkpoints (another trainer's are refused).
        config: the trainer's hyperparameters; a checkpoint written with others is refused.
        step: forward pass and loss of one batch (`Step`).
        validate: the validation score of the model (higher is better unless
            ``stopping.maximize`` is False); called in eval mode, without gradients.
        optimizer: builds the optimizer from the model's parameters (after the model is moved
            to ``context.device``).
        max_epochs: upper bound on epochs; 0 returns the untrained model with its score.
        stopping: early stopping; None trains ``max_epochs`` epochs and keeps the last weights.
        scheduler: builds a learning-rate scheduler, stepped after every epoch
            (``ReduceLROnPlateau`` receives the validation score).
        grad_clip: maximum gradient norm (None: no clipping).
        amp: bfloat16 autocast for steps and validation on CUDA devices (no effect on the CPU).
        steps_per_epoch: an epoch is the first this many batches of a fresh pass (None: all).
        batches: makes one pass of (session, batch) pairs (default: `interleaved` train loaders).

    Returns:
        `TrainResult`: the best (with ``stopping``) or last validation score, one history row
        per epoch (``epoch`` from 1, ``train_loss``, ``validation_score``, ``seconds``) and the
        model with the weights that score belongs to, in eval mode on ``context.device``.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
        IncompatibleCheckpoint: the checkpoint is not this loop's format, trainer and config, or
            does not fit the model, and the checkpointer cannot discard it (with a ``discard``
            method, as the database one has, it is discarded and training starts from scratch).
        Preempted: a stop was requested; the checkpoint is saved first.
    """
    if max_epochs < 0 or (steps_per_epoch is not None and steps_per_epoch < 1):
        raise ValueError("max_epochs must be >= 0 and steps_per_epoch >= 1 (or None)")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive number or None, got {grad_clip!r}")
    if batches is None:
        _require_global_randomness(data.loaders["train"])
    set_seed(seed)
    device = torch.device(context.device)
    model.to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")
    batches = batches or (lambda: interleaved(data.loaders["train"]))

    def new_run() -> _Run:
        opt = optimizer(model.parameters())
        sched = scheduler(opt) if scheduler is not None else None
        return _Run(model, opt, sched, stopping, trainer, {"seed": int(seed), **dict(config)})

    def score_now() -> float:
        model.eval()
        with torch.no_grad(), autocast:
            return float(validate(model))

    run = new_run()
    saved = context.load_checkpoint()
    if saved is not None:
        fresh = copy.deepcopy(model.state_dict())
        try:
            run.restore(saved)
        except IncompatibleCheckpoint as error:
            if not context.discard_checkpoint(str(error)):
                raise
            # load_state_dict copies the tensors that fit before it fails: start truly afresh.
            model.load_state_dict(fresh)
            run, saved = new_run(), None
    if saved is None:
        run.last_score = score_now() if stopping is not None or max_epochs == 0 else math.nan
        if stopping is not None:
            stopping.start(model, run.last_score)
    opt = run.optimizer

    while not run.finished and run.epoch < max_epochs:
        epoch = run.epoch + 1
        started = time.perf_counter()
        model.train()
        for session, batch in run.resume_batches(batches, steps_per_epoch, track=context.step_interval > 0):
            with autocast:
                result = step(model, session, batch)
            if not torch.isfinite(result.loss):
                raise FloatingPointError(f"loss became {result.loss.item()} in epoch {epoch} ({session})")
            opt.zero_grad(set_to_none=True)
            result.loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            run.account(result)
            if context.step_interval and run.step % context.step_interval == 0 and context.stop_pending():
                context.save_checkpoint(run.envelope(finished=False, mid_epoch=True))
                context.check_stop(epoch)
        score = score_now()
        row = {
            "epoch": epoch,
            "train_loss": run.epoch_total / max(run.epoch_count, 1),
            "validation_score": score,
            "seconds": time.perf_counter() - started,
        }
        run.end_epoch(row, score, max_epochs)
        context.report_epoch(dict(row))
        if context.checkpoint is not None:
            context.save_checkpoint(run.envelope(finished=run.finished))
        if not run.finished:
            context.check_stop(epoch)
    return run.result()


class _Run:
    """The state of one `fit` call between epochs: what a checkpoint holds."""

    def __init__(self, model, optimizer, scheduler, stopping, trainer, config):
        self.model, self.optimizer, self.scheduler, self.stopping = model, optimizer, scheduler, stopping
        self.trainer, self.config = trainer, config
        self.epoch = 0  # last finished epoch
        self.finished = False
        self.history: list[dict[str, Any]] = []
        self.last_score = math.nan
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.step = 0  # steps done in the current epoch
        self.epoch_total, self.epoch_count = 0.0, 0
        self.epoch_rng = None
        self.fetch_states: dict[int, dict[str, Any]] = {}
        self._skip = 0
        self._rng_after_skip = None

    def resume_batches(self, batches, steps_per_epoch, track: bool):
        """This epoch's batches; after a mid-epoch resume, the ones not yet trained on.

        A mid-epoch resume replays the loader from the epoch's start and skips the batches
        already trained on. Loaders may draw from the global RNGs lazily, between steps (a
        shuffling sampler seeds itself on its first batch), so with ``track`` the state before
        every fetch that drew random numbers is kept and set again when that fetch is replayed.
        """
        if self.epoch_rng is None:
            self.epoch_rng = get_rng_state()
        else:
            set_rng_state(self.epoch_rng)
        source = batches()
        index = 0
        while steps_per_epoch is None or index < steps_per_epoch:
            replaying = index < self._skip
            if replaying and index in self.fetch_states:
                set_rng_state(self.fetch_states[index])
            if not replaying and self._rng_after_skip is not None:
                set_rng_state(self._rng_after_skip)
                self._rng_after_skip = None
            before = get_rng_state() if track and not replaying else None
            try:
                item = next(source)
            except StopIteration:
                break
            if before is not None and not _same_rng(before, get_rng_state()):
                self.fetch_states[index] = before
            index += 1
            if not replaying:
                yield item
        if self._rng_after_skip is not None:  # the stop came after the epoch's last step
            set_rng_state(self._rng_after_skip)
            self._rng_after_skip = None

    def account(self, result: StepResult) -> None:
        self.step += 1
        self.epoch_total += float(result.total)
        self.epoch_count += int(result.count)

    def end_epoch(self, row: dict[str, Any], score: float, max_epochs: int) -> None:
        self.epoch = row["epoch"]
        self.history.append(row)
        self.last_score = score
        stop = False
        if self.stopping is not None:
            stop = self.stopping.update(self.epoch, score, self.model, self.optimizer)
        if self.scheduler is not None:
            plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
            self.scheduler.step(score) if plateau else self.scheduler.step()
        self.finished = stop or self.epoch == max_epochs
        self._new_epoch()

    def envelope(self, *, finished: bool, mid_epoch: bool = False) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "trainer": self.trainer,
            "config": dict(self.config),
            "epoch": self.epoch,
            "finished": finished,
            "step": self.step if mid_epoch else 0,
            "epoch_loss": [float(self.epoch_total), int(self.epoch_count)] if mid_epoch else [0.0, 0],
            "epoch_rng": self.epoch_rng if mid_epoch else None,
            "fetch_states": [[i, state] for i, state in self.fetch_states.items()] if mid_epoch else [],
            "model": _snapshot(self.model.state_dict()),
            "optimizer": _snapshot(self.optimizer.state_dict()),
            "scheduler": _snapshot(self.scheduler.state_dict()) if self.scheduler is not None else None,
            "stopping": self.stopping.state_dict() if self.stopping is not None else None,
            "history": _snapshot(self.history),
            "last_score": float(self.last_score),
            "rng": get_rng_state(),
        }

    def restore(self, state: Any) -> None:
        _check_envelope(state, self.trainer, self.config)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])  # also the decayed learning rates
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise IncompatibleCheckpoint(
                f"incompatible {self.trainer} checkpoint: it does not fit this model ({error})"
            ) from error
        if self.stopping is not None:
            self.stopping.load_state_dict(state["stopping"])
        self.epoch = int(state["epoch"])
        self.finished = bool(state["finished"])
        self.history = [dict(row) for row in state["history"]]
        self.last_score = float(state["last_score"])
        if int(state["step"]):
            self.step = self._skip = int(state["step"])
            self.epoch_total, self.epoch_count = float(state["epoch_loss"][0]), int(state["epoch_loss"][1])
            self.epoch_rng, self._rng_after_skip = state["epoch_rng"], state["rng"]
            self.fetch_states = {int(i): fetch for i, fetch in state["fetch_states"]}
        else:
            # Last, so that nothing above draws from the restored streams.
            set_rng_state(state["rng"])

    def result(self) -> TrainResult:
        if self.stopping is not None:
            self.model.load_state_dict(self.stopping.best_state)
            score = self.stopping.best_score
        else:
            score = self.last_score
        self.model.eval()
        return TrainResult(score=float(score), history=self.history, model=self.model)


def _same_rng(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two `get_rng_state` results are the same state (CUDA streams are not compared)."""
    return (
        torch.equal(a["torch"], b["torch"])
        and torch.equal(a["numpy"]["keys"], b["numpy"]["keys"])
        and a["numpy"]["position"] == b["numpy"]["position"]
        and a["numpy"]["has_gauss"] == b["numpy"]["has_gauss"]
        and torch.equal(a["python"]["internal"], b["python"]["internal"])
        and a["python"]["gauss_next"] == b["python"]["gauss_next"]
    )


def _snapshot(value: Any) -> Any:
    """A copy of nested containers whose tensors are detached CPU clones.

    A checkpoint must not alias live tensors (parameters, Adam moments) that later steps change
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


def _check_envelope(state: Any, trainer: str, config: Mapping[str, Any]) -> None:
    """Raises `IncompatibleCheckpoint` unless ``state`` is this loop's envelope for this run."""
    if not isinstance(state, Mapping):
        raise IncompatibleCheckpoint(f"incompatible checkpoint: expected a dict, got {type(state).__name__}")
    if state.get("trainer") != trainer or state.get("format") != CHECKPOINT_FORMAT:
        raise IncompatibleCheckpoint(
            f"incompatible checkpoint: written by trainer {state.get('trainer')!r} in format "
            f"{state.get('format')!r}; {trainer} reads format {CHECKPOINT_FORMAT}"
        )
    missing = sorted(_ENVELOPE_KEYS - set(state))
    if missing:
        raise IncompatibleCheckpoint(f"incompatible {trainer} checkpoint: missing keys {missing}")
    saved = dict(state["config"])
    if saved != dict(config):
        differing = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        raise IncompatibleCheckpoint(
            f"incompatible {trainer} checkpoint: it was written with other settings "
            + ", ".join(f"{k}={saved.get(k)!r} (now {config.get(k)!r})" for k in differing)
        )

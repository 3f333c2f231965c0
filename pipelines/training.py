"""The contract between neurofit and a trainer function, and the run that ties builders together.

A trainer is registered under kind ``"trainer"`` and has the signature::

    train_x(model, data: DataBundle, seed: int, context: TrainingContext, *, <hyperparameters>)
        -> TrainResult
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch


class Checkpointer(Protocol):
    """Where a trainer's per-epoch state goes, so an interrupted job resumes instead of restarting.

    ``save`` replaces the previous checkpoint atomically; ``load`` returns the last saved state
    or None. States are dicts of tensors and plain Python values (loadable with
    ``torch.load(weights_only=True)``).
    """

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


class Preempted(Exception):
    """Raised by a trainer at an epoch boundary when the worker was asked to stop (SIGTERM)."""


@dataclass
class TrainingContext:
    """Runtime facts a trainer receives that are not part of its hashed config.

    Attributes:
        device: torch device string the trainer must train on ("cpu", "cuda:0").
        on_epoch: called once per finished epoch with the epoch's history row
            (``{"epoch", "train_loss", "validation_score", "seconds"}``); may be None.
        checkpoint: where to save and find per-epoch state (None: no checkpointing).
        stop_requested: returns True once the worker has been asked to stop; a trainer checks
            it after saving each epoch's checkpoint and raises `Preempted`.
    """

    device: str = "cpu"
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    checkpoint: Checkpointer | None = None
    stop_requested: Callable[[], bool] | None = None

    def report_epoch(self, row: dict[str, Any]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(row)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        return None if self.checkpoint is None else self.checkpoint.load()

    def check_stop(self, epoch: int) -> None:
        """Raise `Preempted` if a stop was requested (call right after saving a checkpoint)."""
        if self.stop_requested is not None and self.stop_requested():
            raise Preempted(f"stop requested after epoch {epoch}; resume from its checkpoint")


@dataclass
class TrainResult:
    """What a trainer returns.

    Attributes:
        score: validation score of the returned weights (higher is better).
        history: one dict per epoch with keys ``epoch`` (int, from 1), ``train_loss`` (float),
            ``validation_score`` (float) and ``seconds`` (float, wall time of the epoch).
        model: the trained model with the weights the score belongs to (e.g. the best epoch).
    """

    score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    model: torch.nn.Module | None = None


def default_device() -> str:
    """``$NEUROFIT_DEVICE`` if set, else the first GPU if there is one, else the CPU."""
    import os

    return os.environ.get("NEUROFIT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainingOutcome:
    """Everything a TrainedModel row stores, computed without touching the database.

    Attributes:
        score: the trainer's validation score of the stored weights.
        history: per-epoch rows (see `TrainResult`).
        weights: the state dict serialised by `neurofit.pipelines.weights.state_dict_to_bytes`.
        weights_sha256: checksum of ``weights``.
        data_info: `DataInfo.to_dict()`, enough to rebuild the model without dataloaders.
        provenance: versions, host and device (`neurofit.pipelines.provenance.provenance`).
        duration: wall time of the whole run in seconds (data, model and training).
    """

    score: float
    history: list[dict[str, Any]]
    weights: bytes
    weights_sha256: str
    data_info: dict[str, Any]
    provenance: dict[str, str]
    duration: float


def build_data(dataset_fn: str, dataset_config: dict[str, Any], seed: int):
    """Resolve and call a dataset builder; returns its `DataBundle`."""
    from .registry import resolve
    from .seeding import set_seed

    builder = resolve("dataset", dataset_fn)
    set_seed(seed)
    return builder.function(seed, **builder.complete_config(dataset_config))


def build_model(model_fn: str, model_config: dict[str, Any], data_info, seed: int) -> torch.nn.Module:
    """Resolve and call a model builder with a `DataInfo` (no dataloaders needed)."""
    from .registry import resolve
    from .seeding import set_seed

    builder = resolve("model", model_fn)
    set_seed(seed)
    return builder.function(data_info, seed, **builder.complete_config(model_config))


def load_trained(
    model_fn: str,
    model_config: dict[str, Any],
    data_info,
    seed: int,
    weights: bytes,
    device: str = "cpu",
) -> torch.nn.Module:
    """Rebuild a model and load stored weights; returns it on ``device`` in eval mode."""
    from .weights import state_dict_from_bytes

    model = build_model(model_fn, model_config, data_info, seed)
    model.load_state_dict(state_dict_from_bytes(weights, map_location=device))
    return model.to(device).eval()


def train(
    dataset_fn: str,
    dataset_config: dict[str, Any],
    model_fn: str,
    model_config: dict[str, Any],
    trainer_fn: str,
    trainer_config: dict[str, Any],
    seed: int,
    *,
    device: str | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    checkpoint: Checkpointer | None = None,
    stop_requested: Callable[[], bool] | None = None,
    run_name: str | None = None,
) -> TrainingOutcome:
    """Build the data and the model, train, and serialise the result. Pure: no database.

    Every builder gets the same ``seed``, and the global RNGs are re-seeded before each, so a
    run is reproducible on the CPU whatever ran before it in the process. Each epoch's history
    row also goes to wandb when ``$NEUROFIT_WANDB`` enables it (`neurofit.pipelines.tracking`),
    under ``run_name`` (default: builder names and seed).
    """
    import time

    from .provenance import provenance
    from .registry import resolve
    from .seeding import set_seed
    from .tracking import wandb_run
    from .weights import checksum, state_dict_to_bytes

    started = time.perf_counter()
    device = device or default_device()
    trainer = resolve("trainer", trainer_fn)
    trainer_config = trainer.complete_config(trainer_config)
    data = build_data(dataset_fn, dataset_config, seed)
    model = build_model(model_fn, model_config, data.info, seed).to(device)
    run_config = {
        "dataset_fn": dataset_fn, "dataset_config": dataset_config, "model_fn": model_fn,
        "model_config": model_config, "trainer_fn": trainer_fn, "trainer_config": trainer_config,
        "seed": seed, "device": device,
    }
    with wandb_run(run_name or f"{model_fn} seed {seed}", _plain(run_config)) as log_epoch:
        set_seed(seed)  # after wandb.init, which may draw from the global RNGs

        def report(row: dict[str, Any]) -> None:
            if on_epoch is not None:
                on_epoch(row)
            if log_epoch is not None:
                log_epoch(row)

        context = TrainingContext(device=device, on_epoch=report, checkpoint=checkpoint, stop_requested=stop_requested)
        result = trainer.function(model, data, seed, context, **trainer_config)
    if not isinstance(result, TrainResult):
        raise TypeError(
            f"trainer {trainer_fn!r} returned {type(result).__name__}; it must return a "
            "neurofit.pipelines.training.TrainResult"
        )
    trained = result.model if result.model is not None else model
    weights = state_dict_to_bytes(trained.state_dict())
    return TrainingOutcome(
        score=float(result.score),
        history=list(result.history),
        weights=weights,
        weights_sha256=checksum(weights),
        data_info=_plain(data.info.to_dict()),
        provenance=provenance(device),
        duration=time.perf_counter() - started,
    )


def _plain(value: Any) -> Any:
    """numpy containers -> JSON-serialisable Python values (for the data_info json column)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value

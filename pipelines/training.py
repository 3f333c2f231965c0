"""The contract between neurofit and a trainer function, and the run that ties builders together.

A trainer is registered under kind ``"trainer"`` and has the signature::

    train_x(model, data: DataBundle, seed: int, context: RunContext, *, <hyperparameters>)
        -> TrainResult

and usually returns `neurofit.pipelines.loop.fit(...)`: the shared loop with checkpoints, exact
resume, preemption and early stopping, given the trainer's loss step and validation score.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch


class Checkpointer(Protocol):
    """Where a trainer's per-epoch state goes, so an interrupted job resumes instead of restarting.

    ``save`` replaces the previous checkpoint atomically; ``load`` returns the last saved state
    or None. A checkpointer may also have ``discard(reason)``: the training loop calls it with a
    checkpoint it cannot resume, and then starts from scratch instead of failing. States are dicts
    of tensors and plain Python values (loadable with ``torch.load(weights_only=True)``).
    """

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


class Preempted(Exception):
    """Raised by the training loop after a checkpoint when the worker was asked to stop (SIGTERM)."""


@dataclass
class RunContext:
    """Runtime facts handed to trainers and analysis code that are not part of any hashed config.

    One object replaces environment variables and module globals: a worker builds it once (device,
    thread count, its stop request) and each job adds its checkpointer and epoch reporter.

    Attributes:
        device: torch device string to compute on ("cpu", "cuda:0").
        threads: torch CPU threads for this process (None: leave torch's setting); applied by
            `apply_threads`. Oversubscribed threads made a small GRU step 3-30x slower on 2 cores.
        on_epoch: called once per finished epoch with the epoch's history row
            (``{"epoch", "train_loss", "validation_score", "seconds"}``); may be None.
        checkpoint: where to save and find per-epoch state (None: no checkpointing).
        stop_requested: returns True once the worker has been asked to stop; the training loop
            checks it after saving each epoch's checkpoint and raises `Preempted`.
        step_interval: in long epochs, check for a stop request every this many steps, and save
            a mid-epoch checkpoint before stopping (0: only at epoch boundaries).
    """

    device: str = "cpu"
    threads: int | None = None
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    checkpoint: Checkpointer | None = None
    stop_requested: Callable[[], bool] | None = None
    step_interval: int = 0

    def apply_threads(self) -> None:
        """Set torch's CPU thread count to ``threads`` (no-op when None or already set)."""
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def report_epoch(self, row: dict[str, Any]) -> None:
        if self.on_epoch is not None:
            self.on_epoch(row)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        return None if self.checkpoint is None else self.checkpoint.load()

    def discard_checkpoint(self, reason: str) -> bool:
        """Hand a checkpoint the trainer cannot resume to ``checkpoint.discard``; False if it has none."""
        discard = getattr(self.checkpoint, "discard", None)
        if discard is None:
            return False
        discard(reason)
        return True

    def stop_pending(self) -> bool:
        """True if a stop was requested (without raising)."""
        return self.stop_requested is not None and bool(self.stop_requested())

    def check_stop(self, epoch: int) -> None:
        """Raise `Preempted` if a stop was requested (call right after saving a checkpoint)."""
        if self.stop_pending():
            raise Preempted(f"stop requested after epoch {epoch}; resume from its checkpoint")

    def replace(self, **changes) -> "RunContext":
        """A copy with some fields changed (a job's checkpointer on the worker's context)."""
        return dataclasses.replace(self, **changes)


#: The name trainers written for neurofit 0.1 import; the same class.
TrainingContext = RunContext


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
            Given as ``b""`` with a ``state_dict`` (as `train` does), it is serialised only when
            read: ``TrainedModel.make_insert`` streams the state dict into the store instead.
        weights_sha256: checksum of ``weights`` (likewise computed when read).
        data_info: `DataInfo.to_dict()`, enough to rebuild the model without dataloaders.
        provenance: versions, host and device (`neurofit.pipelines.provenance.provenance`).
        duration: wall time of the whole run in seconds (data, model and training).
        artefacts: ``{name: EncodedArtefact}`` of the dataset's ``DataBundle.artefacts``
            (`neurofit.datasets.artefacts`), stored once per dataset, not in ``data_info``.
        n_parameters: trainable parameters of the model.
        state_dict: the trained weights as CPU tensors (what `train` returns), streamed into the
            store by ``TrainedModel.make_insert`` without a serialised copy in memory; None when
            ``weights`` holds them as bytes.
    """

    score: float
    history: list[dict[str, Any]]
    weights: bytes
    weights_sha256: str
    data_info: dict[str, Any]
    provenance: dict[str, str]
    duration: float
    artefacts: dict[str, Any] = field(default_factory=dict)
    n_parameters: int = 0
    state_dict: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        # Unserialised weights: drop the empty values so that reading them reaches __getattr__.
        if self.state_dict is not None and not self.weights and not self.weights_sha256:
            del self.__dict__["weights"], self.__dict__["weights_sha256"]

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set: `weights` and `weights_sha256` of a state dict.
        state_dict = self.__dict__.get("state_dict")
        if name not in ("weights", "weights_sha256") or state_dict is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        from .weights import checksum, state_dict_to_bytes

        data = state_dict_to_bytes(state_dict)
        self.__dict__.update(weights=data, weights_sha256=checksum(data))
        return self.__dict__[name]


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
    weights: bytes | dict[str, torch.Tensor],
    device: str = "cpu",
) -> torch.nn.Module:
    """Rebuild a model and load stored weights (bytes or a loaded state dict); returns it on ``device`` in eval mode."""
    from .weights import state_dict_from_bytes

    model = build_model(model_fn, model_config, data_info, seed)
    state = weights if isinstance(weights, dict) else state_dict_from_bytes(weights, map_location=device)
    model.load_state_dict(state)
    return model.to(device).eval()


def train(
    dataset_fn: str,
    dataset_config: dict[str, Any],
    model_fn: str,
    model_config: dict[str, Any],
    trainer_fn: str,
    trainer_config: dict[str, Any],
    seed: int,
    context: RunContext | None = None,
    *,
    run_name: str | None = None,
) -> TrainingOutcome:
    """Build the data and the model, train, and serialise the result. Pure: no database.

    Every builder gets the same ``seed``, and the global RNGs are re-seeded before each, so a
    run is reproducible on the CPU whatever ran before it in the process. The trainer receives
    ``context`` (default: `default_device`, no checkpoints) with its ``on_epoch`` extended so
    that each epoch's history row also goes to wandb when ``$NEUROFIT_WANDB`` enables it
    (`neurofit.pipelines.tracking`), under ``run_name`` (default: builder names and seed).
    """
    import time

    from neurofit.datasets.info import jsonable

    from .provenance import provenance
    from .registry import resolve
    from .seeding import set_seed
    from .tracking import wandb_run
    from .weights import cpu_state_dict

    started = time.perf_counter()
    context = context or RunContext(device=default_device())
    context.apply_threads()
    device = context.device
    trainer = resolve("trainer", trainer_fn)
    trainer_config = trainer.complete_config(trainer_config)
    data = build_data(dataset_fn, dataset_config, seed)
    model = build_model(model_fn, model_config, data.info, seed).to(device)
    run_config = {
        "dataset_fn": dataset_fn, "dataset_config": dataset_config, "model_fn": model_fn,
        "model_config": model_config, "trainer_fn": trainer_fn, "trainer_config": trainer_config,
        "seed": seed, "device": device,
    }
    with wandb_run(run_name or f"{model_fn} seed {seed}", jsonable(run_config)) as log_epoch:
        set_seed(seed)  # after wandb.init, which may draw from the global RNGs

        def report(row: dict[str, Any]) -> None:
            context.report_epoch(row)
            if log_epoch is not None:
                log_epoch(row)

        result = trainer.function(model, data, seed, context.replace(on_epoch=report), **trainer_config)
    if not isinstance(result, TrainResult):
        raise TypeError(
            f"trainer {trainer_fn!r} returned {type(result).__name__}; it must return a "
            "neurofit.pipelines.training.TrainResult"
        )
    trained = result.model if result.model is not None else model
    # Serialised later, straight into the store (50 MB: no copy in memory, one sha256 pass).
    state_dict = cpu_state_dict(trained.state_dict())
    from neurofit.datasets.artefacts import encode_artefact

    return TrainingOutcome(
        score=float(result.score),
        history=list(result.history),
        weights=b"",
        weights_sha256="",
        data_info=jsonable(data.info.to_dict()),
        provenance=provenance(device),
        duration=time.perf_counter() - started,
        artefacts={n: encode_artefact(n, v) for n, v in getattr(data, "artefacts", {}).items()},
        n_parameters=sum(p.numel() for p in trained.parameters() if p.requires_grad),
        state_dict=state_dict,
    )

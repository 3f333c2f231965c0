"""Tiny task datasets, models and trainers for the tests: class labels, and sequences with targets
and a loss mask. Generic on purpose; a lab's own would live in its package.

Importing this module registers them under ``tests.*`` names.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from neurofit.datasets.info import DataBundle, DataInfo
from neurofit.datasets.rows import DictRows
from neurofit.pipelines.batches import model_inputs
from neurofit.pipelines.loop import EarlyStopping, StepResult, fit
from neurofit.pipelines.registry import register
from neurofit.pipelines.task_scores import gather_task_outputs

TIERS = ("train", "validation", "test")


def _loaders(tiers: dict[str, dict[str, np.ndarray]], seed: int, batch_size: int) -> dict:
    # Shuffling draws from torch's global generator, which the training loop saves and restores.
    return {
        tier: {"all": DataLoader(DictRows(arrays), batch_size=batch_size,
                                 shuffle=tier == "train")}
        for tier, arrays in tiers.items()
    }


def build_blobs(seed: int, *, n_classes: int = 3, n_features: int = 8, n_per_tier: tuple[int, int, int] = (240, 60, 60),
                separation: float = 3.0, with_test: bool = True, batch_size: int = 32) -> DataBundle:
    """Gaussian blobs, one per class: inputs (n_features,), one label per trial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, separation, (n_classes, n_features))
    tiers = {}
    for tier, n in zip(TIERS, n_per_tier):
        if tier == "test" and not with_test:
            continue
        labels = rng.integers(0, n_classes, n)
        inputs = centres[labels] + rng.normal(0, 1, (n, n_features))
        tiers[tier] = {"inputs": inputs.astype(np.float32), "labels": labels.astype(np.int64)}
    info = DataInfo(input_shape=(n_features,), n_neurons={"all": 0}, provides=("labels",), n_classes=n_classes,
                    class_names=tuple(f"class_{i}" for i in range(n_classes)))
    return DataBundle(loaders=_loaders(tiers, seed, batch_size), info=info)


def build_masked_sequences(seed: int, *, n_time: int = 20, n_inputs: int = 3, n_per_tier: tuple[int, int, int] = (120, 30, 30),
                           keep: float = 0.7, noise: float = 0.1, batch_size: int = 16) -> DataBundle:
    """Sequences whose 2-D target is a linear map of the inputs plus noise, with a random loss mask."""
    rng = np.random.default_rng(seed)
    mapping = rng.normal(0, 1, (n_inputs, 2))
    tiers = {}
    for tier, n in zip(TIERS, n_per_tier):
        inputs = rng.normal(0, 1, (n, n_time, n_inputs))
        targets = inputs @ mapping + rng.normal(0, noise, (n, n_time, 2))
        weights = (rng.random((n, n_time)) < keep).astype(np.float32)
        tiers[tier] = {"inputs": inputs.astype(np.float32), "targets": targets.astype(np.float32), "weights": weights}
    info = DataInfo(input_shape=(n_time, n_inputs), n_neurons={"all": 0}, provides=("targets", "mask"),
                    modality="sequence", target_shape=(2,), target_names=("x", "y"))
    return DataBundle(loaders=_loaders(tiers, seed, batch_size), info=info)


class Linear(nn.Module):
    """A linear map of the last input axis; logits for labels, outputs for targets."""

    def __init__(self, n_inputs: int, n_outputs: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs, bias=bias)

    def forward(self, inputs, session=None, **other_inputs):
        return self.linear(inputs)


def build_linear(data_info: DataInfo, seed: int, *, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    n_outputs = data_info.n_classes if "labels" in data_info.provides else int(np.prod(data_info.target_shape))
    return Linear(data_info.input_shape[-1], n_outputs, bias=bias)


def train_task(model, data, seed: int, context, *, max_epochs: int = 5, lr: float = 0.05) -> object:
    """Cross-entropy for labels, masked MSE for targets, on the shared loop."""
    info = data.info
    labels = "labels" in info.provides

    def step(model, session, batch) -> StepResult:
        inputs, extra = model_inputs(batch, context.device)
        outputs = model(inputs, session, **extra)
        if labels:
            loss = nn.functional.cross_entropy(outputs, batch["labels"].to(context.device))
            return StepResult(loss=loss, total=loss.item() * len(inputs), count=len(inputs))
        weights = batch["weights"].to(context.device)[..., None]
        squared = (outputs - batch["targets"].to(context.device)) ** 2 * weights
        loss = squared.sum() / weights.expand_as(squared).sum().clamp(min=1)
        return StepResult(loss=loss, total=loss.item(), count=1)

    def validate(model) -> float:
        gathered = gather_task_outputs(model, data.loaders["validation"], info, context.device)
        if labels:
            return float(np.mean(gathered["logits"].argmax(1) == gathered["labels"]))
        error = (gathered["predictions"] - gathered["targets"]) ** 2 * gathered["weights"]
        return -float(error.sum() / gathered["weights"].sum())

    return fit(model, data, seed, context, trainer="tests.task", config={"max_epochs": max_epochs, "lr": lr},
               step=step, validate=validate, optimizer=lambda p: torch.optim.Adam(p, lr=lr),
               max_epochs=max_epochs, stopping=EarlyStopping(patience=2))


register("dataset", "tests.blobs")(build_blobs)
register("dataset", "tests.masked_sequences")(build_masked_sequences)
register("model", "tests.linear")(build_linear)
register("trainer", "tests.task")(train_task)

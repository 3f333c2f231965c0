"""A classification dataset, a small network and a trainer on neurofit's shared loop."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neurofit.datasets.info import DataBundle, DataInfo
from neurofit.pipelines.batches import model_inputs
from neurofit.pipelines.loop import EarlyStopping, StepResult, fit
from neurofit.pipelines.scoring import Measure
from neurofit.pipelines.training import RunContext, TrainResult


class _Dicts(TensorDataset):
    def __getitem__(self, index):
        inputs, labels = super().__getitem__(index)
        return {"inputs": inputs, "labels": labels}


def build_blobs(seed: int, *, n_classes: int = 3, n_features: int = 6, n_per_class: int = 60,
                spread: float = 0.6) -> DataBundle:
    """Gaussian blobs around fixed class centres (the centres depend on no seed: ground truth)."""
    centres = np.random.default_rng(12345).normal(0, 2, (n_classes, n_features))
    rng = np.random.default_rng(seed)
    loaders = {}
    for tier, shuffle in (("train", True), ("validation", False), ("test", False)):
        labels = np.repeat(np.arange(n_classes), n_per_class)
        inputs = centres[labels] + spread * rng.standard_normal((len(labels), n_features))
        dataset = _Dicts(torch.tensor(inputs, dtype=torch.float32), torch.tensor(labels))
        loaders[tier] = {"all": DataLoader(dataset, batch_size=32, shuffle=shuffle)}
    info = DataInfo(input_shape=(n_features,), n_neurons={"all": 0}, provides=("labels",),
                    n_classes=n_classes, input_unit="a.u.")
    return DataBundle(loaders=loaders, info=info, artefacts={"centres": centres})


class MLP(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden: int):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden)
        self.readout = nn.Linear(hidden, n_classes)

    def forward(self, inputs, session):
        return self.readout(torch.relu(self.hidden(inputs)))


def build_mlp(data_info: DataInfo, seed: int, *, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(data_info.input_shape[0], data_info.n_classes, hidden)


def _accuracy(model, loaders, device) -> float:
    correct = total = 0
    for session, loader in loaders.items():
        for batch in loader:
            inputs, extra = model_inputs(batch, device)
            predicted = model(inputs, session, **extra).argmax(-1).cpu()
            correct += int((predicted == batch["labels"]).sum())
            total += len(predicted)
    return correct / max(total, 1)


def train_cross_entropy(model, data, seed, context: RunContext, *, max_epochs: int = 8,
                        lr: float = 0.05, patience: int = 2) -> TrainResult:
    """Cross-entropy with SGD; the shared loop does epochs, early stopping and checkpoints."""

    def step(model, session, batch) -> StepResult:
        inputs, extra = model_inputs(batch, context.device)
        labels = batch["labels"].to(context.device)
        loss = nn.functional.cross_entropy(model(inputs, session, **extra), labels)
        return StepResult(loss=loss, total=loss.item() * len(labels), count=len(labels))

    return fit(
        model, data, seed, context, trainer="acme.cross_entropy",
        config={"max_epochs": max_epochs, "lr": lr, "patience": patience}, step=step,
        validate=lambda m: _accuracy(m, data.loaders["validation"], context.device),
        optimizer=lambda parameters: torch.optim.SGD(parameters, lr=lr),
        stopping=EarlyStopping(patience=patience, lr_decay_steps=0), max_epochs=max_epochs,
    )


def class_recall(model, data, seed, context: RunContext, *, tier: str = "test") -> Measure:
    """Fraction of each class's test items classified correctly (one 'unit' per class)."""
    hits = np.zeros(data.info.n_classes)
    counts = np.zeros(data.info.n_classes)
    with torch.no_grad():
        for session, loader in data.loaders[tier].items():
            for batch in loader:
                inputs, extra = model_inputs(batch, context.device)
                predicted = model(inputs, session, **extra).argmax(-1).cpu().numpy()
                labels = batch["labels"].numpy()
                np.add.at(counts, labels, 1)
                np.add.at(hits, labels, predicted == labels)
    return Measure(per_unit={"all": hits / np.maximum(counts, 1)})


# Entry-point builders declare requirements on the function itself (as register(...) would).
class_recall.neurofit_requirements = {"applies_to": ("labels",)}

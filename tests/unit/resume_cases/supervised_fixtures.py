"""Tiny labelled and masked-sequence datasets plus a linear model, for the supervised trainer's tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neurofit.datasets.info import DataBundle, DataInfo

TIERS = ("train", "validation", "test")


class _Dicts(TensorDataset):
    def __init__(self, names, *tensors):
        super().__init__(*tensors)
        self.names = names

    def __getitem__(self, index):
        return dict(zip(self.names, super().__getitem__(index)))


def loaders(tiers: dict[str, dict[str, np.ndarray]], seed: int, batch_size: int = 32) -> dict:
    # Shuffling draws from torch's global generator, which the loop saves and restores.
    return {tier: {"all": DataLoader(_Dicts(list(arrays), *[torch.as_tensor(v) for v in arrays.values()]),
                                     batch_size=batch_size, shuffle=tier == "train")}
            for tier, arrays in tiers.items()}


def build_blobs(seed: int, *, n_classes: int = 3, n_features: int = 6, n: int = 90) -> DataBundle:
    """Gaussian blobs, one per class; inputs (n_features,), one label per trial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (n_classes, n_features))
    tiers = {}
    for tier in TIERS:
        labels = rng.integers(0, n_classes, n)
        tiers[tier] = {"inputs": (centres[labels] + rng.normal(0, 1, (n, n_features))).astype(np.float32),
                       "labels": labels.astype(np.int64)}
    info = DataInfo(input_shape=(n_features,), n_neurons={"all": 0}, provides=("labels",), n_classes=n_classes,
                    class_names=tuple(f"c{i}" for i in range(n_classes)))
    return DataBundle(loaders=loaders(tiers, seed), info=info)


def build_masked_sequences(seed: int, *, n: int = 60, n_time: int = 12, garbage: float = 0.0,
                           burn_in: int = 0) -> DataBundle:
    """Targets a linear map of the inputs where the mask keeps them; ``garbage`` where it does not."""
    rng = np.random.default_rng(seed)
    mapping = rng.normal(0, 1, (3, 2))
    tiers = {}
    for tier in TIERS:
        inputs = rng.normal(0, 1, (n, n_time, 3))
        targets = inputs @ mapping
        weights = (rng.random((n, n_time)) < 0.6).astype(np.float32)
        weights[:, :burn_in] = 1.0
        targets = np.where(weights[..., None] > 0, targets, garbage)
        if burn_in:
            targets[:, :burn_in] = garbage  # the burn-in is never scored, whatever the mask says
        tiers[tier] = {"inputs": inputs.astype(np.float32), "targets": targets.astype(np.float32), "weights": weights}
    info = DataInfo(input_shape=(n_time, 3), n_neurons={"all": 0}, provides=("targets", "mask"),
                    modality="sequence", target_shape=(2,), target_names=("x", "y"), burn_in=burn_in)
    return DataBundle(loaders=loaders(tiers, seed, 16), info=info)


class Linear(nn.Module):
    def __init__(self, n_inputs, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)

    def forward(self, inputs, session=None, **other):
        return self.linear(inputs)


def build_linear(data_info: DataInfo, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    n_outputs = data_info.n_classes if "labels" in data_info.provides else int(np.prod(data_info.target_shape))
    return Linear(data_info.input_shape[-1], n_outputs)

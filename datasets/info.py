"""What a model needs to know about its data, and the bundle a dataset builder returns.

A `DataInfo` is small and JSON-serialisable: it is stored with every trained model so that
`load_model` can rebuild the network without building dataloaders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader

TIERS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataInfo:
    """Shapes and units of one dataset.

    Attributes:
        input_shape: shape of one stimulus without the batch axis, e.g. (channels, height, width).
        n_neurons: number of recorded neurons per session, in session order.
        input_unit: unit of the stimulus values (e.g. "luminance, z-scored").
        response_unit: unit of the responses (e.g. "spike count per bin").
        extra: further JSON-serialisable facts, e.g. per-neuron mean responses
            (``{"mean_response": {session: [...]}}``) or known ground truth of synthetic data.
    """

    input_shape: tuple[int, ...]
    n_neurons: dict[str, int]
    input_unit: str = ""
    response_unit: str = "spike count"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sessions(self) -> list[str]:
        return list(self.n_neurons)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["n_neurons"] = {str(k): int(v) for k, v in d["n_neurons"].items()}
        return cls(**d)


@dataclass
class DataBundle:
    """What a dataset builder returns.

    Attributes:
        loaders: ``{tier: {session: DataLoader}}`` with tiers from ``TIERS``. Every batch is a
            dict with at least ``"inputs"`` (batch, *input_shape) float32, ``"responses"``
            (batch, n_neurons) float32 and ``"stimulus_id"`` (batch,) int64; repeated
            presentations of one stimulus share a ``stimulus_id``.
        info: the `DataInfo` of these loaders.
    """

    loaders: dict[str, dict[str, DataLoader]]
    info: DataInfo

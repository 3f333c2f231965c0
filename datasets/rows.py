"""In-memory datasets whose items are dicts: the batches of neurofit's task datasets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DictRows"]


class DictRows(Dataset):
    """Rows of equally long arrays; an item is ``{name: tensor}`` of one row (trial, trajectory).

    Args:
        arrays: name -> array or tensor with the rows on the first axis, all of one length.

    Raises:
        ValueError: if the arrays differ in length or there are none.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray | torch.Tensor]):
        lengths = {len(values) for values in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"arrays must hold the same number of rows, got lengths {sorted(lengths)}")
        self.tensors = {name: values if isinstance(values, torch.Tensor)
                        else torch.as_tensor(np.ascontiguousarray(values)) for name, values in arrays.items()}
        self.n = lengths.pop()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: values[index] for name, values in self.tensors.items()}

"""predict() on loaders (no database, fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurofit.pipelines.evaluation import predict


class _Scaled(torch.nn.Module):
    """Prediction = mean input pixel times a per-session weight; records how it was called."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.ParameterDict(
            {"a": torch.nn.Parameter(torch.ones(3)), "b": torch.nn.Parameter(2 * torch.ones(2))}
        )
        self.modes = []

    def forward(self, inputs, session):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return inputs.mean(dim=(1, 2, 3))[:, None] * self.weight[session]


def _loader(n, n_neurons, offset):
    data = [
        {
            "inputs": torch.full((1, 4, 4), float(i)),
            "responses": torch.arange(n_neurons, dtype=torch.float32) + i,
            "stimulus_id": torch.tensor(offset + i // 2),
        }
        for i in range(n)
    ]
    return DataLoader(data, batch_size=4)


def test_shapes_order_and_values():
    model = _Scaled()
    out = predict(model, {"a": _loader(10, 3, 0), "b": _loader(5, 2, 100)}, "cpu")
    assert set(out) == {"a", "b"}
    a, b = out["a"], out["b"]
    assert a["responses"].shape == a["predictions"].shape == (10, 3)
    assert b["predictions"].shape == (5, 2) and b["stimulus_id"].shape == (5,)
    assert a["predictions"].dtype == np.float32 and a["stimulus_id"].dtype == np.int64
    np.testing.assert_array_equal(a["predictions"][:, 0], np.arange(10))
    np.testing.assert_array_equal(b["predictions"][:, 1], 2 * np.arange(5))
    np.testing.assert_array_equal(a["responses"][:, 2], np.arange(10) + 2)
    np.testing.assert_array_equal(b["stimulus_id"], [100, 100, 101, 101, 102])


def test_runs_in_eval_mode_without_grad_and_restores_the_mode():
    model = _Scaled().train()
    predict(model, {"a": _loader(3, 3, 0)}, "cpu")
    assert model.modes == [(False, False)]
    assert model.training
    model.eval()
    predict(model, {"a": _loader(3, 3, 0)}, "cpu")
    assert not model.training


def test_empty_loader_raises():
    with pytest.raises(ValueError, match="no batches"):
        predict(_Scaled(), {"a": []}, "cpu")

"""The Gaussian-readout CNN builder (no database, fast)."""

from __future__ import annotations

import inspect

import pytest
import torch

from neurofit.datasets.info import DataInfo
from neurofit.models.encoding import GaussianReadoutCNN, build_gaussian_cnn

SMALL = dict(hidden_channels=4, layers=2, input_kernel=5, hidden_kernel=3)


def _info(mean_response=None) -> DataInfo:
    return DataInfo(input_shape=(1, 12, 14), n_neurons={"a": 5, "b": 3}, mean_response=mean_response or {})


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_forward_shapes_per_session():
    model = build_gaussian_cnn(_info(), 0, **SMALL)
    x = torch.randn(7, 1, 12, 14)
    for mode in (model.train, model.eval):
        mode()
        assert model(x, "a").shape == (7, 5)
        assert model(x, "b").shape == (7, 3)
    assert model.sessions == ["a", "b"]


def test_outputs_are_positive_rates():
    model = build_gaussian_cnn(_info(), 0, **SMALL).eval()
    y = model(10.0 * torch.randn(16, 1, 12, 14), "a")
    assert (y > 0).all()


def test_same_seed_same_weights_other_seed_other_weights():
    first = _weights(build_gaussian_cnn(_info(), 3, **SMALL))
    second = _weights(build_gaussian_cnn(_info(), 3, **SMALL))
    other = _weights(build_gaussian_cnn(_info(), 4, **SMALL))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    conv = "core.features.layer0.conv.weight"
    assert not torch.equal(first[conv], other[conv])


def test_building_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_gaussian_cnn(_info(), 0, **SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_readout_bias_starts_at_mean_response():
    means = {"a": [0.2, 0.5, 1.0, 2.0, 7.5], "b": [3.0, 0.1, 1.5]}
    model = build_gaussian_cnn(_info(means), 0, **SMALL)
    for session, mean in means.items():
        bias = model.readout[session].bias.detach()
        # elu(bias) + 1 is what the model outputs when the feature drive is zero.
        torch.testing.assert_close(
            torch.nn.functional.elu(bias) + 1, torch.tensor(mean), rtol=1e-5, atol=1e-6
        )


def test_wrong_mean_response_length_raises():
    with pytest.raises(ValueError, match="mean_response"):
        build_gaussian_cnn(_info({"a": [1.0, 2.0]}), 0, **SMALL)


def test_unknown_session_raises():
    model = build_gaussian_cnn(_info(), 0, **SMALL)
    with pytest.raises(KeyError, match="unknown session"):
        model(torch.zeros(1, 1, 12, 14), "c")


def test_regularizer_is_a_differentiable_scalar_that_grows_with_gamma():
    weak = build_gaussian_cnn(_info(), 0, **SMALL, gamma_input=0.1, gamma_readout=0.0)
    strong = build_gaussian_cnn(_info(), 0, **SMALL, gamma_input=1.0, gamma_readout=0.0)
    r_weak, r_strong = weak.regularizer("a"), strong.regularizer("a")
    assert r_weak.ndim == 0
    torch.testing.assert_close(r_strong, 10 * r_weak)
    r_strong.backward()
    assert strong.core.features[0].conv.weight.grad.abs().sum() > 0


def test_readout_penalty_is_session_specific():
    model = build_gaussian_cnn(_info(), 0, **SMALL, gamma_input=0.0, gamma_readout=1.0)
    # Features start at 1 / channels, so the L1 sum is the number of neurons.
    assert model.regularizer("a").item() == pytest.approx(5.0)
    assert model.regularizer("b").item() == pytest.approx(3.0)


def test_signature_is_keyword_only_without_kwargs():
    params = list(inspect.signature(build_gaussian_cnn).parameters.values())
    assert [p.name for p in params[:2]] == ["data_info", "seed"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
    assert all(p.default is not inspect.Parameter.empty for p in params[2:])


def test_returns_the_documented_class():
    assert isinstance(build_gaussian_cnn(_info(), 0, **SMALL), GaussianReadoutCNN)

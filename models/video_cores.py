"""Causal video cores: feature maps for every frame that depend only on the present and past frames.

Both cores map a movie (batch, channels, time, height, width) to features of shape
(batch, hidden_channels', time, height, width): time and space are length-preserving ("same"
zero padding in space, zero padding on the *left* only in time), so feature frame t is computed
from input frames <= t. That causality is exact in eval mode; in train mode batch normalisation
pools its statistics over all frames of the batch (as every batch-normalised video model does),
which is not a per-sample dependence on the future and does not exist at evaluation.

- `Factorized3dCore`: per layer a spatial Conv3d (1, k, k), a causal temporal Conv3d (kt, 1, 1),
  batch norm and ELU (a space-time separable filter bank, as in the factorised 3D cores of the
  Sinz lab's video models).
- `ConvGRUCore`: 2D convolution layers applied to every frame independently, then a
  convolutional GRU that carries a hidden state over time.

neuralpredictors 0.3.0 (the newest release) ships no 3D or recurrent cores, so these are
plain torch. Each core's ``regularizer()`` returns a scalar penalty in the spirit of
neuralpredictors' cores: normalised Laplace smoothness of the first layer's spatial filters plus
an L2 penalty on all convolution weights.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CausalTemporalConv3d", "ConvGRU", "ConvGRUCore", "Factorized3dCore", "FramewiseConv2d"]

# 3x3 Laplace filter, the one neuralpredictors' LaplaceL2norm uses.
_LAPLACE = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplace_smoothness(weight: torch.Tensor) -> torch.Tensor:
    """Normalised Laplace penalty of 2D filters: sum |laplace(w)|^2 / sum |w|^2.

    Same value as neuralpredictors' ``LaplaceL2norm(padding=None)`` with ``avg=False``, computed in
    one batched convolution; dividing by the filters' energy makes it independent of their scale,
    so it only asks for smoothness.

    Args:
        weight: filters, shape (out_channels, in_channels, k, k) or (..., k, k) in general.

    Returns:
        Scalar tensor (differentiable in ``weight``).
    """
    k1, k2 = weight.shape[-2:]
    flat = weight.reshape(-1, 1, k1, k2)
    kernel = _LAPLACE.to(dtype=weight.dtype, device=weight.device)[None, None]
    # Padding by half the Laplace filter also penalises filters that do not fall to 0 at their
    # border (neuralpredictors' default padding of 0 would ignore the border).
    return F.conv2d(flat, kernel, padding=1).pow(2).sum() / flat.pow(2).sum().clamp_min(1e-12)


def _conv_l2(module: nn.Module) -> torch.Tensor:
    """Sum of squared weights of every convolution in ``module`` (biases and norms excluded)."""
    weights = [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    return torch.stack([w.pow(2).sum() for w in weights]).sum()


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_odd_kernel(name: str, value) -> None:
    _check_positive_int(name, value)
    if value % 2 == 0:
        raise ValueError(
            f"{name} must be odd so that 'same' padding keeps the frame centred, got {value}; "
            f"use {value - 1} or {value + 1}"
        )


def _check_non_negative(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_momentum(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 1):
        raise ValueError(f"batch_norm_momentum must be in (0, 1], got {value!r}")


def _check_video(x: torch.Tensor, channels: int) -> None:
    if x.ndim != 5 or x.shape[1] != channels:
        raise ValueError(
            f"expected a movie of shape (batch, {channels}, time, height, width), got {tuple(x.shape)}"
        )


class CausalTemporalConv3d(nn.Conv3d):
    """Conv3d with kernel (kt, 1, 1) that pads kt - 1 zero frames on the left only.

    Output frame t is a weighted sum of input frames t - kt + 1 ... t, and the output has as many
    frames as the input.

    Shapes:
        input (batch, in_channels, time, height, width) -> (batch, out_channels, time, height, width)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = False):
        super().__init__(in_channels, out_channels, (kernel, 1, 1), padding=0, bias=bias)
        self.causal_padding = kernel - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad pads the last dims first: (W left, W right, H left, H right, T left, T right).
        return super().forward(F.pad(x, (0, 0, 0, 0, self.causal_padding, 0)))


class Factorized3dCore(nn.Module):
    """Stack of space-time separable causal convolution layers.

    Layer i: ``spatial`` Conv3d (1, k, k) with 'same' zero padding -> ``temporal``
    `CausalTemporalConv3d` (kt, 1, 1) -> ``norm`` BatchNorm3d -> ``nonlin`` ELU. Layer 0 uses
    ``first_spatial_kernel``/``first_temporal_kernel`` (larger: it sees raw pixels), the others
    ``spatial_kernel``/``temporal_kernel``. The temporal receptive field is
    ``first_temporal_kernel + (layers - 1) * (temporal_kernel - 1)`` frames.

    Attributes:
        features: ``nn.Sequential`` of layers named ``layer0``, ``layer1``, ...; each layer's
            output (after ELU) has shape (batch, hidden_channels, time, height, width).
        outchannels: channels of the core output (``hidden_channels * layers`` if ``stack``).
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int = 16,
        layers: int = 3,
        first_spatial_kernel: int = 9,
        spatial_kernel: int = 5,
        first_temporal_kernel: int = 9,
        temporal_kernel: int = 5,
        batch_norm_momentum: float = 0.1,
        core_smoothness: float = 0.5,
        core_l2: float = 1e-3,
        stack: bool = False,
    ):
        """
        Args:
            input_channels: channels of the input movie (stimulus channels + behaviour channels).
            hidden_channels: feature maps per layer.
            layers: number of layers.
            first_spatial_kernel, spatial_kernel: odd spatial kernel sizes of layer 0 / the others.
            first_temporal_kernel, temporal_kernel: temporal kernel lengths (frames) of layer 0 / the others.
            batch_norm_momentum: momentum of the batch-norm running statistics.
            core_smoothness: weight of the Laplace smoothness penalty on layer 0's spatial filters.
            core_l2: weight of the L2 penalty on all convolution weights.
            stack: output all layers concatenated along channels (True) or only the last.

        Raises:
            ValueError: naming any invalid hyperparameter.
        """
        super().__init__()
        _check_positive_int("input_channels", input_channels)
        _check_positive_int("hidden_channels", hidden_channels)
        _check_positive_int("layers", layers)
        _check_odd_kernel("first_spatial_kernel", first_spatial_kernel)
        _check_odd_kernel("spatial_kernel", spatial_kernel)
        _check_positive_int("first_temporal_kernel", first_temporal_kernel)
        _check_positive_int("temporal_kernel", temporal_kernel)
        _check_momentum(batch_norm_momentum)
        _check_non_negative("core_smoothness", core_smoothness)
        _check_non_negative("core_l2", core_l2)
        self.input_channels = input_channels
        self.core_smoothness = float(core_smoothness)
        self.core_l2 = float(core_l2)
        self.stack = bool(stack)
        self.outchannels = hidden_channels * (layers if stack else 1)
        self.temporal_receptive_field = first_temporal_kernel + (layers - 1) * (temporal_kernel - 1)

        layer_list = []
        for i in range(layers):
            k = first_spatial_kernel if i == 0 else spatial_kernel
            kt = first_temporal_kernel if i == 0 else temporal_kernel
            layer = nn.Sequential(
                OrderedDict(
                    # No biases: batch norm right after removes them anyway.
                    spatial=nn.Conv3d(
                        input_channels if i == 0 else hidden_channels,
                        hidden_channels,
                        (1, k, k),
                        padding=(0, k // 2, k // 2),
                        bias=False,
                    ),
                    temporal=CausalTemporalConv3d(hidden_channels, hidden_channels, kt),
                    norm=nn.BatchNorm3d(hidden_channels, momentum=batch_norm_momentum),
                    nonlin=nn.ELU(),
                )
            )
            layer_list.append((f"layer{i}", layer))
        self.features = nn.Sequential(OrderedDict(layer_list))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of every frame.

        Args:
            x: movie, shape (batch, input_channels, time, height, width).

        Returns:
            (batch, outchannels, time, height, width); frame t depends on input frames <= t.
        """
        _check_video(x, self.input_channels)
        outputs = []
        for layer in self.features:
            x = layer(x)
            outputs.append(x)
        return torch.cat(outputs, dim=1) if self.stack else x

    def regularizer(self) -> torch.Tensor:
        """core_smoothness * Laplace smoothness of layer 0's spatial filters + core_l2 * sum of squared conv weights."""
        spatial = self.features[0].spatial.weight  # (out, in, 1, k, k)
        return self.core_smoothness * laplace_smoothness(spatial[:, :, 0]) + self.core_l2 * _conv_l2(self)


class FramewiseConv2d(nn.Module):
    """Conv2d ('same' padding) -> BatchNorm2d -> ELU applied to every frame of a movie.

    Time is folded into the batch, so frames never interact (causal trivially).

    Shapes:
        input (batch, in_channels, time, height, width) -> (batch, out_channels, time, height, width)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, batch_norm_momentum: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm2d(out_channels, momentum=batch_norm_momentum)
        self.nonlin = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        y = self.nonlin(self.norm(self.conv(frames)))
        return y.reshape(b, t, -1, h, w).transpose(1, 2)


class ConvGRU(nn.Module):
    """Convolutional GRU run over the time axis of a movie, hidden state starting at zero.

    With x_t the input frame and h_{t-1} the previous hidden state (all convolutions 'same'):
    ``z, r = sigmoid(Wx_zr * x_t + Wh_zr * h_{t-1})``, ``n = tanh(Wx_n * x_t + Wh_n * (r h_{t-1}))``,
    ``h_t = (1 - z) n + z h_{t-1}``. The input convolutions of all frames run as one batched call
    before the loop; only the hidden-state convolutions run per frame.

    Shapes:
        input (batch, in_channels, time, height, width) -> (batch, hidden_channels, time, height, width),
        output frame t = h_t.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int):
        super().__init__()
        self.hidden_channels = hidden_channels
        pad = kernel // 2
        self.input_gates = nn.Conv2d(in_channels, 3 * hidden_channels, kernel, padding=pad)
        self.hidden_gates = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel, padding=pad, bias=False)
        self.hidden_candidate = nn.Conv2d(hidden_channels, hidden_channels, kernel, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        hc = self.hidden_channels
        gx = self.input_gates(x.transpose(1, 2).reshape(b * t, c, h, w)).reshape(b, t, 3 * hc, h, w)
        state = x.new_zeros(b, hc, h, w)
        states = []
        # unbind/split (not indexing gx[:, step]): their backward assembles one gradient tensor,
        # whereas each indexing op's backward fills a zero tensor the size of gx (slow: 15x).
        for gx_t in gx.unbind(1):
            gx_zr, gx_n = gx_t.split([2 * hc, hc], dim=1)
            z, r = torch.sigmoid(gx_zr + self.hidden_gates(state)).split([hc, hc], dim=1)
            candidate = torch.tanh(gx_n + self.hidden_candidate(r * state))
            state = (1 - z) * candidate + z * state
            states.append(state)
        return torch.stack(states, dim=2)


class ConvGRUCore(nn.Module):
    """Per-frame 2D convolution layers followed by a convolutional GRU over time.

    Attributes:
        features: ``nn.Sequential`` of `FramewiseConv2d` layers ``layer0``, ``layer1``, ...; each
            outputs (batch, hidden_channels, time, height, width).
        gru: the `ConvGRU`; its output (batch, hidden_channels, time, height, width) is the core output.
        outchannels: channels of the core output (= hidden_channels).
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int = 16,
        feature_layers: int = 2,
        first_kernel: int = 9,
        kernel: int = 5,
        gru_kernel: int = 3,
        batch_norm_momentum: float = 0.1,
        core_smoothness: float = 0.5,
        core_l2: float = 1e-3,
    ):
        """
        Args:
            input_channels: channels of the input movie (stimulus channels + behaviour channels).
            hidden_channels: feature maps of each feature layer and of the GRU state.
            feature_layers: number of per-frame convolution layers before the GRU (>= 1).
            first_kernel, kernel: odd kernel sizes of feature layer 0 / the others.
            gru_kernel: odd kernel size of the GRU's gate convolutions.
            batch_norm_momentum: momentum of the batch-norm running statistics.
            core_smoothness: weight of the Laplace smoothness penalty on layer 0's filters.
            core_l2: weight of the L2 penalty on all convolution weights (GRU included).

        Raises:
            ValueError: naming any invalid hyperparameter.
        """
        super().__init__()
        _check_positive_int("input_channels", input_channels)
        _check_positive_int("hidden_channels", hidden_channels)
        _check_positive_int("feature_layers", feature_layers)
        _check_odd_kernel("first_kernel", first_kernel)
        _check_odd_kernel("kernel", kernel)
        _check_odd_kernel("gru_kernel", gru_kernel)
        _check_momentum(batch_norm_momentum)
        _check_non_negative("core_smoothness", core_smoothness)
        _check_non_negative("core_l2", core_l2)
        self.input_channels = input_channels
        self.core_smoothness = float(core_smoothness)
        self.core_l2 = float(core_l2)
        self.outchannels = hidden_channels
        layer_list = [
            (
                f"layer{i}",
                FramewiseConv2d(
                    input_channels if i == 0 else hidden_channels,
                    hidden_channels,
                    first_kernel if i == 0 else kernel,
                    batch_norm_momentum,
                ),
            )
            for i in range(feature_layers)
        ]
        self.features = nn.Sequential(OrderedDict(layer_list))
        self.gru = ConvGRU(hidden_channels, hidden_channels, gru_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of every frame.

        Args:
            x: movie, shape (batch, input_channels, time, height, width).

        Returns:
            (batch, hidden_channels, time, height, width): the GRU state after each frame.
        """
        _check_video(x, self.input_channels)
        return self.gru(self.features(x))

    def regularizer(self) -> torch.Tensor:
        """core_smoothness * Laplace smoothness of layer 0's filters + core_l2 * sum of squared conv weights."""
        first = self.features[0].conv.weight  # (out, in, k, k)
        return self.core_smoothness * laplace_smoothness(first) + self.core_l2 * _conv_l2(self)

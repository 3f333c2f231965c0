"""DeepDraw's networks of the proprioceptive pathway, in PyTorch.

`DeepDrawConv` reproduces ``ConvModel`` of ``amathislab/DeepDraw`` (``code/nn_models.py``):
the input (muscles x time x {length, velocity}) goes through ``n_layers`` spatial convolutions
(kernel ``s_kernelsize`` x 1 over muscles) and then ``n_layers`` temporal ones (1 x
``t_kernelsize`` over time) for ``spatial_temporal``, the other order for ``temporal_spatial``,
or ``n_layers`` joint ``s x t`` convolutions for ``spatiotemporal``. Every convolution has TF's
SAME padding (output ``ceil(n / stride)``, the extra pad at the end), no bias, layer norm over
(channel, muscle, time) with a per-channel scale and shift (``slim.layer_norm``, here
``GroupNorm(1, C)``), then ReLU. The head is flatten, dropout (keep 0.7) and a linear layer to
the classes. `DeepDrawRecurrent` is the recurrent family: spatial convolutions, then an LSTM over
time, then the head on the last step. ``task="trajectory"`` replaces the class head with a
per-time-step linear readout of the hand position (DeepDraw's ``ConvRModel``), interpolated back
to input time.

Layers are recorded by neurofit's probing under their DeepDraw names (``spatial0``,
``temporal1``, ...; `analysis_layers`); the model declares its input axes, so strided layers get
time centres measured on the time axis.

`PUBLISHED` lists a few architectures with the ``parameters`` value of DeepDraw's table
(``nn-training/convmodels.p``). That column counts the convolution kernels only (no layer-norm
or classifier parameters) with **one** input channel, although the networks were trained on two
(length and velocity): `published_parameter_count` counts that way.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ARCHITECTURES",
    "BEST_CONFIGS",
    "PUBLISHED",
    "DeepDrawConv",
    "DeepDrawRecurrent",
    "build_deepdraw_conv",
    "build_deepdraw_recurrent",
    "published_parameter_count",
]

ARCHITECTURES = ("spatial_temporal", "temporal_spatial", "spatiotemporal")

#: The paper's best architecture per family (DeepDraw's analysed models), as builder configs.
BEST_CONFIGS = {
    "spatial_temporal": {"arch_type": "spatial_temporal", "n_skernels": [8, 16, 16, 32], "n_tkernels": [64, 64, 64, 64],
                         "s_kernelsize": 5, "s_stride": 2, "t_kernelsize": 7, "t_stride": 2},
    "spatiotemporal": {"arch_type": "spatiotemporal", "n_skernels": [8, 8, 32, 64], "n_tkernels": [8, 8, 32, 64],
                       "s_kernelsize": 7, "s_stride": 2, "t_kernelsize": 7, "t_stride": 2},
    "temporal_spatial": {"arch_type": "temporal_spatial", "n_skernels": [64, 64, 64, 64], "n_tkernels": [16, 16, 32, 64],
                         "s_kernelsize": 5, "s_stride": 2, "t_kernelsize": 7, "t_stride": 2},
}

#: (config, published ``parameters``) rows of DeepDraw's ``convmodels.p`` table.
PUBLISHED = [
    (BEST_CONFIGS["spatial_temporal"], 104872),
    (BEST_CONFIGS["spatiotemporal"], 116424),
    (BEST_CONFIGS["temporal_spatial"], 101744),
    ({"arch_type": "spatiotemporal", "n_skernels": [64], "n_tkernels": [64], "s_kernelsize": 5, "s_stride": 1,
      "t_kernelsize": 5, "t_stride": 1}, 1600),
    ({"arch_type": "temporal_spatial", "n_skernels": [32], "n_tkernels": [16], "s_kernelsize": 9, "s_stride": 2,
      "t_kernelsize": 9, "t_stride": 2}, 4752),
    ({"arch_type": "spatial_temporal", "n_skernels": [8, 8, 16], "n_tkernels": [32, 64, 64], "s_kernelsize": 3,
      "s_stride": 2, "t_kernelsize": 3, "t_stride": 3}, 20568),
]


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF SAME padding (before, after) of one axis: output ceil(size / stride), extra at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d without bias and with TF's SAME padding, over (muscle, time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int]):
        super().__init__(in_channels, out_channels, kernel, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ks, kt), (ss, st) = self.kernel_size, self.stride
        top, bottom = _same_pad(x.shape[-2], ks, ss)
        left, right = _same_pad(x.shape[-1], kt, st)
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _block(in_channels, out_channels, kernel, stride) -> nn.Sequential:
    # GroupNorm with one group = slim.layer_norm: statistics over (C, muscle, time) per sample,
    # scale and shift per channel. It is a norm neurofit's time-centre measurement bypasses.
    return nn.Sequential(SameConv2d(in_channels, out_channels, kernel, stride),
                         nn.GroupNorm(1, out_channels), nn.ReLU())


def _layer_plan(arch_type, n_skernels, n_tkernels, s_kernelsize, t_kernelsize, s_stride, t_stride):
    """[(name, out_channels, kernel, stride)] in network order (DeepDraw's layer names)."""
    if arch_type not in ARCHITECTURES:
        raise ValueError(f"arch_type={arch_type!r}: choose one of {list(ARCHITECTURES)}")
    if arch_type == "spatiotemporal":
        return [(f"spatiotemporal{i}", n, (s_kernelsize, t_kernelsize), (s_stride, t_stride))
                for i, n in enumerate(n_skernels)]
    if len(n_skernels) != len(n_tkernels):
        raise ValueError(f"n_skernels {list(n_skernels)} and n_tkernels {list(n_tkernels)} need one entry per layer each")
    spatial = [(f"spatial{i}", n, (s_kernelsize, 1), (s_stride, 1)) for i, n in enumerate(n_skernels)]
    temporal = [(f"temporal{i}", n, (1, t_kernelsize), (1, t_stride)) for i, n in enumerate(n_tkernels)]
    return spatial + temporal if arch_type == "spatial_temporal" else temporal + spatial


def published_parameter_count(config: dict) -> int:
    """Convolution weights of a config counted as DeepDraw's table does (one input channel)."""
    plan = _layer_plan(config["arch_type"], config["n_skernels"], config.get("n_tkernels", config["n_skernels"]),
                       config["s_kernelsize"], config["t_kernelsize"], config["s_stride"], config["t_stride"])
    count, channels = 0, 1
    for _, out, (ks, kt), _ in plan:
        count += out * channels * ks * kt
        channels = out
    return count


class _Spindles(nn.Module):
    """Shared input handling: batches are (B, T, muscles, 2) -> (B, 2, muscles, T)."""

    input_axes = ("time", "space", "channel")

    @staticmethod
    def _to_image(inputs: torch.Tensor) -> torch.Tensor:
        if inputs.ndim != 4:
            raise ValueError(f"DeepDraw models take (batch, time, muscles, channels) inputs, got {tuple(inputs.shape)}")
        return inputs.permute(0, 3, 2, 1)


class DeepDrawConv(_Spindles):
    """DeepDraw's ``ConvModel`` (see the module docstring)."""

    def __init__(self, input_shape, n_outputs, *, arch_type, n_skernels, n_tkernels, s_kernelsize, t_kernelsize,
                 s_stride, t_stride, keep_prob=0.7, task="classification"):
        super().__init__()
        n_time, n_muscles, n_channels = input_shape
        self.task = task
        plan = _layer_plan(arch_type, n_skernels, n_tkernels, s_kernelsize, t_kernelsize, s_stride, t_stride)
        channels, space, time = n_channels, n_muscles, n_time
        for name, out, kernel, stride in plan:
            self.add_module(name, _block(channels, out, kernel, stride))
            channels, space, time = out, math.ceil(space / stride[0]), math.ceil(time / stride[1])
        self.analysis_layers = [name for name, *_ in plan]
        self.dropout = nn.Dropout(1 - keep_prob)
        if task == "classification":
            self.classifier = nn.Linear(channels * space * time, n_outputs)
        else:  # per output step: every channel x muscle -> hand position
            self.readout = nn.Linear(channels * space, n_outputs)
        self.n_time = n_time

    def forward(self, inputs, session=None, **_):
        x = self._to_image(inputs)
        for name in self.analysis_layers:
            x = getattr(self, name)(x)
        if self.task == "classification":
            return self.classifier(self.dropout(x.flatten(1)))
        steps = x.permute(0, 3, 1, 2).flatten(2)  # (B, T_out, C * muscles)
        out = self.readout(self.dropout(steps))
        return F.interpolate(out.transpose(1, 2), size=self.n_time, mode="linear", align_corners=True).transpose(1, 2)


class DeepDrawRecurrent(_Spindles):
    """DeepDraw's recurrent family: spatial convolutions, an LSTM over time, a head on its last step."""

    def __init__(self, input_shape, n_outputs, *, n_skernels, s_kernelsize, s_stride, n_recunits, keep_prob=0.7,
                 task="classification"):
        super().__init__()
        n_time, n_muscles, n_channels = input_shape
        self.task = task
        channels, space = n_channels, n_muscles
        names = []
        for i, out in enumerate(n_skernels):
            self.add_module(f"spatial{i}", _block(channels, out, (s_kernelsize, 1), (s_stride, 1)))
            names.append(f"spatial{i}")
            channels, space = out, math.ceil(space / s_stride)
        self.recurrent = nn.LSTM(channels * space, n_recunits, batch_first=True)
        self.analysis_layers = [*names, "recurrent"]
        self.dropout = nn.Dropout(1 - keep_prob)
        self.classifier = nn.Linear(n_recunits, n_outputs)

    def forward(self, inputs, session=None, **_):
        x = self._to_image(inputs)
        for name in self.analysis_layers[:-1]:
            x = getattr(self, name)(x)
        hidden, _ = self.recurrent(x.permute(0, 3, 1, 2).flatten(2))  # (B, T, units)
        out = self.classifier(self.dropout(hidden))
        return out[:, -1] if self.task == "classification" else out


def _outputs(data_info) -> tuple[str, int]:
    if "labels" in data_info.provides:
        return "classification", data_info.n_classes
    if "targets" in data_info.provides and len(data_info.target_shape) == 1:
        return "trajectory", data_info.target_shape[0]
    raise ValueError(f"DeepDraw models need labels or (T, d) targets; the data provide {list(data_info.provides)}")


def build_deepdraw_conv(
    data_info,
    seed: int,
    *,
    arch_type: str = "spatial_temporal",
    n_skernels: list[int] = (8, 16),
    n_tkernels: list[int] = (16, 32),
    s_kernelsize: int = 5,
    t_kernelsize: int = 5,
    s_stride: int = 2,
    t_stride: int = 2,
    keep_prob: float = 0.7,
) -> nn.Module:
    """DeepDraw's ``ConvModel``; the task (classes or per-step hand position) follows the data.

    ``spatiotemporal`` uses ``n_skernels`` and the spatial kernel and stride for both axes, as
    DeepDraw does (its ``n_tkernels``, ``t_*`` are ignored). `BEST_CONFIGS` has the paper's best.
    """
    torch.manual_seed(seed)
    task, n_outputs = _outputs(data_info)
    if arch_type == "spatiotemporal":
        n_tkernels, t_kernelsize, t_stride = n_skernels, s_kernelsize, s_stride
    return DeepDrawConv(data_info.input_shape, n_outputs, arch_type=arch_type, n_skernels=list(n_skernels),
                        n_tkernels=list(n_tkernels), s_kernelsize=s_kernelsize, t_kernelsize=t_kernelsize,
                        s_stride=s_stride, t_stride=t_stride, keep_prob=keep_prob, task=task)


def build_deepdraw_recurrent(
    data_info,
    seed: int,
    *,
    n_skernels: list[int] = (8, 16),
    s_kernelsize: int = 5,
    s_stride: int = 2,
    n_recunits: int = 64,
    keep_prob: float = 0.7,
) -> nn.Module:
    """DeepDraw's recurrent family: spatial convolutions, then an LSTM (train with lr 1e-3)."""
    torch.manual_seed(seed)
    task, n_outputs = _outputs(data_info)
    return DeepDrawRecurrent(data_info.input_shape, n_outputs, n_skernels=list(n_skernels), s_kernelsize=s_kernelsize,
                             s_stride=s_stride, n_recunits=n_recunits, keep_prob=keep_prob, task=task)

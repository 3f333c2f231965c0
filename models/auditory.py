"""Auditory encoding models in the deepSTRF family, plus the AdapTrans ON/OFF front end.

Every model maps a spectrogram batch ``inputs`` (B, T, F) to predictions (B, T, N) for the
neurons of one session, causally: bin t sees bins <= t only (left zero padding). Families (as in
urancon/deepSTRF, re-implemented; differences are noted per class):

======== ===================================================================================
L        linear STRF: one (C, F, n_lags) kernel + bias per neuron (Theunissen et al. 2000)
LN       L followed by a pointwise output nonlinearity (softplus by default)
NRF      network receptive field: STRF kernels of H hidden units, tanh, 1x1 readout,
         output nonlinearity (Harper et al. 2016)
DNet     NRF with sigmoid hidden units followed by learnable exponential decays, and an
         output decay (Rahman et al. 2019)
2D-CNN   three (freq x time) convolutions with LeakyReLU, then a 2-layer readout per time bin
         (Pennington & David 2023)
StateNet per-bin spectral encoder (strided 1-D conv over frequency, sigmoid) then a GRU, linear
         readout (Rançon et al. 2025)
======== ===================================================================================

``front_end="adaptrans"`` puts the AdapTrans prefilter (Rançon, Masquelier & Cottereau 2024)
in front of any of them: per band an ON and an OFF high-pass exponential kernel, with 3
learnable parameters per band (ON decay, OFF decay, the shared weight w). Its decay per bin is
a = exp(-dt / tau), with tau (ms) initialised from the band's centre frequency
(tau = 500 - 105 log10(CF), Willmore et al. 2016) and ``dt`` the bin width in ms, explicit here:
by default ``1000 / DataInfo.sampling_rate`` (5 ms for NS1, 10 ms for NAT4). deepSTRF calls its
``tau_to_a`` with dt = 1 although its data are in 5 ms bins, i.e. its time constants are 5 times
longer than the cochlear map says; pass ``adaptrans_dt_ms=1.0`` to reproduce that.

Each session gets its own network (auditory neurons are fitted per recording). Parameter counts:
`parameter_count`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

__all__ = [
    "AdapTrans", "AuditoryModel", "CNN2D", "DNet", "LinearSTRF", "NRF", "StateNet",
    "build_strf_cnn2d", "build_strf_dnet", "build_strf_linear", "build_strf_ln", "build_strf_nrf",
    "build_strf_statenet", "parameter_count",
]

Nonlinearity = Literal["softplus", "exp", "sigmoid", "identity"]
FrontEnd = Literal["none", "adaptrans"]


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _output(name: str) -> nn.Module:
    return {"softplus": nn.Softplus(), "exp": _Exp(), "sigmoid": nn.Sigmoid(), "identity": nn.Identity()}[name]


class _Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x.clamp(max=20.0))  # clamped: an early large drive must not overflow


class AdapTrans(nn.Module):
    """ON/OFF adapting front end: (B, 1, F, T) -> (B, 2, F, T), rectified.

    Per band f, ON(t) = x(t) - w · Σ_k c_k x(t-k) and OFF(t) = Σ_k c_k x(t-k) - w · x(t), with
    c_k ∝ a^(k-1) (k = 1..kernel_size-1, Σ c_k = 1): the present against an exponential average
    of the recent past. Learnable per band: ``d_on`` and ``d_off`` (a = 1 / (1 + d²), so 0 < a
    < 1) and ``p`` (w = 1 / (1 + p²)): 3 parameters per band.

    Args:
        n_bands: frequency bands F.
        dt_ms: bin width in ms (a = exp(-dt / tau)).
        kernel_size: taps of each kernel (bins), the present included.
        min_freq, max_freq: centre frequencies (Hz) of the first and last band, mel-spaced.
        init_w: initial weight of the past average.
    """

    def __init__(self, n_bands: int, dt_ms: float, kernel_size: int = 20, min_freq: float = 500.0,
                 max_freq: float = 20000.0, init_w: float = 0.75):
        super().__init__()
        if kernel_size < 2 or dt_ms <= 0:
            raise ValueError("AdapTrans needs kernel_size >= 2 and dt_ms > 0")
        mel = torch.linspace(_hz_to_mel(min_freq), _hz_to_mel(max_freq), n_bands, dtype=torch.float64)
        cf = 700.0 * (10 ** (mel / 2595.0) - 1.0)
        tau_ms = 500.0 - 105.0 * torch.log10(cf)
        a = torch.exp(-dt_ms / tau_ms)
        d = torch.sqrt(1.0 / a - 1.0).float()
        self.kernel_size, self.dt_ms = int(kernel_size), float(dt_ms)
        self.d_on = nn.Parameter(d.clone())
        self.d_off = nn.Parameter(d.clone())
        self.p = nn.Parameter(torch.full((n_bands,), math.sqrt(1.0 / init_w - 1.0)))

    def kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """ON and OFF kernels (F, 1, kernel_size), oldest tap first (for conv1d)."""
        powers = torch.arange(self.kernel_size - 1, device=self.p.device, dtype=self.p.dtype)
        w = 1.0 / (1.0 + self.p**2)

        def past(d):
            a = 1.0 / (1.0 + d**2)
            c = a[:, None] ** powers[None, :]
            return (c / c.sum(1, keepdim=True)).flip(1)  # oldest first

        ones = torch.ones_like(w)[:, None]
        on = torch.cat([-w[:, None] * past(self.d_on), ones], 1)
        off = torch.cat([past(self.d_off), -w[:, None]], 1)
        return on[:, None], off[:, None]

    def time_constants_ms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(tau_on, tau_off) per band in ms, from the current decays and ``dt_ms``."""
        return tuple(-self.dt_ms / torch.log(1.0 / (1.0 + d.detach() ** 2)) for d in (self.d_on, self.d_off))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x[:, 0]  # (B, F, T)
        padded = nn.functional.pad(bands, (self.kernel_size - 1, 0), mode="replicate")
        on, off = self.kernels()
        groups = bands.shape[1]
        out = [nn.functional.conv1d(padded, k, groups=groups) for k in (on, off)]
        return torch.relu(torch.stack(out, 1))


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


class _CausalSTRF(nn.Module):
    """(B, C, F, T) -> (B, out, T): one full (C, F, n_lags) kernel per output unit, causal."""

    def __init__(self, channels: int, n_bands: int, n_lags: int, out: int):
        super().__init__()
        self.n_lags = n_lags
        self.conv = nn.Conv2d(channels, out, kernel_size=(n_bands, n_lags))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (self.n_lags - 1, 0)))[:, :, 0]

    def strf(self) -> torch.Tensor:
        """(out, C, n_lags, F) with lag 0 = the present bin (the ground-truth layout)."""
        return self.conv.weight.detach().flip(-1).transpose(-1, -2)


class LinearSTRF(nn.Module):
    """L / LN model of one session: STRF convolution + bias, then ``nonlinearity``.

    Differs from deepSTRF's L: no causal LayerNorm over frequency (the loaders z-score bands on
    train data instead), so the kernel is exactly a linear STRF and a ridge fit can set it.
    """

    def __init__(self, channels: int, n_bands: int, n_lags: int, n_neurons: int, nonlinearity: Nonlinearity):
        super().__init__()
        self.strf_layer = _CausalSTRF(channels, n_bands, n_lags, n_neurons)
        self.output = _output(nonlinearity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, F, T) -> (B, N, T)
        return self.output(self.strf_layer(x))


class NRF(nn.Module):
    """Network receptive field: H STRF hidden units, tanh, 1x1 readout, output nonlinearity."""

    def __init__(self, channels: int, n_bands: int, n_lags: int, n_neurons: int, hidden: int,
                 nonlinearity: Nonlinearity):
        super().__init__()
        self.hidden = _CausalSTRF(channels, n_bands, n_lags, hidden)
        self.readout = nn.Conv1d(hidden, n_neurons, 1)
        self.output = _output(nonlinearity)

    def forward(self, x):
        return self.output(self.readout(torch.tanh(self.hidden(x))))


class _ExponentialDecay(nn.Module):
    """Per-channel causal leaky integration, y(t) = Σ_k exp(-k/tau) u(t-k) / (1 + d²), tau learnable."""

    def __init__(self, channels: int, kernel_size: int, init_tau: float):
        super().__init__()
        self.kernel_size = kernel_size
        self.log_tau = nn.Parameter(torch.full((channels,), math.log(init_tau)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        k = torch.arange(self.kernel_size - 1, -1, -1, device=u.device, dtype=u.dtype)
        kernel = torch.exp(-k[None, :] / torch.exp(self.log_tau)[:, None])
        kernel = kernel / kernel.sum(1, keepdim=True)
        return nn.functional.conv1d(nn.functional.pad(u, (self.kernel_size - 1, 0)), kernel[:, None], groups=u.shape[1])


class DNet(nn.Module):
    """Dynamic network: STRF hidden units, sigmoid, exponential decay, 1x1 readout, sigmoid, decay.

    As deepSTRF's DNet, with the output sigmoid replaced by ``nonlinearity`` (softplus: rates
    are not bounded by 1) and no LayerNorms.
    """

    def __init__(self, channels, n_bands, n_lags, n_neurons, hidden, init_tau: float, nonlinearity: Nonlinearity):
        super().__init__()
        size = max(2, round(7 * init_tau))
        self.hidden = _CausalSTRF(channels, n_bands, n_lags, hidden)
        self.hidden_decay = _ExponentialDecay(hidden, size, init_tau)
        self.readout = nn.Conv1d(hidden, n_neurons, 1)
        self.output = _output(nonlinearity)
        self.output_decay = _ExponentialDecay(n_neurons, size, init_tau)

    def forward(self, x):
        h = self.hidden_decay(torch.sigmoid(self.hidden(x)))
        return self.output_decay(self.output(self.readout(h)))


class CNN2D(nn.Module):
    """Three (frequency x time) convolutions (valid in frequency, causal in time), LeakyReLU(0.1),
    then per time bin Linear(C·F_down, hidden), LeakyReLU, Linear(hidden, N), output nonlinearity.

    As deepSTRF's ConvNet2D without the causal LayerNorms.
    """

    def __init__(self, channels, n_bands, n_neurons, conv_channels: int, kernel: tuple[int, int], hidden: int,
                 nonlinearity: Nonlinearity):
        super().__init__()
        kf, kt = kernel
        f_down = n_bands - 3 * (kf - 1)
        if f_down < 1:
            raise ValueError(f"a frequency kernel of {kf} leaves no band of {n_bands} after 3 convolutions")
        self.pad = 3 * (kt - 1)
        layers, c = [], channels
        for _ in range(3):
            layers += [nn.Conv2d(c, conv_channels, kernel), nn.LeakyReLU(0.1)]
            c = conv_channels
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(conv_channels * f_down, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, n_neurons))
        self.output = _output(nonlinearity)

    def forward(self, x):
        y = self.convs(nn.functional.pad(x, (self.pad, 0)))  # (B, C, F_down, T)
        y = self.fc(y.flatten(1, 2).transpose(1, 2))  # (B, T, N)
        return self.output(y).transpose(1, 2)


class StateNet(nn.Module):
    """Per-bin spectral encoder (Conv1d over frequency, stride, sigmoid) then a GRU and a readout.

    As deepSTRF's StateNet with the 'CONV' encoder and a GRU; its hidden size is the encoder's
    output size (channels x downsampled bands), as there.
    """

    def __init__(self, channels, n_bands, n_neurons, encoder_channels: int, kernel: int, stride: int,
                 nonlinearity: Nonlinearity):
        super().__init__()
        self.encoder = nn.Conv1d(channels, encoder_channels, kernel, stride=stride)
        size = encoder_channels * ((n_bands - kernel) // stride + 1)
        self.rnn = nn.GRU(size, size, batch_first=True)
        self.readout = nn.Linear(size, n_neurons)
        self.output = _output(nonlinearity)

    def forward(self, x):
        b, c, f, t = x.shape
        frames = x.permute(0, 3, 1, 2).reshape(b * t, c, f)
        encoded = torch.sigmoid(self.encoder(frames)).reshape(b, t, -1)
        states, _ = self.rnn(encoded)
        return self.output(self.readout(states)).transpose(1, 2)


class AuditoryModel(nn.Module):
    """One network per session behind an optional AdapTrans front end.

    Called as ``model(inputs, session)`` with ``inputs`` (B, T, F); returns (B, T, N).
    """

    def __init__(self, networks: dict[str, nn.Module], front_end: nn.Module | None, family: str):
        super().__init__()
        self.front_end = front_end if front_end is not None else nn.Identity()
        self.networks = nn.ModuleDict(networks)
        self.family = family

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The front end's output (B, C, F, T) for spectrograms (B, T, F)."""
        return self.front_end(inputs.transpose(1, 2)[:, None])

    def forward(self, inputs: torch.Tensor, session: str) -> torch.Tensor:
        return self.networks[session](self.features(inputs)).transpose(1, 2)

    def strf(self, session: str) -> torch.Tensor:
        """The fitted STRFs (N, C, n_lags, F) of a linear / LN model (lag 0 = the present bin)."""
        network = self.networks[session]
        if not isinstance(network, LinearSTRF):
            raise TypeError(f"a {self.family} model has no single STRF per neuron; only L and LN models do")
        return network.strf_layer.strf()


def _front_end(data_info, front_end: FrontEnd, dt_ms: float | None, kernel_size: int) -> tuple[nn.Module | None, int]:
    if data_info.modality != "spectrogram":
        raise ValueError(f"auditory models take spectrograms; these data are {data_info.modality!r}")
    if front_end == "none":
        return None, 1
    if dt_ms is None:
        if not data_info.sampling_rate:
            raise ValueError("AdapTrans needs the bin width: the data have no sampling_rate, pass adaptrans_dt_ms")
        dt_ms = 1000.0 / data_info.sampling_rate
    return AdapTrans(data_info.axis_size("frequency"), dt_ms, kernel_size), 2


def _build(data_info, family, front_end, dt_ms, kernel_size, make) -> AuditoryModel:
    head, channels = _front_end(data_info, front_end, dt_ms, kernel_size)
    bands = data_info.axis_size("frequency")
    networks = {s: make(channels, bands, n) for s, n in data_info.n_neurons.items()}
    return AuditoryModel(networks, head, family)


def build_strf_linear(data_info, seed: int, *, n_lags: int = 15, front_end: FrontEnd = "none",
                      adaptrans_dt_ms: float | None = None, adaptrans_kernel: int = 20) -> AuditoryModel:
    """L model: a linear STRF of ``n_lags`` bins per neuron (parameters N·(C·F·n_lags + 1)).

    Args:
        data_info: the spectrogram data's `DataInfo`.
        seed: unused (weights come from torch's global RNG, seeded by the caller).
        n_lags: STRF length in bins, the present included.
        front_end: "adaptrans" for the ON/OFF prefilter (C = 2 channels), else "none" (C = 1).
        adaptrans_dt_ms: bin width for AdapTrans time constants (None: 1000 / sampling_rate).
        adaptrans_kernel: AdapTrans taps per kernel (bins).
    """
    return _build(data_info, "L", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: LinearSTRF(c, f, n_lags, n, "identity"))


def build_strf_ln(data_info, seed: int, *, n_lags: int = 15, nonlinearity: Nonlinearity = "softplus",
                  front_end: FrontEnd = "none", adaptrans_dt_ms: float | None = None,
                  adaptrans_kernel: int = 20) -> AuditoryModel:
    """LN model: the L model followed by ``nonlinearity`` (deepSTRF uses a sigmoid; softplus keeps
    Poisson rates positive and unbounded). Other arguments as `build_strf_linear`."""
    return _build(data_info, "LN", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: LinearSTRF(c, f, n_lags, n, nonlinearity))


def build_strf_nrf(data_info, seed: int, *, n_lags: int = 15, hidden: int = 40, nonlinearity: Nonlinearity = "softplus",
                   front_end: FrontEnd = "none", adaptrans_dt_ms: float | None = None,
                   adaptrans_kernel: int = 20) -> AuditoryModel:
    """NRF model with ``hidden`` STRF units (Harper et al. 2016). Other arguments as `build_strf_ln`.

    The hidden units are shared by the session's neurons (deepSTRF fits 64 per neuron). With
    as many units as neurons each neuron's readout has to find "its" unit: on the synthetic
    default (20 LN neurons) 20 units reached test CCnorm 0.90-0.92, 40 units 0.93-0.95.
    """
    return _build(data_info, "NRF", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: NRF(c, f, n_lags, n, hidden, nonlinearity))


def build_strf_dnet(data_info, seed: int, *, n_lags: int = 15, hidden: int = 20, init_tau: float = 2.0,
                    nonlinearity: Nonlinearity = "softplus", front_end: FrontEnd = "none",
                    adaptrans_dt_ms: float | None = None, adaptrans_kernel: int = 20) -> AuditoryModel:
    """DNet model (Rahman et al. 2019); ``init_tau`` is the initial decay time constant in bins."""
    return _build(data_info, "DNet", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: DNet(c, f, n_lags, n, hidden, init_tau, nonlinearity))


def build_strf_cnn2d(data_info, seed: int, *, conv_channels: int = 8, kernel: tuple[int, int] = (3, 5),
                     hidden: int = 20, nonlinearity: Nonlinearity = "softplus", front_end: FrontEnd = "none",
                     adaptrans_dt_ms: float | None = None, adaptrans_kernel: int = 20) -> AuditoryModel:
    """2D-CNN model (Pennington & David 2023): 3 convolutions of ``kernel`` (bands, bins), so a
    receptive field of 3·(bins - 1) + 1 bins. Other arguments as `build_strf_ln`."""
    return _build(data_info, "2D-CNN", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: CNN2D(c, f, n, conv_channels, tuple(kernel), hidden, nonlinearity))


def build_strf_statenet(data_info, seed: int, *, encoder_channels: int = 4, kernel: int = 7, stride: int = 3,
                        nonlinearity: Nonlinearity = "softplus", front_end: FrontEnd = "none",
                        adaptrans_dt_ms: float | None = None, adaptrans_kernel: int = 20) -> AuditoryModel:
    """StateNet model (Rançon et al. 2025): spectral encoder then a GRU. Other arguments as `build_strf_ln`."""
    return _build(data_info, "StateNet", front_end, adaptrans_dt_ms, adaptrans_kernel,
                  lambda c, f, n: StateNet(c, f, n, encoder_channels, kernel, stride, nonlinearity))

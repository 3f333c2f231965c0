"""Data-trained latent-variable models of spiking data (torch only).

Both are called as ``model(inputs, session, encod_data=spikes)`` with ``inputs`` (B, T, I) the
task inputs and ``encod_data`` (B, T, N_in) the held-in spikes, and return rates (B, T, N) of all
neurons (held-in and held-out). ``model.run(...)`` returns ``(rates, latents)``.

* **SAE** (CtD ``data_modeling/models/SAE``): a bidirectional GRU reads the spikes (all steps but
  the last, as CtD), its final states map to an initial condition, a decoder driven by the task
  inputs (GRU cell, NODE = MLP vector field with an Euler step, or linear dynamics) unrolls the
  latents, and a linear readout gives log-rates.
* **LFADS** (Pandarinath et al. 2018; lfads-torch's structure, written from the paper): an IC
  encoder (bidirectional GRU) gives a Gaussian posterior over g0 (KL to N(0, I)); the generator
  GRU, driven by the task inputs and, optionally, by controller outputs u_t (a controller GRU
  reading a second bidirectional encoding, with its own Gaussian posterior and KL), produces
  factors through a linear layer, then log-rates. Coordinated dropout (Keshtkaran & Pandarinath
  2019): while training, each held-in spike entry is dropped from the input with probability
  ``cd_rate`` (the rest scaled by 1/(1 - p)) and only the dropped entries, plus every held-out
  neuron, count in the loss: ``model.loss_weights()`` gives that mask for the trainer.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["LFADS", "SAE", "build_lfads", "build_sae"]


class _Linear(nn.Module):
    """Linear dynamics h_t = A h_{t-1} + B u_t + c."""

    def __init__(self, n_inputs: int, latent_size: int):
        super().__init__()
        self.state = nn.Linear(latent_size, latent_size)
        self.input = nn.Linear(n_inputs, latent_size, bias=False)
        with torch.no_grad():
            self.state.weight.copy_(torch.eye(latent_size) * 0.95)

    def forward(self, u, h):
        return self.state(h) + self.input(u)


class _Node(nn.Module):
    def __init__(self, n_inputs: int, latent_size: int, hidden: int, dt: float):
        super().__init__()
        self.field = nn.Sequential(nn.Linear(latent_size + n_inputs, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, latent_size))
        self.dt = dt

    def forward(self, u, h):
        return h + self.dt * self.field(torch.cat([h, u], -1))


def _decoder(kind: str, n_inputs: int, latent_size: int, hidden: int, dt: float) -> nn.Module:
    if kind == "gru":
        return nn.GRUCell(n_inputs, latent_size)
    if kind == "node":
        return _Node(n_inputs, latent_size, hidden, dt)
    if kind == "linear":
        return _Linear(n_inputs, latent_size)
    raise ValueError(f"decoder {kind!r}: choose 'gru', 'node' or 'linear'")


def _unroll(cell: nn.Module, inputs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    states = []
    for u in inputs.unbind(1):
        h = cell(u, h)
        states.append(h)
    return torch.stack(states, 1)


class SAE(nn.Module):
    """Sequential autoencoder (see the module docstring)."""

    def __init__(self, n_heldin: int, n_neurons: int, n_inputs: int, *, latent_size: int, encoder_size: int,
                 decoder: str, dropout: float, hidden: int = 64, dt: float = 0.1):
        super().__init__()
        self.encoder = nn.GRU(n_heldin, encoder_size, batch_first=True, bidirectional=True)
        self.ic = nn.Linear(2 * encoder_size, latent_size)
        self.dropout = nn.Dropout(dropout)
        self.decoder = _decoder(decoder, n_inputs, latent_size, hidden, dt)
        self.readout = nn.Linear(latent_size, n_neurons)
        self.n_heldin = n_heldin

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One decoder step F(h, u) for fixed-point analysis: (K, L), (K, I) -> (K, L)."""
        return self.decoder(u, h)

    def run(self, inputs: torch.Tensor, encod_data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, last = self.encoder(encod_data[:, :-1])
        ic = self.dropout(self.ic(self.dropout(torch.cat([last[0], last[1]], -1))))
        latents = _unroll(self.decoder, inputs, ic)
        return torch.exp(self.readout(latents).clamp(max=20.0)), latents

    def forward(self, inputs: torch.Tensor, session: str = "all", *, encod_data: torch.Tensor) -> torch.Tensor:
        return self.run(inputs, encod_data)[0]


def _kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over the last axis, mean over the rest."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


class LFADS(nn.Module):
    """LFADS with optional controller and coordinated dropout (see the module docstring)."""

    def __init__(self, n_heldin: int, n_neurons: int, n_inputs: int, *, ic_encoder: int, generator: int,
                 factors: int, controller: int, controller_outputs: int, ci_encoder: int, dropout: float,
                 cd_rate: float, kl_weight: float, l2: float):
        super().__init__()
        self.n_heldin, self.n_neurons, self.cd_rate = n_heldin, n_neurons, cd_rate
        self.kl_weight, self.l2 = kl_weight, l2
        self.ic_encoder = nn.GRU(n_heldin, ic_encoder, batch_first=True, bidirectional=True)
        self.ic_post = nn.Linear(2 * ic_encoder, 2 * generator)
        self.use_controller = controller > 0
        gen_in = n_inputs + (controller_outputs if self.use_controller else 0)
        if self.use_controller:
            self.ci_encoder = nn.GRU(n_heldin, ci_encoder, batch_first=True, bidirectional=True)
            self.controller = nn.GRUCell(2 * ci_encoder + factors, controller)
            self.co_post = nn.Linear(controller, 2 * controller_outputs)
        self.generator = nn.GRUCell(gen_in, generator)
        self.factors = nn.Linear(generator, factors)
        self.readout = nn.Linear(factors, n_neurons)
        self.dropout = nn.Dropout(dropout)
        self._kl = torch.zeros(())
        self._weights: torch.Tensor | None = None

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One generator step without controller input, for fixed-point analysis."""
        if self.use_controller:
            u = torch.cat([u, torch.zeros(len(u), self.co_post.out_features // 2, device=u.device)], -1)
        return self.generator(u, h)

    def _sample(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = params.chunk(2, -1)
        logvar = logvar.clamp(-10, 10)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        return z, _kl(mean, logvar)

    def _coordinated_dropout(self, spikes: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.cd_rate > 0):
            self._weights = None
            return spikes
        keep = (torch.rand_like(spikes) >= self.cd_rate).float()
        weights = torch.ones(*spikes.shape[:2], self.n_neurons, device=spikes.device)
        weights[..., : self.n_heldin] = 1.0 - keep  # only dropped entries teach the readout
        self._weights = weights
        return spikes * keep / (1.0 - self.cd_rate)

    def run(self, inputs: torch.Tensor, encod_data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes = self._coordinated_dropout(encod_data)
        _, last = self.ic_encoder(self.dropout(spikes))
        g, kl = self._sample(self.ic_post(self.dropout(torch.cat([last[0], last[1]], -1))))
        ci = self.ci_encoder(self.dropout(spikes))[0] if self.use_controller else None
        c = torch.zeros(len(inputs), self.controller.hidden_size, device=inputs.device) if ci is not None else None
        f = self.factors(g)
        gens, kl_co = [], torch.zeros((), device=inputs.device)
        for t, u in enumerate(inputs.unbind(1)):
            if ci is not None:
                c = self.controller(torch.cat([ci[:, t], f], -1), c)
                co, kl_t = self._sample(self.co_post(self.dropout(c)))
                kl_co = kl_co + kl_t
                u = torch.cat([u, co], -1)
            g = self.generator(u, g)
            f = self.factors(self.dropout(g))
            gens.append(g)
        latents = torch.stack(gens, 1)
        self._kl = kl + kl_co / inputs.shape[1]
        return torch.exp(self.readout(self.factors(latents)).clamp(max=20.0)), latents

    def forward(self, inputs: torch.Tensor, session: str = "all", *, encod_data: torch.Tensor) -> torch.Tensor:
        return self.run(inputs, encod_data)[0]

    def loss_weights(self) -> torch.Tensor | None:
        """(B, T, N) weights of the last training pass under coordinated dropout (None: all 1)."""
        return self._weights

    def regularizer(self, session: str) -> torch.Tensor:
        """KL of the posteriors (weighted) plus L2 on the generator's recurrent weights."""
        l2 = self.l2 * self.generator.weight_hh.pow(2).sum()
        return self.kl_weight * self._kl + l2 if self.training else l2


def _sizes(data_info) -> tuple[int, int, int]:
    extra = data_info.extra
    if "n_heldin" not in extra or not data_info.time_resolved or "responses" not in data_info.provides:
        raise ValueError("latent models need sequence spiking data with held-in neurons "
                         "(DataInfo.extra['n_heldin'], e.g. from neurofit.ctd_spikes or neurofit.nwb_spikes)")
    return int(extra["n_heldin"]), int(data_info.n_neurons["all"]), int(data_info.input_shape[-1])


def build_sae(data_info, seed: int, *, latent_size: int = 16, encoder_size: int = 64,
              decoder: Literal["gru", "node", "linear"] = "gru", dropout: float = 0.05, hidden: int = 64,
              dt: float = 0.1) -> SAE:
    """CtD's sequential autoencoder (GRU, NODE or linear decoder)."""
    torch.manual_seed(seed)
    return SAE(*_sizes(data_info), latent_size=latent_size, encoder_size=encoder_size, decoder=decoder,
               dropout=dropout, hidden=hidden, dt=dt)


def build_lfads(data_info, seed: int, *, ic_encoder: int = 128, generator: int = 128, factors: int = 128,
                controller: int = 0, controller_outputs: int = 0, ci_encoder: int = 0, dropout: float = 0.05,
                cd_rate: float = 0.3, kl_weight: float = 1e-4, l2: float = 1e-5) -> LFADS:
    """LFADS (CtD's NBFF config by default: 128 units each, CD 0.3, no controller)."""
    torch.manual_seed(seed)
    if controller and not (controller_outputs and ci_encoder):
        raise ValueError("a controller needs controller_outputs >= 1 and ci_encoder >= 1")
    return LFADS(*_sizes(data_info), ic_encoder=ic_encoder, generator=generator, factors=factors,
                 controller=controller, controller_outputs=controller_outputs, ci_encoder=ci_encoder,
                 dropout=dropout, cd_rate=cd_rate, kl_weight=kl_weight, l2=l2)

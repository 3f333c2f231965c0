"""Task-trained recurrent models of the Computation-Through-Dynamics benchmark (torch only).

One module, `TaskRNN`, with four kinds of one-step dynamics ``h_t = F(h_{t-1}, u_t)``:

* ``noisy_gru``: CtD's NoisyGRU: a GRU cell, Gaussian noise of s.d. ``latent_noise`` added to
  the state after every step and initial states drawn around a learned mean with variance
  ``ic_variance`` (both during training only), and an L2 penalty ``l2 * mean(h²)`` on the
  latents, returned by ``model.regularizer(session)`` (which `neurofit.supervised` adds);
* ``gru`` and ``rnn`` (tanh vanilla RNN): the same without noise (unless configured);
* ``node``: a neural ODE, an MLP vector field f([h, u]) integrated with a fixed Euler step,
  ``h_t = h_{t-1} + dt * f([h_{t-1}, u_t])`` (CtD ``task_modeling/model/node.py``).

A linear readout maps latents to task outputs. ``model(inputs, session)`` returns the outputs
(B, T, n_out); ``model.run(inputs)`` returns ``(outputs, latents)`` with latents (B, T, L), and
``model.step(h, u)`` is F, batched over states, which the fixed-point analysis optimises.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TaskRNN", "build_gru", "build_node", "build_noisy_gru", "build_vanilla_rnn"]


class _NodeCell(nn.Module):
    """Euler step of an MLP vector field over [state, input]."""

    def __init__(self, n_inputs: int, latent_size: int, hidden: int, layers: int, dt: float):
        super().__init__()
        sizes = [latent_size + n_inputs] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.field = nn.Sequential(*blocks, nn.Linear(sizes[-1], latent_size))
        self.dt = dt

    def forward(self, u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return h + self.dt * self.field(torch.cat([h, u], dim=-1))


class TaskRNN(nn.Module):
    """A recurrent network trained on a task (see the module docstring).

    Args:
        n_inputs, n_outputs: task input and output dimensions.
        cell: "noisy_gru", "gru", "rnn" or "node".
        latent_size: dimension of the state.
        latent_noise: s.d. of the state noise per step while training.
        ic_variance: variance of the initial states around their learned mean while training.
        l2: weight of the mean squared latent activity in `regularizer`.
        hidden, layers, dt: the NODE's vector field and Euler step.
    """

    def __init__(self, n_inputs: int, n_outputs: int, *, cell: str, latent_size: int, latent_noise: float = 0.0,
                 ic_variance: float = 0.0, l2: float = 0.0, hidden: int = 64, layers: int = 2, dt: float = 0.1):
        super().__init__()
        if cell in ("noisy_gru", "gru"):
            self.cell = nn.GRUCell(n_inputs, latent_size)
        elif cell == "rnn":
            self.cell = nn.RNNCell(n_inputs, latent_size, nonlinearity="tanh")
        elif cell == "node":
            self.cell = _NodeCell(n_inputs, latent_size, hidden, layers, dt)
        else:
            raise ValueError(f"cell {cell!r}: choose 'noisy_gru', 'gru', 'rnn' or 'node'")
        self.kind = cell
        self.latent_size = latent_size
        self.latent_noise, self.ic_variance, self.l2 = latent_noise, ic_variance, l2
        self.ic = nn.Parameter(torch.zeros(latent_size))
        self.readout = nn.Linear(latent_size, n_outputs)
        self._latents: torch.Tensor | None = None

    def step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One noiseless step F(h, u): h (K, L), u (K, n_inputs) -> (K, L)."""
        return self.cell(u, h)

    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs (B, T, n_out) and latents (B, T, L) for inputs (B, T, n_inputs)."""
        h = self.ic.expand(inputs.shape[0], -1)
        if self.training and self.ic_variance > 0:
            h = h + torch.randn_like(h) * self.ic_variance**0.5
        states = []
        for u in inputs.unbind(1):
            h = self.cell(u, h)
            if self.training and self.latent_noise > 0:
                h = h + torch.randn_like(h) * self.latent_noise
            states.append(h)
        latents = torch.stack(states, dim=1)
        return self.readout(latents), latents

    def forward(self, inputs: torch.Tensor, session: str = "all") -> torch.Tensor:
        outputs, latents = self.run(inputs)
        self._latents = latents if self.training else None
        return outputs

    def regularizer(self, session: str) -> torch.Tensor:
        """``l2 * mean(h²)`` of the latents of the last training forward pass (0 without one)."""
        if self._latents is None or not self.l2:
            return torch.zeros((), device=self.ic.device)
        return self.l2 * self._latents.pow(2).mean()


def _sizes(data_info) -> tuple[int, int]:
    if not data_info.time_resolved or "targets" not in data_info.provides:
        raise ValueError("task RNNs need sequence data that provide targets (inputs (B, T, n_in), targets (B, T, n_out))")
    return data_info.input_shape[-1], int(torch.tensor(data_info.target_shape).prod())


def build_noisy_gru(data_info, seed: int, *, latent_size: int = 64, latent_noise: float = 0.01,
                    ic_variance: float = 0.05, l2: float = 1e-6) -> TaskRNN:
    """CtD's NoisyGRU (defaults from its NBFF config)."""
    torch.manual_seed(seed)
    return TaskRNN(*_sizes(data_info), cell="noisy_gru", latent_size=latent_size, latent_noise=latent_noise,
                   ic_variance=ic_variance, l2=l2)


def build_gru(data_info, seed: int, *, latent_size: int = 64, l2: float = 0.0) -> TaskRNN:
    """A plain GRU with a linear readout."""
    torch.manual_seed(seed)
    return TaskRNN(*_sizes(data_info), cell="gru", latent_size=latent_size, l2=l2)


def build_vanilla_rnn(data_info, seed: int, *, latent_size: int = 64, latent_noise: float = 0.0,
                      l2: float = 0.0) -> TaskRNN:
    """A tanh RNN with a linear readout."""
    torch.manual_seed(seed)
    return TaskRNN(*_sizes(data_info), cell="rnn", latent_size=latent_size, latent_noise=latent_noise, l2=l2)


def build_node(data_info, seed: int, *, latent_size: int = 3, hidden: int = 64, layers: int = 2, dt: float = 0.1,
               latent_noise: float = 0.0, l2: float = 0.0) -> TaskRNN:
    """A neural ODE: an MLP vector field with a fixed Euler step (CtD's NODE)."""
    torch.manual_seed(seed)
    return TaskRNN(*_sizes(data_info), cell="node", latent_size=latent_size, hidden=hidden, layers=layers, dt=dt,
                   latent_noise=latent_noise, l2=l2)

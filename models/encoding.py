"""Encoding models: a shared convolutional core with one Gaussian readout per recording session.

The architecture follows Lurz et al. (2021, ICLR, "Generalization in data-driven models of primary
visual cortex") as implemented in neuralpredictors: a ``Stacked2dCore`` computes feature maps
shared by all neurons; each neuron reads out one feature vector at a learned position (a
``FullGaussian2d`` readout samples that position from a learned Gaussian during training and uses
its mean at evaluation); an ELU + 1 makes the output a positive rate for a Poisson loss.
"""

from __future__ import annotations

import torch
from neuralpredictors.layers.cores import Stacked2dCore
from neuralpredictors.layers.readouts import FullGaussian2d, MultiReadoutBase
from torch import nn

# models/__init__.py already ran the compatibility fixes; importing them here too keeps this module
# correct even if that package import changes.
from . import _neuralpredictors_compat  # noqa: F401,I001

__all__ = ["GaussianReadoutCNN", "build_gaussian_cnn"]


class GaussianReadoutCNN(nn.Module):
    """Shared core, per-session readouts, ELU + 1 output.

    Attributes:
        core: maps (batch, channels, height, width) to (batch, core_channels, height', width').
        readout: ``MultiReadoutBase`` (a ModuleDict) of ``FullGaussian2d``, one per session.
        elu_offset: added before the final ELU; shifts where the output becomes exponential.
    """

    def __init__(self, core: nn.Module, readout: MultiReadoutBase, elu_offset: float = 0.0):
        super().__init__()
        self.core = core
        self.readout = readout
        self.elu_offset = elu_offset

    @property
    def sessions(self) -> list[str]:
        """Session names the model can predict, in data order."""
        return list(self.readout.keys())

    def _check_session(self, session: str) -> None:
        if session not in self.readout:
            raise KeyError(f"unknown session {session!r}; the model has {self.sessions}")

    def forward(self, inputs: torch.Tensor, session: str) -> torch.Tensor:
        """Predicts expected responses.

        Args:
            inputs: stimuli, shape (batch, channels, height, width) as in ``DataInfo.input_shape``.
            session: which session's neurons to predict.

        Returns:
            Positive rates, shape (batch, n_neurons of ``session``).
        """
        self._check_session(session)
        features = self.core(inputs)
        return nn.functional.elu(self.readout[session](features) + self.elu_offset) + 1.0

    @property
    def analysis_layers(self) -> list[str]:
        """Module names whose outputs analyses probe by default: each core layer after its nonlinearity."""
        return [f"core.features.{name}" for name, _ in self.core.features.named_children()]

    def regularizer(self, session: str) -> torch.Tensor:
        """Penalty the trainer adds to the loss of a batch from ``session``.

        Returns:
            Scalar: core penalty (Laplace smoothness of the input filters, group sparsity of the
            hidden filters) plus the L1 penalty on ``session``'s readout feature weights.
        """
        self._check_session(session)
        return self.core.regularizer() + self.readout.regularizer(session)


def _inverse_elu1(rate: torch.Tensor, offset: float) -> torch.Tensor:
    """x such that elu(x + offset) + 1 == rate, for rate > 0 (elu + 1 is exp below 0)."""
    rate = rate.clamp(min=1e-3)
    return torch.where(rate > 1.0, rate - 1.0, torch.log(rate)) - offset


def build_gaussian_cnn(
    data_info,
    seed: int,
    *,
    hidden_channels: int = 16,
    layers: int = 3,
    input_kernel: int = 9,
    hidden_kernel: int = 7,
    gamma_input: float = 0.5,
    gamma_hidden: float = 0.0,
    gamma_readout: float = 0.002,
    batch_norm_momentum: float = 0.1,
    readout_all_layers: bool = True,
    init_mu_range: float = 0.3,
    init_sigma: float = 0.1,
    gauss_type: str = "full",
    elu_offset: float = 0.0,
    init_bias_from_mean: bool = True,
) -> GaussianReadoutCNN:
    """Builds a Stacked2dCore + FullGaussian2d-per-session encoding model.

    The weights depend only on ``seed`` and the hyperparameters: they are drawn from a private
    copy of torch's RNG, so building a model neither depends on nor changes the global RNG state.

    Args:
        data_info: a ``neurofit.datasets.info.DataInfo`` of still images with neural responses;
            uses ``input_shape`` (channel, height, width), ``n_neurons`` and, if present,
            ``mean_response[session]`` (one mean response per neuron) to initialise the readout
            biases.
        seed: seed of the weight initialisation.
        hidden_channels: feature maps per core layer.
        layers: convolutional layers in the core.
        input_kernel: kernel size of the first layer.
        hidden_kernel: kernel size of the other layers.
        gamma_input: weight of the (normalised) Laplace smoothness penalty on first-layer filters.
        gamma_hidden: weight of the group-sparsity penalty on hidden-layer filters.
        gamma_readout: weight of the L1 penalty on readout feature weights (summed over neurons).
        batch_norm_momentum: momentum of the core's batch-norm running statistics.
        readout_all_layers: read out from all core layers stacked (True) or only the last.
        init_mu_range: initial readout positions are uniform in [-init_mu_range, init_mu_range]
            (in units of the half image size).
        init_sigma: initial spread of the readout position Gaussians.
        gauss_type: "full", "uncorrelated" or "isotropic" covariance of the readout positions.
        elu_offset: shift inside the output ELU.
        init_bias_from_mean: set readout biases so the initial output is about each neuron's mean
            response (if ``mean_response`` is known); otherwise biases start at the value giving
            an output of 1.

    Returns:
        ``GaussianReadoutCNN``; ``model(inputs, session)`` has shape (batch, n_neurons[session]).

    Raises:
        ValueError: if the data are not images (channel, height, width) with neural responses,
            or a ``mean_response`` entry has the wrong length.
    """
    input_shape = tuple(data_info.input_shape)
    axes = tuple(data_info.input_axes)
    if data_info.modality != "image" or axes != ("channel", "height", "width"):
        raise ValueError(
            f"expected images with input_axes (channel, height, width); the data are "
            f"{data_info.modality!r} with axes {axes} and input_shape {input_shape}"
        )
    if "responses" not in data_info.provides:
        raise ValueError(f"an encoding model needs neural responses; the data provide {list(data_info.provides)}")
    mean_response = data_info.mean_response if init_bias_from_mean else {}

    # fork_rng keeps the caller's RNG stream untouched, so building a model inside a training
    # script does not change what the script draws next.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        core = Stacked2dCore(
            input_channels=input_shape[0],
            hidden_channels=hidden_channels,
            input_kern=input_kernel,
            hidden_kern=hidden_kernel,
            layers=layers,
            gamma_input=gamma_input,
            gamma_hidden=gamma_hidden,
            momentum=batch_norm_momentum,
            pad_input=True,
            # None pads the Laplace filter by half its size; 0 (the library default) penalises
            # the filter borders wrongly.
            laplace_padding=None,
            input_regularizer="LaplaceL2norm",
            stack=None if readout_all_layers else -1,
            # Summed penalties keep gamma_* independent of the kernel size; it also avoids the
            # library's warning about averaged penalties.
            use_avg_reg=False,
        )
        # The readout needs the core's output shape; eval mode keeps the batch-norm running
        # statistics untouched by this probe.
        core.eval()
        with torch.no_grad():
            core_shape = tuple(core(torch.zeros(1, *input_shape)).shape[1:])
        core.train()

        biases = {}
        for session, n in data_info.n_neurons.items():
            if session in mean_response:
                mean = torch.as_tensor(mean_response[session], dtype=torch.float32)
                if mean.shape != (n,):
                    raise ValueError(
                        f"mean_response[{session!r}] has shape {tuple(mean.shape)}, expected ({n},)"
                    )
                biases[session] = _inverse_elu1(mean, elu_offset)
            else:
                biases[session] = torch.full((n,), -elu_offset, dtype=torch.float32)

        readout = MultiReadoutBase(
            in_shape_dict={session: core_shape for session in data_info.n_neurons},
            n_neurons_dict=dict(data_info.n_neurons),
            base_readout=FullGaussian2d,
            mean_activity_dict=biases,
            bias=True,
            init_mu_range=init_mu_range,
            init_sigma=init_sigma,
            gauss_type=gauss_type,
            feature_reg_weight=gamma_readout,
        )
    return GaussianReadoutCNN(core, readout, elu_offset=elu_offset)


"""Video encoding models: a causal video core, per-session Gaussian readouts, shifter and gain modulator.

Pipeline of `VideoEncodingModel` for a movie of one session (shapes: B batch, T frames, n neurons):

1. core (`Factorized3dCore` or `ConvGRUCore` from ``video_cores``): (B, C [+ k], T, H, W) ->
   (B, C', T, H, W), causal and length-preserving in time. In ``behavior_mode="channels"`` the k
   behaviour signals are appended as constant-in-space input channels.
2. readout: the session's neuralpredictors ``FullGaussian2d`` applied to every frame (time folded
   into the batch), optionally at a position shifted by the session's ``MLPShifter`` of the
   pupil centre of that frame; ``elu(x + elu_offset) + 1`` makes a positive rate.
3. gain: the session's `GainModulator` multiplies each neuron's rate by
   ``exp(linear(behaviour, optogenetic) + mlp(behaviour))``, per frame. Its output layers start
   at zero, so an untrained model has gain exactly 1. The optogenetic signal enters only the
   linear part, with one weight per neuron: the laser multiplies neuron i's rate by
   ``exp(w_i)`` whatever the behaviour, which `VideoEncodingModel.optogenetic_gain` reports.

Every step is per frame or causal, so output frame t depends on inputs (movie, behaviour, pupil,
laser) at frames <= t only (exactly in eval mode; see ``video_cores`` for batch norm in training).
"""

from __future__ import annotations

import math

import torch
from neuralpredictors.layers.readouts import FullGaussian2d, MultiReadoutBase
from neuralpredictors.layers.shifters import MLPShifter
from torch import nn

# models/__init__.py already ran the compatibility fixes; importing them here too keeps this module
# correct even if that package import changes.
from . import _neuralpredictors_compat  # noqa: F401,I001
from .encoding import _inverse_elu1
from .video_cores import (
    ConvGRUCore,
    Factorized3dCore,
    _check_non_negative,
    _check_positive_int,
)

__all__ = [
    "BEHAVIOR_MODES",
    "GainModulator",
    "VideoEncodingModel",
    "build_conv_gru",
    "build_factorized_3d",
]

BEHAVIOR_MODES = ("gain", "channels", "none")
GAUSS_TYPES = ("full", "uncorrelated", "isotropic")


class GainModulator(nn.Module):
    """Positive per-neuron gain of one session from per-frame behaviour and/or laser signals.

    ``log_gain = linear([behaviour, optogenetic]) + mlp(behaviour)``; ``gain = exp(log_gain)``.
    ``linear`` has no bias (gain 1 when every signal is 0, e.g. z-scored behaviour at its mean with
    the laser off) and starts at zero, as does the MLP's output layer: the initial gain is exactly 1.

    Attributes:
        linear: ``nn.Linear(n_behavior + has_optogenetic, n_neurons, bias=False)``; if the session
            has an optogenetic signal it is the last input column.
        mlp: ``nn.Sequential`` (behaviour -> hidden -> ELU -> n_neurons) or None (no behaviour or
            ``hidden == 0``).
    """

    def __init__(self, n_neurons: int, n_behavior: int, has_optogenetic: bool, hidden: int = 0):
        super().__init__()
        n_inputs = n_behavior + int(has_optogenetic)
        if n_inputs == 0:
            raise ValueError("a GainModulator needs behaviour or an optogenetic signal as input")
        self.n_behavior = n_behavior
        self.has_optogenetic = has_optogenetic
        self.linear = nn.Linear(n_inputs, n_neurons, bias=False)
        nn.init.zeros_(self.linear.weight)
        self.mlp = None
        if hidden > 0 and n_behavior > 0:
            self.mlp = nn.Sequential(
                nn.Linear(n_behavior, hidden), nn.ELU(), nn.Linear(hidden, n_neurons, bias=False)
            )
            nn.init.zeros_(self.mlp[-1].weight)

    def forward(self, behavior: torch.Tensor | None, optogenetic_signal: torch.Tensor | None) -> torch.Tensor:
        """Gain per frame and neuron.

        Args:
            behavior: (B, T, n_behavior), or None when ``n_behavior == 0``.
            optogenetic_signal: (B, T), or None when the session has none.

        Returns:
            (B, T, n_neurons), strictly positive.
        """
        signals = []
        if self.n_behavior:
            signals.append(behavior)
        if self.has_optogenetic:
            signals.append(optogenetic_signal[..., None])
        log_gain = self.linear(torch.cat(signals, dim=-1))
        if self.mlp is not None:
            log_gain = log_gain + self.mlp(behavior)
        return torch.exp(log_gain)

    @property
    def optogenetic_log_gain(self) -> torch.Tensor:
        """(n_neurons,) log of the factor the laser (signal 1) multiplies each rate by."""
        if not self.has_optogenetic:
            raise ValueError("this modulator has no optogenetic input")
        return self.linear.weight[:, -1]

    def regularizer(self) -> torch.Tensor:
        """Sum of squared weights (linear and MLP)."""
        return sum(p.pow(2).sum() for name, p in self.named_parameters() if name.endswith("weight"))


class VideoEncodingModel(nn.Module):
    """Causal video core + per-session Gaussian readout, shifter and gain modulator.

    Attributes:
        core: maps (B, core_input_channels, T, H, W) to (B, C', T, H, W) causally; has
            ``features`` (named layers) and ``regularizer()``.
        readout: ``MultiReadoutBase`` of ``FullGaussian2d`` with in_shape (C', H, W), one per session.
        shifter: ``MLPShifter`` (one MLP per session, pupil centre (N, 2) -> shift (N, 2)) or None.
        modulator: ``nn.ModuleDict`` {session: `GainModulator`} or None (no behaviour to the gain
            and no optogenetic signal).
        input_shape: (C, H, W) of one stimulus frame.
        n_behavior: number of behaviour signals k.
        behavior_mode: "gain", "channels" or "none".
        has_optogenetic: whether the model takes (and requires) an optogenetic signal.
        elu_offset: shift inside the output ELU.
        modulator_l2: weight of the L2 penalty on the session's modulator weights.
    """

    def __init__(
        self,
        core: nn.Module,
        readout: MultiReadoutBase,
        *,
        input_shape: tuple[int, int, int],
        n_behavior: int = 0,
        behavior_mode: str = "gain",
        has_optogenetic: bool = False,
        shifter: MLPShifter | None = None,
        modulator: nn.ModuleDict | None = None,
        elu_offset: float = 0.0,
        modulator_l2: float = 0.0,
    ):
        super().__init__()
        if behavior_mode not in BEHAVIOR_MODES:
            raise ValueError(f"behavior_mode must be one of {BEHAVIOR_MODES}, got {behavior_mode!r}")
        sessions = list(readout.keys())
        for name, part in (("shifter", shifter), ("modulator", modulator)):
            if part is not None and list(part.keys()) != sessions:
                raise ValueError(f"{name} sessions {list(part.keys())} differ from the readout's {sessions}")
        self.core = core
        self.readout = readout
        self.shifter = shifter
        self.modulator = modulator
        self.input_shape = tuple(input_shape)
        self.n_behavior = int(n_behavior)
        self.behavior_mode = behavior_mode
        self.has_optogenetic = bool(has_optogenetic)
        self.elu_offset = float(elu_offset)
        self.modulator_l2 = float(modulator_l2)

    # ---- introspection ---------------------------------------------------------------------
    @property
    def sessions(self) -> list[str]:
        """Session names the model can predict, in data order."""
        return list(self.readout.keys())

    @property
    def needs_behavior(self) -> bool:
        """Whether ``forward`` requires ``behavior`` (mode "gain" or "channels" with k > 0)."""
        return self.behavior_mode != "none" and self.n_behavior > 0

    @property
    def analysis_layers(self) -> list[str]:
        """Module names whose outputs analyses probe by default: each core layer after its
        nonlinearity (and the GRU of a `ConvGRUCore`); every one outputs (B, C', T, H, W)."""
        names = [f"core.features.{name}" for name, _ in self.core.features.named_children()]
        if isinstance(getattr(self.core, "gru", None), nn.Module):
            names.append("core.gru")
        return names

    def optogenetic_gain(self, session: str) -> torch.Tensor:
        """(n_neurons,) factor by which the laser (signal 1) multiplies each neuron's rate.

        Exact for any behaviour, because the laser enters the log gain linearly and additively.

        Raises:
            KeyError: for an unknown session. ValueError: if the model has no optogenetic input.
        """
        self._check_session(session)
        if not self.has_optogenetic:
            raise ValueError("the model was built without an optogenetic signal (has_optogenetic=False)")
        return torch.exp(self.modulator[session].optogenetic_log_gain.detach())

    # ---- checks ------------------------------------------------------------------------------
    def _check_session(self, session: str) -> None:
        if session not in self.readout:
            raise KeyError(f"unknown session {session!r}; the model has {self.sessions}")

    def _check_inputs(self, inputs: torch.Tensor) -> tuple[int, int]:
        c, h, w = self.input_shape
        expected = f"(batch, {c}, time, {h}, {w})"
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor of shape {expected}, got {type(inputs).__name__}")
        if not inputs.is_floating_point():
            raise TypeError(f"inputs must be floating point (got {inputs.dtype}); convert with inputs.float()")
        if inputs.ndim != 5:
            raise ValueError(
                f"inputs must have 5 dimensions {expected}, got shape {tuple(inputs.shape)}"
                + ("; add a batch axis with inputs[None]" if inputs.ndim == 4 else "")
            )
        b, ci, t, hi, wi = inputs.shape
        if (ci, hi, wi) != (c, h, w):
            hint = ""
            if inputs.shape[2] == c and (hi, wi) == (h, w) and ci != c:
                hint = "; it looks like (batch, time, channels, height, width): use inputs.transpose(1, 2)"
            raise ValueError(f"inputs must have shape {expected}, got {tuple(inputs.shape)}{hint}")
        if b == 0 or t == 0:
            raise ValueError(f"inputs need at least one trial and one frame, got shape {tuple(inputs.shape)}")
        return b, t

    @staticmethod
    def _per_frame(name: str, value, b: int, t: int, tail: tuple[int, ...], hint: str, like: torch.Tensor):
        """Checks a per-frame signal of shape (B, T, *tail) (or (1, T, *tail), broadcast) and returns it as (B, T, *tail)."""
        expected = f"({b}, {t}{''.join(f', {d}' for d in tail)})"
        if value is None:
            raise ValueError(f"{name} is required: {hint}; pass {name}= of shape {expected}")
        value = torch.as_tensor(value)
        if value.ndim != 2 + len(tail) or value.shape[0] not in (1, b) or tuple(value.shape[1:]) != (t, *tail):
            raise ValueError(
                f"{name} must have shape {expected} (batch, time{', ...' if tail else ''}) matching inputs, "
                f"got {tuple(value.shape)}"
            )
        return value.to(device=like.device, dtype=like.dtype).expand(b, t, *tail)

    # ---- forward -----------------------------------------------------------------------------
    def forward(
        self,
        inputs: torch.Tensor,
        session: str,
        *,
        behavior: torch.Tensor | None = None,
        pupil_center: torch.Tensor | None = None,
        optogenetic_signal: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicts the rate of every neuron of ``session`` in every frame.

        Per-frame signals may also have batch size 1 (broadcast over the batch).

        Args:
            inputs: movies, shape (B, C, T, H, W) with (C, H, W) = ``input_shape``.
            session: which session's neurons to predict.
            behavior: (B, T, n_behavior); required when ``needs_behavior``, ignored otherwise.
            pupil_center: (B, T, 2) pupil position (x, y); required with a shifter, ignored otherwise.
            optogenetic_signal: (B, T) laser signal in [0, 1]; required iff ``has_optogenetic``
                (pass zeros for laser off).

        Returns:
            (B, T, n_neurons[session]) strictly positive rates; frame t depends on frames <= t.

        Raises:
            KeyError: unknown session. TypeError/ValueError: a missing, unexpected or misshapen input.
        """
        self._check_session(session)
        b, t = self._check_inputs(inputs)
        _, h, w = self.input_shape

        if self.needs_behavior:
            behavior = self._per_frame(
                "behavior", behavior, b, t, (self.n_behavior,),
                f"the model uses {self.n_behavior} behaviour signal(s) (behavior_mode={self.behavior_mode!r})",
                inputs,
            )
        else:
            behavior = None
        if self.shifter is not None:
            pupil_center = self._per_frame(
                "pupil_center", pupil_center, b, t, (2,), "the model has a shifter (shifter=True)", inputs
            )
        if self.has_optogenetic:
            optogenetic_signal = self._per_frame(
                "optogenetic_signal", optogenetic_signal, b, t, (),
                "the model was built for data with an optogenetic signal (zeros = laser off)", inputs,
            )
        elif optogenetic_signal is not None:
            raise ValueError(
                "optogenetic_signal was given but the model was built without one (data_info."
                "has_optogenetic is False); rebuild the model from the DataInfo of this data"
            )

        x = inputs
        if self.behavior_mode == "channels" and behavior is not None:
            # (B, T, k) -> (B, k, T, H, W): each signal is a spatially constant input channel.
            channels = behavior.permute(0, 2, 1)[..., None, None].expand(b, self.n_behavior, t, h, w)
            x = torch.cat([x, channels], dim=1)

        features = self.core(x)  # (B, C', T, H', W')
        frames = features.transpose(1, 2).reshape(b * t, *features.shape[1:2], *features.shape[3:])
        shift = self.shifter[session](pupil_center.reshape(b * t, 2)) if self.shifter is not None else None
        drive = self.readout[session](frames, shift=shift).reshape(b, t, -1)
        rates = nn.functional.elu(drive + self.elu_offset) + 1.0

        if self.modulator is not None:
            gain_behavior = behavior if self.behavior_mode == "gain" else None
            rates = rates * self.modulator[session](gain_behavior, optogenetic_signal)
        return rates

    def regularizer(self, session: str) -> torch.Tensor:
        """Penalty the trainer adds to the loss of a batch from ``session``.

        Returns:
            Scalar: core penalty (Laplace smoothness of the first-layer filters + L2 of the conv
            weights) + L1 of ``session``'s readout feature weights (+ ``modulator_l2`` times the
            squared weights of ``session``'s gain modulator).
        """
        self._check_session(session)
        penalty = self.core.regularizer() + self.readout.regularizer(session)
        if self.shifter is not None:
            penalty = penalty + self.shifter.regularizer(session)
        if self.modulator is not None and self.modulator_l2 > 0:
            penalty = penalty + self.modulator_l2 * self.modulator[session].regularizer()
        return penalty


# ---- builders ----------------------------------------------------------------------------------
def _video_facts(data_info) -> dict:
    """Validated facts the builders need from a DataInfo."""
    # DataInfo has checked its own fields (types, sessions, lengths); what is left is whether
    # these are the data a video encoding model can fit.
    input_shape = tuple(data_info.input_shape)
    if data_info.modality != "video" or tuple(data_info.input_axes) != ("channel", "height", "width"):
        raise ValueError(
            f"video models need a video dataset whose input_shape is one frame (channel, height, "
            f"width); got modality {data_info.modality!r}, input_axes {tuple(data_info.input_axes)}, "
            f"input_shape {input_shape}"
        )
    if "responses" not in data_info.provides:
        raise ValueError(f"video models fit neural responses; the data provide {list(data_info.provides)}")
    return dict(
        input_shape=input_shape,
        n_neurons=dict(data_info.n_neurons),
        n_behavior=data_info.n_behavior,
        has_optogenetic=data_info.has_optogenetic,
        mean_response=data_info.mean_response,
    )


def _check_common(seed, *, behavior_mode, shifter, readout_l1, init_mu_range, init_sigma, gauss_type,
                  shifter_hidden, shifter_layers, modulator_hidden, modulator_l2, elu_offset,
                  init_bias_from_mean) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if behavior_mode not in BEHAVIOR_MODES:
        raise ValueError(f"behavior_mode must be one of {BEHAVIOR_MODES}, got {behavior_mode!r}")
    for name, flag in (("shifter", shifter), ("init_bias_from_mean", init_bias_from_mean)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    _check_non_negative("readout_l1", readout_l1)
    _check_non_negative("modulator_l2", modulator_l2)
    if isinstance(init_mu_range, bool) or not isinstance(init_mu_range, (int, float)) or not 0 < init_mu_range <= 1:
        raise ValueError(f"init_mu_range must be in (0, 1] (half image sizes), got {init_mu_range!r}")
    if isinstance(init_sigma, bool) or not isinstance(init_sigma, (int, float)) or not 0 < init_sigma < math.inf:
        raise ValueError(f"init_sigma must be a finite number > 0, got {init_sigma!r}")
    if gauss_type not in GAUSS_TYPES:
        raise ValueError(f"gauss_type must be one of {GAUSS_TYPES}, got {gauss_type!r}")
    _check_positive_int("shifter_hidden", shifter_hidden)
    _check_positive_int("shifter_layers", shifter_layers)
    _check_positive_int("modulator_hidden", modulator_hidden, minimum=0)
    if isinstance(elu_offset, bool) or not isinstance(elu_offset, (int, float)) or not math.isfinite(elu_offset):
        raise ValueError(f"elu_offset must be a finite number, got {elu_offset!r}")


def _assemble(facts: dict, seed: int, make_core, *, behavior_mode, shifter, readout_l1, init_mu_range,
              init_sigma, gauss_type, shifter_hidden, shifter_layers, modulator_hidden, modulator_l2,
              elu_offset, init_bias_from_mean) -> VideoEncodingModel:
    """Builds core (``make_core(input_channels)``), readouts, shifter and modulator from one seed."""
    c, h, w = facts["input_shape"]
    n_neurons, k = facts["n_neurons"], facts["n_behavior"]
    has_opto = facts["has_optogenetic"]
    mean_response = facts["mean_response"] if init_bias_from_mean else {}
    biases = {}
    for session, n in n_neurons.items():
        if session in mean_response:
            mean = torch.as_tensor(mean_response[session], dtype=torch.float32)
            if mean.shape != (n,):
                raise ValueError(
                    f"data_info.mean_response[{session!r}] has shape {tuple(mean.shape)}, "
                    f"expected ({n},): one mean response per neuron"
                )
            biases[session] = _inverse_elu1(mean, elu_offset)
        else:
            biases[session] = torch.full((n,), -float(elu_offset), dtype=torch.float32)

    # fork_rng keeps the caller's RNG stream untouched, so building a model inside a training
    # script does not change what the script draws next (and the weights depend only on seed).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        core = make_core(c + (k if behavior_mode == "channels" else 0))
        # 'same' padding in space: the core output has the frame's height and width.
        readout = MultiReadoutBase(
            in_shape_dict={session: (core.outchannels, h, w) for session in n_neurons},
            n_neurons_dict=n_neurons,
            base_readout=FullGaussian2d,
            mean_activity_dict=biases,
            bias=True,
            init_mu_range=float(init_mu_range),
            init_sigma=float(init_sigma),
            gauss_type=gauss_type,
            feature_reg_weight=float(readout_l1),
        )
        shifter_module = None
        if shifter:
            shifter_module = MLPShifter(
                list(n_neurons),
                input_channels=2,
                hidden_channels_shifter=shifter_hidden,
                shift_layers=shifter_layers,
            )
        gain_behavior = k if behavior_mode == "gain" else 0
        modulator = None
        if gain_behavior or has_opto:
            modulator = nn.ModuleDict(
                {s: GainModulator(n, gain_behavior, has_opto, modulator_hidden) for s, n in n_neurons.items()}
            )
    return VideoEncodingModel(
        core,
        readout,
        input_shape=(c, h, w),
        n_behavior=k,
        behavior_mode=behavior_mode,
        has_optogenetic=has_opto,
        shifter=shifter_module,
        modulator=modulator,
        elu_offset=float(elu_offset),
        modulator_l2=float(modulator_l2),
    )


_COMMON_DOC = """
        behavior_mode: "gain" (behaviour drives the per-neuron gain modulator), "channels"
            (behaviour is appended to the movie as spatially constant input channels) or "none"
            (behaviour ignored). The optogenetic signal always drives the gain modulator.
        shifter: per-session MLP from the pupil centre to a shift of every readout position.
        core_smoothness: weight of the Laplace smoothness penalty on the first layer's spatial filters.
        core_l2: weight of the L2 penalty on all core convolution weights.
        readout_l1: weight of the L1 penalty on the readout feature weights (summed over neurons).
        batch_norm_momentum: momentum of the core's batch-norm running statistics.
        init_mu_range: initial readout positions are uniform in [-init_mu_range, init_mu_range]
            (in half image sizes).
        init_sigma: initial spread of the readout position Gaussians.
        gauss_type: "full", "uncorrelated" or "isotropic" covariance of the readout positions.
        shifter_hidden: hidden units per shifter layer.
        shifter_layers: linear layers of each shifter MLP (1 = no hidden layer).
        modulator_hidden: hidden units of the gain modulator's behaviour MLP (0 = log gain linear
            in behaviour).
        modulator_l2: weight of the L2 penalty on the gain modulator weights.
        elu_offset: shift inside the output ELU.
        init_bias_from_mean: set readout biases so the initial rate is about each neuron's
            ``mean_response`` (if known); otherwise the biases give an initial rate of 1.

    Returns:
        `VideoEncodingModel`; ``model(inputs (B, C, T, H, W), session, behavior=, pupil_center=,
        optogenetic_signal=)`` has shape (B, T, n_neurons[session]).

    Raises:
        ValueError: naming an invalid hyperparameter or an unusable ``data_info``.
"""


def build_factorized_3d(
    data_info,
    seed: int,
    *,
    hidden_channels: int = 16,
    layers: int = 3,
    first_spatial_kernel: int = 9,
    spatial_kernel: int = 5,
    first_temporal_kernel: int = 9,
    temporal_kernel: int = 5,
    readout_all_layers: bool = False,
    behavior_mode: str = "gain",
    shifter: bool = True,
    core_smoothness: float = 0.5,
    core_l2: float = 1e-3,
    readout_l1: float = 0.002,
    batch_norm_momentum: float = 0.1,
    init_mu_range: float = 0.3,
    init_sigma: float = 0.1,
    gauss_type: str = "full",
    shifter_hidden: int = 5,
    shifter_layers: int = 3,
    modulator_hidden: int = 8,
    modulator_l2: float = 0.0,
    elu_offset: float = 0.0,
    init_bias_from_mean: bool = True,
) -> VideoEncodingModel:
    """Builds a `Factorized3dCore` video model with per-session readout, shifter and gain modulator.

    Weights depend only on ``seed`` and the hyperparameters (drawn from a private copy of torch's
    RNG; the global RNG state is left as it was).

    Args:
        data_info: ``neurofit.datasets.info.DataInfo`` of modality "video" with ``input_shape``
            (C, H, W) of one frame, ``n_neurons``, ``behavior_names``, ``has_optogenetic`` and
            ``mean_response`` (may be empty).
        seed: seed of the weight initialisation.
        hidden_channels: feature maps per core layer.
        layers: core layers.
        first_spatial_kernel, spatial_kernel: odd spatial kernel sizes of layer 0 / the others.
        first_temporal_kernel, temporal_kernel: temporal kernel lengths (frames) of layer 0 / the
            others; the model sees ``first_temporal_kernel + (layers - 1) * (temporal_kernel - 1)``
            frames into the past.
        readout_all_layers: read out from all core layers stacked (True) or only the last.
    """
    _check_common(
        seed, behavior_mode=behavior_mode, shifter=shifter, readout_l1=readout_l1, init_mu_range=init_mu_range,
        init_sigma=init_sigma, gauss_type=gauss_type, shifter_hidden=shifter_hidden, shifter_layers=shifter_layers,
        modulator_hidden=modulator_hidden, modulator_l2=modulator_l2, elu_offset=elu_offset,
        init_bias_from_mean=init_bias_from_mean,
    )
    if not isinstance(readout_all_layers, bool):
        raise ValueError(f"readout_all_layers must be True or False, got {readout_all_layers!r}")
    facts = _video_facts(data_info)

    def make_core(input_channels: int) -> Factorized3dCore:
        return Factorized3dCore(
            input_channels,
            hidden_channels=hidden_channels,
            layers=layers,
            first_spatial_kernel=first_spatial_kernel,
            spatial_kernel=spatial_kernel,
            first_temporal_kernel=first_temporal_kernel,
            temporal_kernel=temporal_kernel,
            batch_norm_momentum=batch_norm_momentum,
            core_smoothness=core_smoothness,
            core_l2=core_l2,
            stack=readout_all_layers,
        )

    return _assemble(
        facts, seed, make_core, behavior_mode=behavior_mode, shifter=shifter, readout_l1=readout_l1,
        init_mu_range=init_mu_range, init_sigma=init_sigma, gauss_type=gauss_type, shifter_hidden=shifter_hidden,
        shifter_layers=shifter_layers, modulator_hidden=modulator_hidden, modulator_l2=modulator_l2,
        elu_offset=elu_offset, init_bias_from_mean=init_bias_from_mean,
    )


def build_conv_gru(
    data_info,
    seed: int,
    *,
    hidden_channels: int = 16,
    feature_layers: int = 2,
    first_kernel: int = 9,
    kernel: int = 5,
    gru_kernel: int = 3,
    behavior_mode: str = "gain",
    shifter: bool = True,
    core_smoothness: float = 0.5,
    core_l2: float = 1e-3,
    readout_l1: float = 0.002,
    batch_norm_momentum: float = 0.1,
    init_mu_range: float = 0.3,
    init_sigma: float = 0.1,
    gauss_type: str = "full",
    shifter_hidden: int = 5,
    shifter_layers: int = 3,
    modulator_hidden: int = 8,
    modulator_l2: float = 0.0,
    elu_offset: float = 0.0,
    init_bias_from_mean: bool = True,
) -> VideoEncodingModel:
    """Builds a `ConvGRUCore` video model with per-session readout, shifter and gain modulator.

    Weights depend only on ``seed`` and the hyperparameters (drawn from a private copy of torch's
    RNG; the global RNG state is left as it was).

    Args:
        data_info: ``neurofit.datasets.info.DataInfo`` of modality "video" with ``input_shape``
            (C, H, W) of one frame, ``n_neurons``, ``behavior_names``, ``has_optogenetic`` and
            ``mean_response`` (may be empty).
        seed: seed of the weight initialisation.
        hidden_channels: feature maps of each per-frame layer and of the GRU state.
        feature_layers: per-frame convolution layers before the GRU (>= 1).
        first_kernel, kernel: odd kernel sizes of feature layer 0 / the others.
        gru_kernel: odd kernel size of the GRU gate convolutions.
    """
    _check_common(
        seed, behavior_mode=behavior_mode, shifter=shifter, readout_l1=readout_l1, init_mu_range=init_mu_range,
        init_sigma=init_sigma, gauss_type=gauss_type, shifter_hidden=shifter_hidden, shifter_layers=shifter_layers,
        modulator_hidden=modulator_hidden, modulator_l2=modulator_l2, elu_offset=elu_offset,
        init_bias_from_mean=init_bias_from_mean,
    )
    facts = _video_facts(data_info)

    def make_core(input_channels: int) -> ConvGRUCore:
        return ConvGRUCore(
            input_channels,
            hidden_channels=hidden_channels,
            feature_layers=feature_layers,
            first_kernel=first_kernel,
            kernel=kernel,
            gru_kernel=gru_kernel,
            batch_norm_momentum=batch_norm_momentum,
            core_smoothness=core_smoothness,
            core_l2=core_l2,
        )

    return _assemble(
        facts, seed, make_core, behavior_mode=behavior_mode, shifter=shifter, readout_l1=readout_l1,
        init_mu_range=init_mu_range, init_sigma=init_sigma, gauss_type=gauss_type, shifter_hidden=shifter_hidden,
        shifter_layers=shifter_layers, modulator_hidden=modulator_hidden, modulator_l2=modulator_l2,
        elu_offset=elu_offset, init_bias_from_mean=init_bias_from_mean,
    )


for _builder in (build_factorized_3d, build_conv_gru):
    _builder.__doc__ = _builder.__doc__.rstrip() + _COMMON_DOC

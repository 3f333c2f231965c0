"""Activations of named layers of a model for a set of stimuli, and what each layer's axes mean.

Activations come from forward hooks (`extract_activations`); `describe_layers` says, for every
probed layer, which axis of its output is which (`AXES`) and, for layers with a time axis, the
input sample each output step is centred on (its *time centres*). Pure torch and numpy: no
database.

Calling convention
    Stimuli are an array ``(n_stimuli, *input_shape)``, or a mapping of arrays that share their
    first axis: ``"inputs"`` is the first positional argument of the model and every other key
    a keyword input (``{"inputs": x, "behavior": b}`` calls ``model(x, behavior=b, **kw)``, the
    convention of `neurofit.pipelines.batches.model_inputs`). ``forward_kwargs`` (e.g. the
    session) go to every call unchanged.

Axes
    Every layer's output is stored batch-first: the batch axis of a recurrent module with
    ``batch_first=False`` (and of any module with ``batch_first=False``) is moved to the front,
    and a ``PackedSequence`` is padded. Axis names describe one stimulus's output after that,
    from the vocabulary `AXES`:

    ==========================  ===================================================
    layer                       axes
    ==========================  ===================================================
    Linear, flattened head      ``("unit",)``
    Conv2d on images            ``("channel", "height", "width")``
    Conv1d on (channels, time)  ``("channel", "time")``
    Conv2d on DeepDraw inputs   ``("channel", "space", "time")`` (input declared so)
    Conv3d video core           ``("channel", "time", "height", "width")``
    GRU / LSTM / RNN            ``("time", "unit")``, whatever ``batch_first``
    per-step Linear readout     ``("time", "unit")``
    ==========================  ===================================================

    The axes of one stimulus come from (first that applies) ``model.input_axes``, the
    ``input_axes`` argument (a `StimulusSet`'s declaration), or its number of dimensions: 1-D
    ``("feature",)``, 3-D ``("channel", "height", "width")``, 4-D ``("channel", "time",
    "height", "width")``; an undeclared 2-D stimulus is ``("time", "feature")`` or
    ``("channel", "time")`` by which of its axes behaves as time (see below), else
    ``("height", "width")``. Where a layer's time axis lies is measured (below); the other names
    follow from its number of dimensions and the input's spatial names.

Time centres: measured, not composed
    A layer's time centres are measured by perturbation: each input time step in turn is
    perturbed (by a random pattern over the other input axes; by ``+d`` and ``-d`` if there are
    fewer than 8 of them), and the output steps whose values change give each output step's
    receptive field ``[lo, hi]`` in input samples. An analytic composition of kernel, stride, padding and dilation would need
    to know where time sits in every intermediate tensor, and misses functional ops
    (``F.pad``, ``F.conv1d``), transposes and reshapes, and modules that mix axes; measuring
    needs none of that. Normalisation modules that couple time steps (LayerNorm, GroupNorm,
    InstanceNorm, RMSNorm, LocalResponseNorm) are bypassed while measuring, so a per-sample
    layer norm does not make every receptive field the whole input. Then:

    * both edges of the receptive field move with the output step (convolution, pooling):
      ``centre_j = a j + (b_lo + b_hi) / 2`` with the slope ``a`` and offsets fitted (medians)
      on the steps whose edge is not clipped by the input's ends, so edge steps get the centre
      their padded window has, exactly as composing ``(k, s, p, d)`` would give;
    * a recurrent module (``nn.RNNBase``): output step ``t`` belongs to input step ``t`` of the
      module, so its centres are those measured on the module's own input; a later layer of the
      same length whose receptive field reaches back to the start (e.g. a per-step readout)
      inherits them;
    * otherwise a receptive field open at the start gives the newest sample it sees, one open
      at the end the oldest, and one open at both ends evenly spaced centres.

    Stimuli longer than `MAX_PERTURBED_STEPS` perturb an evenly spaced subset of steps, so edges
    are found to within that spacing. Functional normalisation inside ``forward`` is not
    bypassed: such a model should declare its time centres.

Declarations win
    A model may state its own facts, and what it states is used as is (checked for shape):

    * ``model.input_axes``: the axes of one stimulus, e.g. ``("channel", "space", "time")``;
    * ``model.layer_axes``: a mapping ``{layer: axes}``, or a callable ``layer -> axes | None``.
      The names may include ``"batch"`` to say where the batch axis is in the raw output;
    * ``model.time_centres``: a mapping ``{layer: centres}``, or a callable
      ``(layer, n_time) -> centres | None``, in input samples, one per output step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

OUTPUT = "output"  # the name of the model's own output among the layers
BATCH = "batch"  # allowed in declarations only: where the batch axis is in a raw output
INPUT = "inputs"  # the key of the stimulus in a mapping of model inputs

#: The axis vocabulary: every stored axis name is one of these (a superset of the input axes of
#: `neurofit.datasets.info.AXES`, adding what layers output: units, non-image space, depth).
AXES: dict[str, str] = {
    "unit": "features of a dense or recurrent layer (Linear, RNN hidden units, model outputs)",
    "channel": "feature maps of a convolution or pooling layer; channels of a stimulus",
    "feature": "per-time-step values of a sequence stimulus (its input dimensions)",
    "time": "time steps: input samples, or the output steps of a strided layer",
    "space": "a spatial axis that is not an image axis, e.g. DeepDraw's muscles",
    "frequency": "frequency bands of a spectrogram",
    "depth": "the third spatial axis of a volume",
    "height": "image rows",
    "width": "image columns",
}
AXIS_NAMES: tuple[str, ...] = tuple(AXES)
TIME = "time"

#: Stimuli with more time steps perturb this many evenly spaced ones (see the module docstring).
MAX_PERTURBED_STEPS = 512

# Normalisations that couple time steps; bypassed while time centres are measured.
_COUPLING_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm,
                   *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
# An output step "changes" when it moves by more than this fraction of the largest change the
# same perturbation causes in that tensor: above float noise, below any real dependence.
_CHANGED_RTOL = 1e-5
# Values (stimulus plus probed outputs, summed over the copies) one perturbation batch may hold.
_CHUNK_ELEMENTS = 1 << 23
_SPATIAL = ("space", "frequency", "depth", "height", "width")  # axes a convolution's output keeps
_GENERIC_SPATIAL = {1: ("space",), 2: ("height", "width"), 3: ("depth", "height", "width")}


class AxesError(ValueError):
    """A declared or given axis description does not fit the model or the stimuli."""


class DescribedLayers(dict):
    """``{layer: LayerInfo}`` in probing order, plus the axes the stimuli were read with."""

    input_axes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerInfo:
    """What one probed layer's output is, per stimulus.

    Attributes:
        shape: output shape of one stimulus (batch axis removed, batch-first layout).
        axes: one name from `AXES` per axis of ``shape``.
        time_centres: for layers with a ``"time"`` axis, the input sample (float; may lie
            outside the input for padded or causal edge steps) each output step is centred on;
            None for layers without time or stimuli without a time axis.
    """

    shape: tuple[int, ...]
    axes: tuple[str, ...]
    time_centres: np.ndarray | None = None

    @property
    def n_time(self) -> int:
        """Length of the time axis, 0 for layers without one."""
        return self.shape[self.axes.index(TIME)] if TIME in self.axes else 0

    @property
    def n_units(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# layers and stimuli
# ---------------------------------------------------------------------------------------------


def default_layers(model: nn.Module) -> list[str]:
    """Layers probed when none are named: ``model.analysis_layers`` if the model declares them,
    else every convolution, linear and recurrent module; always followed by ``"output"``."""
    declared = getattr(model, "analysis_layers", None)
    if declared is not None:
        names = list(declared)
    else:
        kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.RNNBase)
        names = [name for name, module in model.named_modules() if name and isinstance(module, kinds)]
    return [*names, OUTPUT]


def split_inputs(inputs: np.ndarray | torch.Tensor | Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The stimulus array and the other per-stimulus model inputs.

    Raises:
        ValueError: a mapping without ``"inputs"``, or inputs whose first axes differ.
    """
    if not isinstance(inputs, Mapping):
        return inputs, {}
    if INPUT not in inputs:
        raise ValueError(f"a mapping of model inputs needs the stimulus under {INPUT!r}; got keys {sorted(inputs)}")
    stimuli = inputs[INPUT]
    extra = {name: value for name, value in inputs.items() if name != INPUT}
    for name, value in extra.items():
        if len(value) != len(stimuli):
            raise ValueError(f"model input {name!r} has {len(value)} rows but there are {len(stimuli)} stimuli")
    return stimuli, extra


def _tensor(value: Any, device: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    return (tensor.float() if tensor.is_floating_point() else tensor).to(device)


def _call(model: nn.Module, x: torch.Tensor, extra: dict[str, torch.Tensor], forward_kwargs: dict[str, Any] | None):
    return model(x, **extra, **(forward_kwargs or {}))


def _first_tensor(output: Any) -> torch.Tensor:
    # Recurrent modules return (output, hidden): the per-step output is what a unit "responds".
    while isinstance(output, (tuple, list)) and not isinstance(output, PackedSequence):
        output = output[0]
    if isinstance(output, PackedSequence):
        output = pad_packed_sequence(output, batch_first=True)[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"layer output of type {type(output).__name__} is not a tensor")
    return output


def _packed(output: Any) -> bool:
    while isinstance(output, (tuple, list)) and not isinstance(output, PackedSequence):
        output = output[0]
    return isinstance(output, PackedSequence)


def _declared_axes(model: nn.Module, layer: str) -> tuple[str, ...] | None:
    declared = getattr(model, "layer_axes", None)
    if declared is None:
        return None
    axes = declared.get(layer) if isinstance(declared, Mapping) else declared(layer)
    if axes is None:
        return None
    axes = tuple(axes)
    unknown = [a for a in axes if a not in AXES and a != BATCH]
    if unknown or len(set(axes)) != len(axes):
        raise AxesError(
            f"model.layer_axes[{layer!r}] = {axes}: names must be distinct and from {list(AXIS_NAMES)} "
            f"(plus {BATCH!r}); fix the model's declaration"
        )
    return axes


def _batch_first(module: nn.Module | None, layer: str, model: nn.Module, output: Any) -> torch.Tensor:
    """A layer's output with the batch axis first (declared, ``batch_first=False``, packed)."""
    tensor = _first_tensor(output)
    declared = _declared_axes(model, layer)
    if declared is not None and BATCH in declared:
        if len(declared) != tensor.ndim:
            raise AxesError(
                f"model.layer_axes[{layer!r}] = {declared} names {len(declared)} axes but the layer "
                f"outputs {tensor.ndim} ({tuple(tensor.shape)}); fix the model's declaration"
            )
        return tensor.movedim(declared.index(BATCH), 0)
    if module is not None and getattr(module, "batch_first", True) is False and not _packed(output):
        return tensor.transpose(0, 1)
    return tensor


@contextlib.contextmanager
def _hooks(model: nn.Module, layers: Sequence[str], record: Callable[[str, Any, Any, nn.Module], None]) -> Iterator[None]:
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name != OUTPUT and name not in modules]
    if unknown:
        available = [n for n in modules if n][:30]
        raise ValueError(f"the model has no layer(s) {unknown}; it has {available} (and 'output')")

    def hook(name):
        def fire(module, args, output):
            record(name, args, output, module)

        return fire

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers if name != OUTPUT]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------


def layer_shapes(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor | Mapping[str, Any],
    layers: list[str],
    *,
    forward_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, tuple[int, ...]]:
    """Output shape of each layer for one stimulus (batch axis removed, batch-first layout).

    Args:
        inputs: stimuli (or a mapping of model inputs, see the module docstring); only the first
            is run.
    """
    stimuli, extra = split_inputs(inputs)
    batch = {name: value[:1] for name, value in extra.items()}
    outputs = _run(model, stimuli[:1], batch, layers, forward_kwargs, device)
    return {name: tuple(outputs[name].shape[1:]) for name in layers}


def _run(model, stimuli, extra, layers, forward_kwargs, device) -> dict[str, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}

    def record(name, _args, output, module):
        captured[name] = _batch_first(module, name, model, output)

    model.eval().to(device)
    with _hooks(model, layers, record), torch.no_grad():
        x = _tensor(stimuli, device)
        output = _call(model, x, {k: _tensor(v, device) for k, v in extra.items()}, forward_kwargs)
        captured[OUTPUT] = _batch_first(None, OUTPUT, model, output)
    return captured


def extract_activations(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor | Mapping[str, Any],
    layers: list[str] | None = None,
    *,
    forward_kwargs: dict[str, Any] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    dtype: np.dtype = np.float32,
) -> dict[str, np.ndarray]:
    """Run stimuli through a model and collect the outputs of named layers.

    Args:
        model: the network; it is put in eval mode and run under ``torch.no_grad``.
        inputs: (n_stimuli, *input_shape) stimuli, or a mapping of per-stimulus model inputs
            with the stimuli under ``"inputs"`` (see the module docstring).
        layers: module names from ``model.named_modules()`` and/or ``"output"``; default
            `default_layers`.
        forward_kwargs: extra keyword arguments of ``model(...)``, e.g. ``{"session": "s0"}``.
        batch_size: stimuli per forward pass.
        device: torch device to run on.
        dtype: dtype of the returned arrays (float32 halves storage; analyses upcast).

    Returns:
        ``{layer: (n_stimuli, n_units)}``: each layer's output made batch-first (see the module
        docstring) and every other axis flattened into units in C order, in the order of
        ``layers``. `describe_layers` names those axes.

    Raises:
        ValueError: naming layers the model does not have.
    """
    layers = list(layers) if layers is not None else default_layers(model)
    stimuli, extra = split_inputs(inputs)
    collected: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for start in range(0, len(stimuli), batch_size):
        chunk = slice(start, start + batch_size)
        outputs = _run(model, stimuli[chunk], {k: v[chunk] for k, v in extra.items()}, layers, forward_kwargs, device)
        for name in layers:
            value = outputs[name]
            collected[name].append(value.reshape(value.shape[0], -1).cpu().numpy().astype(dtype))
    return {name: np.concatenate(chunks) for name, chunks in collected.items()}


# ---------------------------------------------------------------------------------------------
# axes of the stimuli
# ---------------------------------------------------------------------------------------------


def check_input_axes(axes: Sequence[str], shape: Sequence[int], what: str = "input_axes") -> tuple[str, ...]:
    """Validated axis names of one stimulus of ``shape``.

    Raises:
        AxesError: unknown or repeated names, ``"unit"``/``"batch"``, or a length that differs
            from the stimulus's number of dimensions.
    """
    axes = tuple(str(a).strip() for a in axes)
    bad = [a for a in axes if a not in AXES or a == "unit"]
    if bad or len(set(axes)) != len(axes):
        allowed = [a for a in AXIS_NAMES if a != "unit"]
        raise AxesError(f"{what} {axes}: names must be distinct and from {allowed}")
    if len(axes) != len(shape):
        raise AxesError(
            f"{what} {axes} names {len(axes)} axes but one stimulus has shape {tuple(shape)}; "
            "give one name per axis, without the stimulus axis"
        )
    return axes


def default_input_axes(shape: Sequence[int]) -> tuple[str, ...] | None:
    """Axis names assumed for an undeclared stimulus of ``shape`` (None: 2-D, to be measured)."""
    if len(shape) == 2:
        return None
    defaults = {1: ("feature",), 3: ("channel", "height", "width"), 4: ("channel", "time", "height", "width")}
    if len(shape) not in defaults:
        raise AxesError(
            f"stimuli of shape {tuple(shape)} have no default axis names; declare them "
            "(StimulusSet.add(..., input_axes=...) or model.input_axes)"
        )
    return defaults[len(shape)]


def _model_input_axes(model: nn.Module, shape: Sequence[int]) -> tuple[str, ...] | None:
    declared = getattr(model, "input_axes", None)
    if callable(declared):
        declared = declared()
    return None if declared is None else check_input_axes(declared, shape, "model.input_axes")


# ---------------------------------------------------------------------------------------------
# measuring time by perturbation
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _bypass_norms(model: nn.Module) -> Iterator[None]:
    # A forward hook's return value replaces the module's output: the input passes unchanged.
    handles = [
        module.register_forward_hook(lambda _m, args, _out: args[0])
        for module in model.modules() if isinstance(module, _COUPLING_NORMS)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class _Profile:
    """Which index of every axis of one tensor changed, per perturbation (rows: perturbed steps)."""

    changed: list[np.ndarray]  # one (n_steps, axis length) bool array per axis


def _perturbations(
    model, stimulus, extra, layers, recurrent, time_axis, forward_kwargs, device, chunk,
) -> tuple[np.ndarray, dict[str, _Profile], dict[str, _Profile], list[str]]:
    """Perturb each input time step of one stimulus; profiles of the layers and RNN inputs.

    Returns:
        ``(steps, layer_profiles, rnn_input_profiles, rnn_order)``.
    """
    x0 = _tensor(stimulus, device)[None]
    n_time = x0.shape[1 + time_axis]
    steps = np.arange(n_time)
    if n_time > MAX_PERTURBED_STEPS:
        steps = np.unique(np.linspace(0, n_time - 1, MAX_PERTURBED_STEPS).round().astype(int))
    generator = torch.Generator().manual_seed(0)
    scale = float(x0.std()) if x0.numel() > 1 and float(x0.std()) > 0 else 1.0
    base = x0 + 0.5 * scale * torch.randn(x0.shape, generator=generator).to(device)
    moved = base.movedim(1 + time_axis, 1)  # (1, time, ...) view for building copies
    pattern = 2 * scale * torch.randn(moved.shape[2:], generator=generator).to(device)
    # A random-sign pattern over many values already raises some and lowers others (what a
    # max pool or a ReLU needs to pass a change on); a few values get both signs.
    signs = (1.0, -1.0) if pattern.numel() < 8 else (1.0,)
    signed = [(int(t), sign) for sign in signs for t in steps]
    extra1 = {k: _tensor(v, device)[None] for k, v in extra.items()}
    sums: dict[str, list[list[np.ndarray]]] = {}
    rnn_sums: dict[str, list[list[np.ndarray]]] = {}
    rnn_order: list[str] = []
    recurrent_names = set(recurrent)
    names = list(dict.fromkeys([*layers, *recurrent]))

    def reduce(into, key, tensor):
        # Keep only, per axis, the largest change at each index: a few numbers per copy.
        full = (tensor[1:] - tensor[:1]).abs()
        per_axis = []
        for axis in range(1, full.ndim):
            others = [d for d in range(1, full.ndim) if d != axis]
            per_axis.append((full.amax(dim=others) if others else full).cpu().numpy())
        into.setdefault(key, []).append(per_axis)

    captured: dict[str, torch.Tensor] = {}
    rnn_inputs: dict[str, torch.Tensor] = {}

    def record(name, args, output, module):
        if name in recurrent_names and args and isinstance(args[0], torch.Tensor):
            first = args[0]
            rnn_inputs[name] = first.transpose(0, 1) if getattr(module, "batch_first", True) is False else first
            if name not in rnn_order:
                rnn_order.append(name)
        if name in layers:
            captured[name] = _batch_first(module, name, model, output)

    with _hooks(model, names, record), _bypass_norms(model), torch.no_grad():
        for start in range(0, len(signed), chunk):
            part = signed[start : start + chunk]
            copies = moved.repeat(len(part) + 1, *([1] * (moved.ndim - 1)))  # row 0: unperturbed
            for row, (t, sign) in enumerate(part, start=1):
                copies[row, t] += sign * pattern
            batch_extra = {k: v.expand(len(part) + 1, *v.shape[1:]).contiguous() for k, v in extra1.items()}
            output = _call(model, copies.movedim(1, 1 + time_axis), batch_extra, forward_kwargs)
            if OUTPUT in layers:
                captured[OUTPUT] = _batch_first(None, OUTPUT, model, output)
            for name, tensor in captured.items():
                reduce(sums, name, tensor.float())
            for name, tensor in rnn_inputs.items():
                reduce(rnn_sums, name, tensor.float())
            captured.clear()
            rnn_inputs.clear()

    def profiles(collected):
        out = {}
        for name, chunks in collected.items():
            per_axis = [np.concatenate([c[a] for c in chunks]) for a in range(len(chunks[0]))]
            largest = np.max([p.max(axis=1) for p in per_axis], axis=0) if per_axis else np.zeros(len(signed))
            changed = [p > _CHANGED_RTOL * largest[:, None] for p in per_axis]
            n = len(steps)  # rows: every step with the first sign, then with the second
            out[name] = _Profile([np.logical_or.reduce([c[i * n : (i + 1) * n] for i in range(len(signs))])
                                  for c in changed])
        return out

    return steps, profiles(sums), profiles(rnn_sums), rnn_order


def _moving_axis(profile: _Profile, steps: np.ndarray) -> int | None:
    """The axis (of one stimulus's output) whose changed indices move along with the perturbed
    input step as a contiguous run: the time axis. None if no axis does."""
    best, best_score = None, 0.8
    for axis, changed in enumerate(profile.changed):
        if changed.shape[1] < 2:
            continue
        counts = changed.sum(axis=1)
        rows = (counts > 0) & (counts < changed.shape[1])
        if rows.sum() < 2:
            continue
        index = np.arange(changed.shape[1])
        sub = changed[rows]
        centroid = (sub * index).sum(axis=1) / sub.sum(axis=1)
        first = np.where(sub.any(axis=1), sub.argmax(axis=1), 0)
        last = changed.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
        contiguity = np.median(sub.sum(axis=1) / (last - first + 1))
        if np.std(centroid) == 0 or np.std(steps[rows]) == 0 or contiguity < 0.75:
            continue
        score = float(np.corrcoef(steps[rows], centroid)[0, 1])
        if score > best_score:
            best, best_score = axis, score
    return best


def _edges(changed: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output step: (earliest, latest) perturbed input step that changes it, and validity."""
    valid = changed.any(axis=0)
    lo = np.where(valid, steps[changed.argmax(axis=0)], -1)
    hi = np.where(valid, steps[len(steps) - 1 - changed[::-1].argmax(axis=0)], -1)
    return lo.astype(np.float64), hi.astype(np.float64), valid


def _centres(changed: np.ndarray, steps: np.ndarray, n_input: int) -> tuple[np.ndarray, str]:
    """Time centres of a tensor's output steps from its (n_steps, n_out) change profile.

    Each receptive-field edge is a line in the output step, ``lo_j = a j + b_lo`` and
    ``hi_j = a j + b_hi``, wherever it lies inside the input. What is observed can only be
    narrower: the input's ends clip it, and a dilated kernel clipped by an end loses its outer
    taps. So, for each candidate slope (from consecutive unclipped steps), ``b_lo`` is the
    minimum of ``lo_j - a j`` and ``b_hi`` the maximum of ``hi_j - a j``, and the slope kept is
    the one whose lines pass through the most unclipped observations.

    Returns:
        ``(centres, kind)`` with kind ``"window"`` (both edges bounded), ``"causal"`` (open at the
        start), ``"anticausal"`` or ``"global"``.
    """
    n_out = changed.shape[1]
    j = np.arange(n_out, dtype=np.float64)
    lo, hi, valid = _edges(changed, steps)
    left = valid & (lo > steps[0])
    right = valid & (hi < steps[-1])
    ratio = n_input / n_out
    candidates = {ratio}
    for edge, mask in ((lo, left), (hi, right)):
        if mask.sum() >= 2:
            slopes = np.diff(edge[mask]) / np.diff(j[mask])
            candidates.update(np.round(slopes[slopes > 0], 9).tolist())

    def fit(slope):
        b_lo = np.min(lo[valid] - slope * j[valid])
        b_hi = np.max(hi[valid] - slope * j[valid])
        on_lo = int(np.sum(np.abs(lo[left] - slope * j[left] - b_lo) < 1e-6))
        on_hi = int(np.sum(np.abs(hi[right] - slope * j[right] - b_hi) < 1e-6))
        return (on_lo + on_hi, -abs(slope - ratio)), slope, b_lo, b_hi, on_lo, on_hi

    if not valid.any():
        return (j + 0.5) * ratio - 0.5, "global"
    _, slope, b_lo, b_hi, on_lo, on_hi = max((fit(c) for c in candidates), key=lambda found: found[0])
    if on_lo and on_hi:
        return slope * j + (b_lo + b_hi) / 2, "window"
    if on_hi:
        return slope * j + b_hi, "causal"
    if on_lo:
        return slope * j + b_lo, "anticausal"
    return (j + 0.5) * ratio - 0.5, "global"


# ---------------------------------------------------------------------------------------------
# naming
# ---------------------------------------------------------------------------------------------


def name_axes(shape: tuple[int, ...], time_axis: int | None, input_axes: tuple[str, ...]) -> tuple[str, ...]:
    """Axis names of a layer output of ``shape`` (one stimulus) whose time axis is ``time_axis``.

    The default naming of `describe_layers`: ``("unit",)`` for 1-D outputs; ``("time", "unit")``
    for time-major 2-D ones; otherwise a leading ``"channel"`` axis, then the input's spatial
    names (``space``/``depth``/``height``/``width``) if they fit, else generic ones, with
    ``"time"`` at ``time_axis``.
    """
    ndim = len(shape)
    if ndim == 0:
        return ()
    if time_axis is None:
        if ndim == 1:
            return ("unit",)
        if ndim == len(input_axes) and TIME not in input_axes and input_axes[0] in ("channel", "feature"):
            return ("channel", *input_axes[1:])
        return ("channel", *_spatial_names(ndim - 1, input_axes))
    if ndim == 1:
        return (TIME,)
    if time_axis == 0:
        rest = ndim - 1
        return (TIME, "unit") if rest == 1 else (TIME, "channel", *_spatial_names(rest - 1, input_axes))
    names = ["channel", *_spatial_names(ndim - 2, input_axes)]
    names.insert(time_axis, TIME)
    return tuple(names)


def _spatial_names(count: int, input_axes: tuple[str, ...]) -> tuple[str, ...]:
    if count == 0:
        return ()
    inherited = tuple(a for a in input_axes if a in _SPATIAL)
    if len(inherited) == count:
        return inherited
    if count not in _GENERIC_SPATIAL:
        raise AxesError(
            f"a layer output with {count} spatial axes has no default names; declare them in "
            "model.layer_axes"
        )
    return _GENERIC_SPATIAL[count]


def _check_declared(layer: str, axes: tuple[str, ...], shape: tuple[int, ...]) -> tuple[str, ...]:
    axes = tuple(a for a in axes if a != BATCH)
    if len(axes) != len(shape):
        raise AxesError(
            f"model.layer_axes[{layer!r}] = {axes} names {len(axes)} axes but one stimulus's output "
            f"has shape {shape}; fix the model's declaration"
        )
    return axes


def _declared_centres(model: nn.Module, layer: str, n_time: int) -> np.ndarray | None:
    declared = getattr(model, "time_centres", None)
    if declared is None:
        return None
    centres = declared.get(layer) if isinstance(declared, Mapping) else declared(layer, n_time)
    if centres is None:
        return None
    centres = np.asarray(centres, dtype=np.float64)
    if centres.shape != (n_time,) or not np.isfinite(centres).all():
        raise AxesError(
            f"model.time_centres for {layer!r} has shape {centres.shape} but the layer has {n_time} "
            "time steps; give one finite centre (in input samples) per step"
        )
    return centres


# ---------------------------------------------------------------------------------------------
# describing layers
# ---------------------------------------------------------------------------------------------


def describe_layers(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor | Mapping[str, Any],
    layers: list[str] | None = None,
    *,
    input_axes: Sequence[str] | None = None,
    forward_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    chunk: int | None = None,
) -> dict[str, LayerInfo]:
    """Axes and time centres of every probed layer (see the module docstring).

    Runs the first stimulus only: once plain, and, if the stimuli have a time axis, once per
    perturbed time step and sign (batched).

    Args:
        model: the network (put in eval mode).
        inputs: stimuli or a mapping of model inputs, as for `extract_activations`.
        layers: as for `extract_activations`; default `default_layers`.
        input_axes: axis names of one stimulus (e.g. a `StimulusSet`'s). ``model.input_axes``
            are used when the model declares them; if both are given they must agree.
        forward_kwargs: extra keyword arguments of ``model(...)``.
        device: torch device to run on.
        chunk: perturbed copies per forward pass (default: at most 64, fewer when the stimulus
            and the probed outputs are large, to bound memory).

    Returns:
        ``{layer: LayerInfo}`` in the order of ``layers`` (a `DescribedLayers`, whose
        ``input_axes`` are the stimulus axes used: declared, default or measured).

    Raises:
        AxesError: a declaration that does not fit, or ``input_axes`` that contradict the model's.
        ValueError: naming layers the model does not have.
    """
    layers = list(layers) if layers is not None else default_layers(model)
    stimuli, extra = split_inputs(inputs)
    stimulus = np.asarray(stimuli[:1])[0] if not isinstance(stimuli, torch.Tensor) else stimuli[0]
    first_extra = {k: v[0] for k, v in extra.items()}
    shape = tuple(stimulus.shape)
    given = None if input_axes is None else check_input_axes(input_axes, shape)
    declared = _model_input_axes(model, shape)
    if given is not None and declared is not None and given != declared:
        raise AxesError(
            f"the stimuli are declared {given} but the model declares its input as {declared}; "
            "remove or correct one of them"
        )
    axes_in = declared or given or default_input_axes(shape)
    shapes = {name: tuple(t.shape[1:]) for name, t in _run(
        model, stimulus[None], {k: v[None] for k, v in first_extra.items()}, layers, forward_kwargs, device).items()}
    modules = dict(model.named_modules())
    recurrent = [name for name, module in modules.items() if name and isinstance(module, nn.RNNBase)]
    if chunk is None:
        per_copy = int(np.prod(shape)) + sum(int(np.prod(s)) for s in shapes.values())
        chunk = int(max(2, min(64, _CHUNK_ELEMENTS // max(1, per_copy))))

    def measure(time_axis):
        return _perturbations(model, stimulus, first_extra, layers, recurrent, time_axis, forward_kwargs, device, chunk)

    measured = None
    if axes_in is None:  # undeclared 2-D stimuli: which axis behaves as time?
        moving = {}
        for axis in (0, 1):
            result = measure(axis)
            moving[axis] = result if any(_moving_axis(p, result[0]) is not None for p in result[1].values()) else None
        if (moving[0] is None) == (moving[1] is None):
            axes_in = ("height", "width")
        else:
            axes_in = ("time", "feature") if moving[0] is not None else ("channel", "time")
            measured = moving[0] or moving[1]
    elif TIME in axes_in:
        measured = measure(axes_in.index(TIME))
    described = DescribedLayers(
        (name, _describe(model, name, modules.get(name), shapes[name], axes_in, shape, measured, recurrent))
        for name in layers
    )
    described.input_axes = tuple(axes_in)
    return described


def _describe(model, name, module, shape, axes_in, input_shape, measured, recurrent) -> LayerInfo:
    n_input = input_shape[axes_in.index(TIME)] if TIME in axes_in else 0
    declared = _declared_axes(model, name)
    profile = measured[1].get(name) if measured else None
    steps = measured[0] if measured else None
    if declared is not None:
        axes = _check_declared(name, declared, shape)
    elif isinstance(module, nn.RNNBase):
        axes = (TIME, "unit") if len(shape) == 2 else name_axes(shape, 0, axes_in)
    else:
        time_axis = _moving_axis(profile, steps) if profile is not None else None
        if time_axis is None and measured and len(shape) >= 2 and measured[3]:
            # A global receptive field (after a bidirectional RNN, say) hides time; a time-major
            # output as long as the last recurrent stage's is taken to run step by step with it.
            rnn = measured[2][measured[3][-1]]
            time_axis = 0 if rnn.changed[0].shape[1] == shape[0] else None
        axes = name_axes(shape, time_axis, axes_in)
    if TIME not in axes:
        return LayerInfo(shape, axes, None)
    n_time = shape[axes.index(TIME)]
    centres = _declared_centres(model, name, n_time)
    if centres is None and measured is not None:
        centres = _measured_centres(name, module, axes, n_time, n_input, measured)
    return LayerInfo(shape, axes, centres)


def _measured_centres(name, module, axes, n_time, n_input, measured) -> np.ndarray | None:
    steps, profiles, rnn_profiles, rnn_order = measured

    def rnn_centres(rnn):
        profile = rnn_profiles.get(rnn)
        if profile is None or profile.changed[0].shape[1] != n_time:
            return None
        return _centres(profile.changed[0], steps, n_input)[0]

    if isinstance(module, nn.RNNBase):
        centres = rnn_centres(name)
        if centres is not None:
            return centres
    profile = profiles.get(name)
    if profile is None:
        return None
    centres, kind = _centres(profile.changed[axes.index(TIME)], steps, n_input)
    if kind != "window":
        # After a recurrent stage, time runs step by step: inherit the last such stage's centres.
        for rnn in reversed(rnn_order):
            inherited = rnn_centres(rnn)
            if inherited is not None:
                return inherited
    return centres

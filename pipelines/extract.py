"""Activations of named layers of a model for a set of stimuli, through forward hooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

OUTPUT = "output"  # the name of the model's own output among the layers


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


def _first_tensor(output: Any) -> torch.Tensor:
    # Recurrent modules return (output, hidden): the per-step output is what a unit "responds".
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"layer output of type {type(output).__name__} is not a tensor")
    return output


def layer_shapes(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    layers: list[str],
    *,
    forward_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, tuple[int, ...]]:
    """Output shape of each layer for one stimulus (without the batch axis).

    Args:
        inputs: (n, *input_shape) stimuli; only the first is run.
    """
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def record(_module, _inputs, output):
            shapes[name] = tuple(_first_tensor(output).shape[1:])

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers if name != OUTPUT]
    try:
        with torch.no_grad():
            batch = torch.as_tensor(np.asarray(inputs[:1]), dtype=torch.float32).to(device)
            shapes[OUTPUT] = tuple(_first_tensor(model.eval().to(device)(batch, **(forward_kwargs or {}))).shape[1:])
    finally:
        for handle in handles:
            handle.remove()
    return {name: shapes[name] for name in layers}


def extract_activations(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor,
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
        inputs: (n_stimuli, *input_shape) stimuli.
        layers: module names from ``model.named_modules()`` and/or ``"output"``; default
            `default_layers`.
        forward_kwargs: extra keyword arguments of ``model(...)``, e.g. ``{"session": "s0"}``.
        batch_size: stimuli per forward pass.
        device: torch device to run on.
        dtype: dtype of the returned arrays (float32 halves storage; analyses upcast).

    Returns:
        ``{layer: (n_stimuli, n_units)}`` with every non-batch axis of a layer's output flattened
        into units (channel-major, as ``tensor.reshape(n, -1)``), in the order of ``layers``.

    Raises:
        ValueError: naming layers the model does not have.
    """
    layers = list(layers) if layers is not None else default_layers(model)
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name != OUTPUT and name not in modules]
    if unknown:
        available = [n for n in modules if n][:30]
        raise ValueError(f"the model has no layer(s) {unknown}; it has {available} (and 'output')")
    inputs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    collected: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    captured: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(_module, _inputs, output):
            captured[name] = _first_tensor(output)

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers if name != OUTPUT]
    model.eval().to(device)
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = inputs[start : start + batch_size].to(device)
                output = _first_tensor(model(batch, **(forward_kwargs or {})))
                captured[OUTPUT] = output
                for name in layers:
                    value = captured[name]
                    collected[name].append(value.reshape(value.shape[0], -1).cpu().numpy().astype(dtype))
                captured.clear()
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.concatenate(chunks) for name, chunks in collected.items()}

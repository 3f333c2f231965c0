"""How a batch from a neurofit loader is fed to a model, for still images and for videos alike.

A batch is a `neurofit.datasets.info.Batch`, laid out as its `DataInfo` says. Data that provide
neural responses come in two layouts:

* per trial (still images): ``inputs`` (batch, *input_shape), ``responses`` (batch, n_neurons);
* per time step (``DataInfo.time_resolved``: videos, sequences, spectrograms): ``responses``
  (batch, time, n_neurons), e.g. a video's ``inputs`` (batch, channels, time, height, width),
  plus per-frame model inputs such as ``behavior`` (batch, time, k), ``pupil_center``
  (batch, time, 2) and ``optogenetic_signal`` (batch, time).

Every batch key that is not a label of the trial (`LABEL_KEYS`: what the model must predict or
what describes the trial) is a model input: the model is called as
``model(inputs, session, **other_inputs)``. So a lab's loader can add an input (say,
``eye_velocity``) and a model that takes it, without changes here. Time-resolved models return
(batch, time, n_neurons); the first ``DataInfo.burn_in`` steps of every sequence, where a causal
model has not yet seen enough history, are left out of the loss and of every score.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

__all__ = ["LABEL_KEYS", "model_inputs", "forward"]

#: Batch keys that are not keyword inputs of the model: the stimulus itself, what the model is
#: trained to predict (responses, targets, labels) with its loss mask (weights), and the trial's
#: labels. See `neurofit.datasets.info.Batch`.
LABEL_KEYS = frozenset({
    "inputs", "responses", "targets", "weights", "labels",
    "stimulus_id", "trial_id", "condition", "start",
})


def model_inputs(
    batch: Mapping[str, torch.Tensor], device: str | torch.device
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The stimulus and the other model inputs of a batch, moved to ``device``."""
    extra = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k not in LABEL_KEYS}
    return batch["inputs"].to(device, non_blocking=True), extra


def forward(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    session: str,
    device: str | torch.device,
    burn_in: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs ``model`` on one batch and returns predictions and responses aligned row by row.

    Nothing here depends on the modality: rows are whatever comes before the neuron axis
    (trials, or trials x time steps), and ``burn_in``, which `DataInfo` allows only for
    time-resolved data, trims axis 1 (time).

    Args:
        model: called as ``model(inputs, session, **other_inputs)``.
        batch: one batch of a neurofit loader, with ``responses``.
        session: the session the batch belongs to.
        device: where the model runs.
        burn_in: ``DataInfo.burn_in``: leading time steps of each sequence left out of both
            outputs (0 for still images).

    Returns:
        ``(predictions, responses)``, each (n_rows, n_neurons) on ``device``: rows are trials for
        images, and the steps after ``burn_in`` of every sequence (sequence-major) for
        time-resolved data.

    Raises:
        ValueError: if the model's output does not match the responses' shape, or ``burn_in``
            is set for responses without a time axis or leaves no step.
    """
    inputs, extra = model_inputs(batch, device)
    predictions = model(inputs, session, **extra)
    responses = batch["responses"].to(device, non_blocking=True)
    if predictions.shape != responses.shape:
        raise ValueError(
            f"the model returned shape {tuple(predictions.shape)} for session {session!r} but the "
            f"responses have shape {tuple(responses.shape)}; a model of time-resolved data must "
            "return (batch, time, n_neurons) with as many steps as its input"
        )
    if burn_in:
        if responses.ndim < 3:
            raise ValueError(
                f"burn_in={burn_in} needs responses with a time axis (batch, time, n_neurons), got "
                f"shape {tuple(responses.shape)}; still-image data have burn_in 0"
            )
        if not 0 < burn_in < responses.shape[1]:
            raise ValueError(
                f"burn_in={burn_in} leaves no frame of sequences {responses.shape[1]} frames long; "
                "use a smaller burn_in or longer sequences"
            )
        predictions, responses = predictions[:, burn_in:], responses[:, burn_in:]
    n_neurons = responses.shape[-1]
    return predictions.reshape(-1, n_neurons), responses.reshape(-1, n_neurons)

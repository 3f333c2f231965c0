"""How a batch from a neurofit loader is fed to a model, for still images and for videos alike.

Two batch layouts exist (see ``neurofit.datasets.info.DataBundle``):

* images: ``inputs`` (batch, *input_shape), ``responses`` (batch, n_neurons);
* videos: ``inputs`` (batch, channels, time, height, width), ``responses`` (batch, time,
  n_neurons), plus per-frame model inputs such as ``behavior`` (batch, time, k),
  ``pupil_center`` (batch, time, 2) and ``optogenetic_signal`` (batch, time).

Every batch key that is not a label of the trial (`LABEL_KEYS`) is a model input: the model is
called as ``model(inputs, session, **other_inputs)``. So a lab's loader can add an input (say,
``eye_velocity``) and a model that takes it, without changes here. Video models return
(batch, time, n_neurons); the first ``burn_in`` frames of every sequence, where a causal model
has not yet seen enough history, are left out of the loss and of every score.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

__all__ = ["LABEL_KEYS", "is_video", "model_inputs", "forward"]

#: Batch keys that describe the trial instead of feeding the model.
LABEL_KEYS = frozenset({"inputs", "responses", "stimulus_id", "trial_id", "condition", "start"})


def is_video(batch: Mapping[str, torch.Tensor]) -> bool:
    """True for video batches (responses carry a time axis)."""
    return batch["responses"].ndim == 3


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
    """Runs ``model`` on one batch and returns predictions and targets aligned row by row.

    Args:
        model: called as ``model(inputs, session, **other_inputs)``.
        batch: one batch of a neurofit loader.
        session: the session the batch belongs to.
        device: where the model runs.
        burn_in: video only: leading frames of each sequence left out of both outputs.

    Returns:
        ``(predictions, responses)``, each (n_rows, n_neurons) on ``device``: rows are trials for
        images, and the frames after ``burn_in`` of every sequence (sequence-major) for videos.

    Raises:
        ValueError: if the model's output does not match the responses' shape, or ``burn_in``
            leaves no frame.
    """
    inputs, extra = model_inputs(batch, device)
    predictions = model(inputs, session, **extra)
    responses = batch["responses"].to(device, non_blocking=True)
    if predictions.shape != responses.shape:
        raise ValueError(
            f"the model returned shape {tuple(predictions.shape)} for session {session!r} but the "
            f"responses have shape {tuple(responses.shape)}; a video model must return "
            "(batch, time, n_neurons) with as many frames as its input"
        )
    if responses.ndim == 3:
        if not 0 <= burn_in < responses.shape[1]:
            raise ValueError(
                f"burn_in={burn_in} leaves no frame of sequences {responses.shape[1]} frames long; "
                "use a smaller burn_in or longer sequences"
            )
        n_neurons = responses.shape[-1]
        predictions = predictions[:, burn_in:].reshape(-1, n_neurons)
        responses = responses[:, burn_in:].reshape(-1, n_neurons)
    return predictions, responses

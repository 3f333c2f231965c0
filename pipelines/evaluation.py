"""Model predictions on a data tier, gathered as numpy arrays for the analysis functions."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .batches import forward

__all__ = ["predict"]


def predict(
    model: nn.Module,
    loaders_by_session: Mapping[str, Iterable[Mapping[str, torch.Tensor]]],
    device: str | torch.device,
    burn_in: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Runs ``model`` over every batch of one tier, in eval mode and without gradients.

    The model's train/eval mode is restored afterwards, so this can run in the middle of training.
    Trials keep the loader's order; use an unshuffled loader (e.g. the validation or test tier).

    Time-resolved tiers (videos, sequences; responses (batch, time, n_neurons)) are scored step
    by step: every frame after ``burn_in`` of every trial is one row, and frame ``f`` of clip
    ``c`` is one "stimulus", so repeated presentations of a clip line up frame by frame in the
    repeat-based scores (correlation to the average, CCnorm).

    Args:
        model: called as ``model(inputs, session, **other_inputs)`` (see
            `neurofit.pipelines.batches`); already on ``device`` or movable there (in place).
        loaders_by_session: ``{session: loader}`` for one tier, e.g. ``bundle.loaders["test"]``.
        device: torch device the model runs on ("cpu", "cuda:0").
        burn_in: ``DataInfo.burn_in``: leading frames of each trial that are not scored.

    Returns:
        ``{session: arrays}`` with ``responses`` and ``predictions`` (n_rows, n_neurons) float32
        and ``stimulus_id`` (n_rows,) int64; rows are trials for images. For frames the arrays
        also hold, per row, ``trial_id`` and ``frame`` (int64, frame index within the trial) and,
        when the loader labels conditions, ``condition`` (int64); ``stimulus_id`` then numbers
        the distinct (clip, frame) pairs.
    """
    was_training = model.training
    model.to(device)
    model.eval()
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with torch.no_grad():
            for session, loader in loaders_by_session.items():
                parts: dict[str, list[np.ndarray]] = {}
                for batch in loader:
                    predictions, responses = forward(model, batch, session, device, burn_in)
                    rows = {"predictions": predictions.float(), "responses": responses}
                    rows = {k: v.cpu().numpy().astype(np.float32, copy=False) for k, v in rows.items()}
                    rows.update(_row_labels(batch, burn_in))
                    for name, value in rows.items():
                        parts.setdefault(name, []).append(value)
                if not parts:
                    raise ValueError(f"the loader of session {session!r} yielded no batches")
                arrays = {name: np.concatenate(values) for name, values in parts.items()}
                if "frame" in arrays:
                    pairs = np.stack([arrays.pop("clip_id"), arrays["frame"]], axis=1)
                    arrays["stimulus_id"] = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
                out[session] = arrays
    finally:
        model.train(was_training)
    return out


def _row_labels(batch: Mapping[str, torch.Tensor], burn_in: int) -> dict[str, np.ndarray]:
    """Per-row trial labels of one batch, repeated over the scored frames of time-resolved data."""
    ids = batch["stimulus_id"].numpy().astype(np.int64, copy=False)
    if batch["responses"].ndim == 2:  # one row per trial (the Batch layout without a time axis)
        return {"stimulus_id": ids}
    n_frames = batch["responses"].shape[1]
    frames = np.arange(burn_in, n_frames, dtype=np.int64)
    start = batch["start"].numpy().astype(np.int64) if "start" in batch else np.zeros(len(ids), np.int64)
    labels = {
        "clip_id": np.repeat(ids, len(frames)),
        "frame": (start[:, None] + frames[None, :]).reshape(-1),
    }
    for name in ("trial_id", "condition"):
        if name in batch:
            labels[name] = np.repeat(batch[name].numpy().astype(np.int64, copy=False), len(frames))
    return labels

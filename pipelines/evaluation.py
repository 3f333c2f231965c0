"""Model predictions on a data tier, gathered as numpy arrays for the analysis functions."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["predict"]


def predict(
    model: nn.Module,
    loaders_by_session: Mapping[str, Iterable[Mapping[str, torch.Tensor]]],
    device: str | torch.device,
) -> dict[str, dict[str, np.ndarray]]:
    """Runs ``model`` over every batch of one tier, in eval mode and without gradients.

    The model's train/eval mode is restored afterwards, so this can run in the middle of training.
    Trials keep the loader's order; use an unshuffled loader (e.g. the validation or test tier).

    Args:
        model: called as ``model(inputs, session)`` -> (batch, n_neurons); already on ``device``
            or movable there (it is moved in place).
        loaders_by_session: ``{session: loader}`` for one tier, e.g. ``bundle.loaders["test"]``;
            batches are dicts with ``inputs``, ``responses`` and ``stimulus_id``.
        device: torch device the model runs on ("cpu", "cuda:0").

    Returns:
        ``{session: {"responses": (n_trials, n_neurons) float32, "predictions": (n_trials,
        n_neurons) float32, "stimulus_id": (n_trials,) int64}}``.
    """
    was_training = model.training
    model.to(device)
    model.eval()
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with torch.no_grad():
            for session, loader in loaders_by_session.items():
                responses, predictions, ids = [], [], []
                for batch in loader:
                    predictions.append(model(batch["inputs"].to(device), session).cpu())
                    responses.append(batch["responses"])
                    ids.append(batch["stimulus_id"])
                if not ids:
                    raise ValueError(f"the loader of session {session!r} yielded no batches")
                out[session] = {
                    "responses": torch.cat(responses).numpy().astype(np.float32, copy=False),
                    "predictions": torch.cat(predictions).numpy().astype(np.float32, copy=False),
                    "stimulus_id": torch.cat(ids).numpy().astype(np.int64, copy=False),
                }
    finally:
        model.train(was_training)
    return out

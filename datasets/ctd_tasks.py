"""Task environments of the Computation-Through-Dynamics benchmark, as neurofit datasets.

Two tasks, both generated natively with numpy (no gymnasium, no neurogym):

* **NBFF**, the n-bit flip-flop (CtD ``task_env/NBFF.py``): each bit gets +1 (set) or -1 (reset)
  pulses with probability ``switch_prob`` per step each, never in the first 3 steps; the target
  is the bit's state (0/1); the inputs carry Gaussian noise. The loss mask is 0 for the first
  ``start_blind`` steps and for the ``transition_blind`` steps after each change of a bit
  (CtD's ``NBFFLoss``), per bit.
* **MultiTask**, a subset of the Yang/Driscoll cognitive tasks CtD combines (``multitask.py``):
  ``delay_pro``, ``delay_anti``, ``memory_pro`` and ``memory_anti``. Inputs are fixation, a
  stimulus on a ring as (cos, sin) and a one-hot rule; targets are fixation and the response
  direction as (cos, sin). The mask follows CtD's ``MultiTaskLoss``: 0 for the first 5 steps,
  weight 5 during the response, 0 for its first 5 steps, and 1 elsewhere before it.

Batches (modality "sequence", one session "all"): ``inputs`` (B, T, n_in), ``targets``
(B, T, n_out), ``weights`` (B, T, n_out) the loss mask, ``true_inputs`` is kept out of batches
(models would receive it as a keyword) and returned by `nbff_trials` only. Trials depend only on
``data_seed`` (a config field), so rebuilding a dataset from its config reproduces every trial:
the simulation of neural data relies on that.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader

from .info import DataBundle, DataInfo
from .rows import DictRows

__all__ = ["MULTITASK_TASKS", "build_multitask", "build_nbff", "multitask_trials",
           "nbff_mask", "nbff_trials", "tier_loaders"]

#: The CtD cognitive tasks implemented here (CtD has 15; these four share one delay structure).
MULTITASK_TASKS = ("delay_pro", "delay_anti", "memory_pro", "memory_anti")


def tier_loaders(tiers: dict[str, dict[str, np.ndarray]], batch_size: int) -> dict:
    """``{tier: {"all": DataLoader}}``; train shuffles from torch's global generator (exact resume)."""
    return {tier: {"all": DataLoader(DictRows(arrays), batch_size=batch_size, shuffle=tier == "train")}
            for tier, arrays in tiers.items()}


def nbff_mask(targets: np.ndarray, transition_blind: int, start_blind: int) -> np.ndarray:
    """CtD's NBFF loss mask: 0 at the first steps and just after each change of a bit.

    Args:
        targets: (n_trials, T, n_bits) bit states.
        transition_blind: steps after a change (the changed step included) that are ignored.
        start_blind: leading steps that are ignored.

    Returns:
        (n_trials, T, n_bits) float32 mask of 0/1.
    """
    changed = np.zeros(targets.shape, dtype=bool)
    changed[:, 1:] = np.diff(targets, axis=1) != 0
    blind = np.zeros_like(changed)
    for shift in range(transition_blind):  # a few shifts, vectorised over trials and bits
        blind[:, shift:] |= changed[:, : targets.shape[1] - shift]
    mask = (~blind).astype(np.float32)
    mask[:, :start_blind] = 0.0
    return mask


def nbff_trials(rng: np.random.Generator, n_trials: int, n_bits: int, timesteps: int,
                switch_prob: float, noise: float) -> dict[str, np.ndarray]:
    """Random flip-flop trials.

    Returns:
        ``inputs`` (noisy pulses), ``true_inputs`` (pulses in {-1, 0, 1}) and ``targets``
        (bit states in {0, 1}), each (n_trials, timesteps, n_bits) float32.
    """
    draw = rng.random((n_trials, timesteps, n_bits))
    pulses = np.where(draw > 1 - switch_prob, 1.0, np.where(draw < switch_prob, -1.0, 0.0))
    pulses[:, :3] = 0.0
    # The state after a step is the last pulse so far (set: 1, reset: 0), or 0 before any.
    steps = np.arange(timesteps)[None, :, None]
    last = np.maximum.accumulate(np.where(pulses != 0, steps, -1), axis=1)
    value = np.take_along_axis(pulses, np.maximum(last, 0), axis=1)
    targets = np.where(last >= 0, (value > 0).astype(float), 0.0)
    inputs = pulses + rng.normal(0.0, noise, pulses.shape)
    return {"inputs": inputs.astype(np.float32), "true_inputs": pulses.astype(np.float32),
            "targets": targets.astype(np.float32)}


def _split(n_train: int, n_validation: int, n_test: int) -> list[tuple[str, int]]:
    if min(n_train, n_validation) < 1 or n_test < 0:
        raise ValueError(f"need n_train, n_validation >= 1 and n_test >= 0, got {n_train}, {n_validation}, {n_test}")
    return [("train", n_train), ("validation", n_validation), ("test", n_test)]


def build_nbff(seed: int, *, n_bits: int = 3, timesteps: int = 100, switch_prob: float = 0.03,
               noise: float = 0.15, transition_blind: int = 4, start_blind: int = 5,
               n_train: int = 800, n_validation: int = 200, n_test: int = 0, batch_size: int = 64,
               data_seed: int = 0) -> DataBundle:
    """The n-bit flip-flop (see the module docstring); CtD's defaults except length and switching.

    Args:
        seed: unused for the trials (they depend on ``data_seed`` only), kept for the contract.
        n_bits, timesteps, switch_prob, noise: the task (switch_prob per bit, step and sign).
        transition_blind, start_blind: the loss mask (`nbff_mask`).
        n_train, n_validation, n_test: trials per tier (a tier of 0 trials is left out).
        batch_size: trials per batch.
        data_seed: seed of the trials.
    """
    if n_bits < 1 or timesteps <= start_blind or not 0 <= switch_prob <= 0.5 or noise < 0:
        raise ValueError(f"NBFF needs n_bits >= 1, timesteps > start_blind, switch_prob in [0, 0.5] and "
                         f"noise >= 0; got {n_bits}, {timesteps}, {switch_prob}, {noise}")
    rng = np.random.default_rng(data_seed)
    tiers = {}
    for tier, n in _split(n_train, n_validation, n_test):
        trials = nbff_trials(rng, n, n_bits, timesteps, switch_prob, noise) if n else None
        if trials is not None:
            tiers[tier] = {"inputs": trials["inputs"], "targets": trials["targets"],
                           "weights": nbff_mask(trials["targets"], transition_blind, start_blind)}
    info = DataInfo(input_shape=(timesteps, n_bits), n_neurons={"all": 0}, provides=("targets", "mask"),
                    modality="sequence", input_unit="pulse (+1 set, -1 reset) plus noise",
                    target_shape=(n_bits,), target_names=tuple(f"bit_{i}" for i in range(n_bits)),
                    extra={"task": "nbff"})
    return DataBundle(loaders=tier_loaders(tiers, batch_size), info=info)


def multitask_trials(rng: np.random.Generator, n_trials: int, tasks: tuple[str, ...], timesteps: int,
                     noise: float) -> dict[str, np.ndarray]:
    """Trials of the delay/memory tasks, the task drawn uniformly per trial.

    Epochs (in steps, drawn per trial): fixation, stimulus, delay, response to the end. "pro"
    answers toward the stimulus, "anti" away from it; in "delay" tasks the stimulus stays on
    through the delay, in "memory" tasks it goes off after the stimulus epoch.

    Returns:
        ``inputs`` (n, T, 3 + len(tasks)): fixation, cos, sin of the stimulus, one-hot rule;
        ``targets`` (n, T, 3): fixation, cos, sin of the response; ``weights`` (n, T, 3) the mask;
        ``task`` (n,) int64 index into ``tasks``.
    """
    n_rule = len(tasks)
    task = rng.integers(0, n_rule, n_trials)
    angle = rng.uniform(0, 2 * np.pi, n_trials)
    t = np.arange(timesteps)[None, :]
    stim_on = rng.integers(timesteps // 10, timesteps // 5, n_trials)[:, None]
    stim_off = stim_on + rng.integers(timesteps // 10, timesteps // 5, n_trials)[:, None]
    go = stim_off + rng.integers(timesteps // 10, timesteps // 4, n_trials)[:, None]
    names = np.asarray(tasks)[task]
    memory = np.char.startswith(names, "memory")[:, None]
    anti = np.char.endswith(names, "anti")
    shown = (t >= stim_on) & ((t < stim_off) | (~memory & (t < go)))
    fixating = (t < go).astype(np.float32)
    inputs = np.zeros((n_trials, timesteps, 3 + n_rule), np.float32)
    inputs[..., 0] = fixating
    inputs[..., 1] = shown * np.cos(angle)[:, None]
    inputs[..., 2] = shown * np.sin(angle)[:, None]
    inputs[np.arange(n_trials), :, 3 + task] = 1.0
    inputs[..., :3] += rng.normal(0.0, noise, (n_trials, timesteps, 3)).astype(np.float32)
    response = angle + np.pi * anti
    responding = t >= go
    targets = np.stack([fixating, responding * np.cos(response)[:, None], responding * np.sin(response)[:, None]], -1)
    weights = np.where(responding, 5.0, 1.0) * ~((t >= go) & (t < go + 5))
    weights[:, :5] = 0.0
    return {"inputs": inputs, "targets": targets.astype(np.float32),
            "weights": np.repeat(weights[..., None], 3, axis=-1).astype(np.float32), "task": task.astype(np.int64)}


def build_multitask(seed: int, *, tasks: tuple[str, ...] = MULTITASK_TASKS, timesteps: int = 100,
                    noise: float = 0.1, n_train: int = 800, n_validation: int = 200, n_test: int = 0,
                    batch_size: int = 64, data_seed: int = 0) -> DataBundle:
    """A mix of CtD's delay and memory tasks (`MULTITASK_TASKS`); see `multitask_trials`."""
    tasks = tuple(tasks)
    unknown = sorted(set(tasks) - set(MULTITASK_TASKS))
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks {list(tasks)}: choose distinct names among {list(MULTITASK_TASKS)}")
    if timesteps < 40:
        raise ValueError(f"timesteps={timesteps}: the task epochs need at least 40 steps")
    rng = np.random.default_rng(data_seed)
    tiers = {}
    for tier, n in _split(n_train, n_validation, n_test):
        if n:
            trials = multitask_trials(rng, n, tasks, timesteps, noise)
            tiers[tier] = {k: trials[k] for k in ("inputs", "targets", "weights")}
    info = DataInfo(input_shape=(timesteps, 3 + len(tasks)), n_neurons={"all": 0}, provides=("targets", "mask"),
                    modality="sequence", input_unit="fixation, stimulus (cos, sin), rule one-hot",
                    target_shape=(3,), target_names=("fixation", "cos", "sin"),
                    extra={"task": "multitask", "tasks": list(tasks)})
    return DataBundle(loaders=tier_loaders(tiers, batch_size), info=info)

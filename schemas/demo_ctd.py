"""The ``ctd`` demo: the Computation-Through-Dynamics benchmark end to end at demo size."""

from __future__ import annotations

import os
import time

from .activation import activate
from .config import Dataset, Model, Trainer
from .populating import populate
from .selection import TrainingSelection
from .training import TrainedModel

#: Demo size (the numbers of the workflow notes): 3 bits, 100 steps, 1000 trials.
TASK = dict(n_bits=3, timesteps=100, switch_prob=0.03, n_train=800, n_validation=200, batch_size=64)
TASK_MODEL = dict(latent_size=64)
TASK_TRAINER = dict(max_epochs=30, lr=1e-2, grad_clip=1.0, weight_decay=1e-8, patience=4)
LATENTS = (16, 64)
DATA_TRAINER = dict(max_epochs=25, lr=1e-2, patience=4)


def insert_demo_configs(scale: float = 1.0) -> tuple[dict, dict, list[dict]]:
    """Task model selection, simulation key and the data-trained selections (``scale`` < 1: smaller)."""
    from . import dynamics

    task = dict(TASK, n_train=max(32, int(TASK["n_train"] * scale)), n_validation=max(16, int(TASK["n_validation"] * scale)))
    epochs = max(2, int(TASK_TRAINER["max_epochs"] * scale))
    task_key = TrainingSelection.add_grid(
        Dataset.add("neurofit.nbff", task, comment="ctd demo"), Model.add("neurofit.noisy_gru", TASK_MODEL),
        Trainer.add("neurofit.supervised", dict(TASK_TRAINER, max_epochs=epochs)), 0)[0]
    return task_key, dynamics.SimulationConfig.add(), [{"max_epochs": max(2, int(DATA_TRAINER["max_epochs"] * scale))}]


def run_ctd_demo(prefix: str | None = None, out=print, *, scale: float | None = None) -> dict:
    """Task-trained GRU on the 3-bit flip-flop -> simulated spikes -> SAEs with 16 and 64 latents -> dynamics metrics.

    Running it again trains nothing. ``scale`` (default ``$NEUROFIT_CTD_SCALE`` or 1) shrinks trials
    and epochs for tests.

    Returns:
        ``{"seconds", "trained", "bit_accuracy", "n_patterns", "frame" (one row per task model x
        data model), "task_key", "dataset_key"}``.
    """
    import torch

    from . import dynamics

    torch.set_num_threads(int(os.environ.get("NEUROFIT_THREADS", "1")))
    scale = float(os.environ.get("NEUROFIT_CTD_SCALE", "1")) if scale is None else scale
    started = time.perf_counter()
    backend = activate(prefix)
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    before = len(TrainedModel())
    task_key, sim_key, trainer_overrides = insert_demo_configs(scale)
    populate("TrainedModel", task_key, display_progress=False)
    key = dynamics.SimulationSelection.add(task_key, sim_key)
    populate("SimulatedData", key, display_progress=False)
    dataset_key = dynamics.SimulatedDataset.dataset_key(key)
    models = [Model.add("neurofit.sae", {"latent_size": n}) for n in LATENTS]
    trainer = Trainer.add("neurofit.latent_poisson", dict(DATA_TRAINER, **trainer_overrides[0]))
    data_keys = TrainingSelection.add_grid(dataset_key, models, trainer, 0)
    populate("TrainedModel", data_keys, display_progress=False)
    populate("DynamicsComparison", data_keys, display_progress=False)
    settings = {"fp_settings": "default" if scale >= 1 else "quick"}
    populate("FixedPoints", {**task_key, **settings}, display_progress=False)
    accuracy = (dynamics.SimulatedData & key).fetch1("task_bit_accuracy")
    fixed = (dynamics.FixedPoints & task_key & settings).fetch1()
    frame = dynamics.comparison_frame(data_keys)
    out(f"task model bit accuracy (validation trials): {accuracy:.3f}")
    out(f"fixed points: {fixed['n_unique']} distinct, {fixed['n_stable']} stable, reading out "
        f"{fixed['n_patterns']} of {2 ** TASK['n_bits']} bit patterns")
    cols = ["latent_size", "rate_r2", "state_r2", "state_r2_reverse", "cycle_consistency", "co_bps"]
    out(frame[cols].to_string(index=False, float_format="{:.3f}".format))
    seconds = time.perf_counter() - started
    trained = len(TrainedModel()) - before
    out(f"trained {trained} model(s) in {seconds:.1f} s" + ("" if trained else ": all were already trained"))
    out("Next: notebooks/05_dynamics.ipynb (trajectories, fixed points in PCA space, metric bars)")
    return {"seconds": seconds, "trained": trained, "bit_accuracy": accuracy, "n_patterns": fixed["n_patterns"],
            "frame": frame, "task_key": task_key, "dataset_key": dataset_key, "data_keys": data_keys,
            "fp_settings": settings}

"""`neurofit demo dlgn`: the dLGN movie workflow end to end on simulated data with known ground truth.

Simulate dLGN recordings (two sessions, movies, running, pupil, optogenetic silencing of
cortical feedback on a subset of neurons), hand them over as a pandas DataFrame of trials (the
format labs have), convert that into a stored trial dataset, then train two video cores x two
seeds and score them per optogenetic condition.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from neurofit.pipelines.performance import roc_auc

from .activation import activate
from .config import Dataset, Model, Trainer
from .connection import home
from .performance import Performance
from .populating import populate
from .selection import TrainingSelection
from .training import TrainedModel

#: Simulation and loader sizes of the demo (small enough for a laptop CPU).
SIMULATION = dict(n_sessions=2, n_neurons=24, frame_size=(16, 24), n_train_clips=48,
                  n_validation_clips=8, n_test_clips=4, n_test_repeats=6, clip_length=(40, 80))
LOADER = {"subsequence_length": 40, "burn_in": 10, "batch_size": 8}
MODELS = [
    ("neurofit.factorized_3d", {"hidden_channels": 8, "layers": 2}),
    ("neurofit.conv_gru", {"hidden_channels": 8, "feature_layers": 1}),
]
TRAINER = ("neurofit.poisson", {"max_epochs": 60, "lr": 0.02, "patience": 5, "grad_clip": 10.0})
SEEDS = [1, 2]


def trials_dataframe(simulation):
    """The simulated trials as a pandas DataFrame, one row per trial (a lab's pickled format)."""
    import pandas as pd

    frame = pd.DataFrame(simulation.trials)
    frame.index = [f"trial_{i:04d}" for i in range(len(frame))]
    return frame


def convert_demo_dataset(directory: Path | None = None, *, backend: str = "memmap", seed: int = 0,
                         simulation: dict | None = None) -> tuple[Path, dict]:
    """Simulate, convert the DataFrame into a stored dataset (once), return its path and ground truth."""
    from neurofit.datasets.synthetic_dlgn import simulate_dlgn
    from neurofit.datasets.trial_storage import open_trials, write_trials
    from neurofit.datasets.trials import TrialSet

    settings = {**SIMULATION, **(simulation or {})}
    sim = simulate_dlgn(seed, ground_truth_seed=seed, **settings)
    trials = TrialSet.from_dataframe(
        trials_dataframe(sim), neurons=sim.neurons, frame_rate=sim.frame_rate,
        behavior_names=sim.behavior_names,
    )
    directory = Path(directory or home() / "datasets")
    path = directory / f"dlgn_demo_{backend}_{trials.meta.fingerprint[:12]}"
    if not path.exists():
        write_trials(trials, path, backend=backend)
    elif open_trials(path).meta.fingerprint != trials.meta.fingerprint:
        raise RuntimeError(f"{path} holds other data than the demo's; remove it and run again")
    return path, sim.ground_truth


def insert_demo_configs(path: Path) -> list[dict]:
    """Insert the demo's configs and select its 2 cores x 2 seeds; returns the selected keys."""
    dataset = Dataset.add("neurofit.video_trials", {"path": str(path), **LOADER}, comment="neurofit dlgn demo")
    models = [Model.add(fn, config, comment="neurofit dlgn demo") for fn, config in MODELS]
    trainer = Trainer.add(*TRAINER, comment="neurofit dlgn demo")
    return TrainingSelection.add_grid(dataset, models, trainer, SEEDS)


def modulation_recovery(neurons, ground_truth: dict) -> dict[str, float]:
    """How well each model's predicted optogenetic ratio separates modulated from other neurons.

    Args:
        neurons: `Performance.neurons()` frame of one dataset.
        ground_truth: the simulation's ground truth (``sessions -> modulated``).

    Returns:
        ``{model_fn: area under the ROC curve}`` (1: every modulated neuron has a larger
        predicted change than every unmodulated one; 0.5: chance), pooled over seeds and sessions.
    """
    truth = {s: np.asarray(v["modulated"], bool) for s, v in ground_truth["sessions"].items()}
    frame = neurons.copy()
    frame["modulated"] = [truth[s][n] for s, n in zip(frame["session"], frame["neuron"])]
    frame["change"] = np.abs(np.log(frame["predicted_ratio_optogenetic"].astype(float)))
    return {fn: roc_auc(group["change"].to_numpy(), group["modulated"].to_numpy())
            for fn, group in frame.groupby("model_fn")}


def run_dlgn_demo(prefix: str | None = None, out=print) -> dict:
    """Video cores on simulated dLGN movies with running, pupil and optogenetics (several minutes).

    Convert a DataFrame of trials, insert, populate, print. Running it again trains nothing.

    Returns:
        ``{"trained", "seconds", "results" (per model x seed x condition), "neurons" (tidy
        per-neuron frame), "recovery" ({model_fn: AUC}), "ceiling", "path"}``.
    """
    import pandas as pd

    started = time.perf_counter()
    backend = activate(prefix)
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    path, ground_truth = convert_demo_dataset()
    out(f"trial dataset (converted from a DataFrame of trials): {path}")
    keys = insert_demo_configs(path)
    before = len(TrainedModel & keys)
    out(f"selected {len(keys)} trainings (2 cores x 2 seeds); {before} already trained")
    populate(display_progress=True)
    trained = len(TrainedModel & keys) - before

    neurons = Performance.neurons(keys)
    # CCnorm divides by a signal-power estimate that is noisy with 3 repeats per condition, so
    # weak neurons can exceed 1 by a lot; the median is the robust summary over neurons.
    # Medians above 1 are expected here: running and pupil differ between repeats, the
    # repeat-based ceiling counts that as noise, and a model that uses behaviour explains part
    # of it (the true rates themselves reach a median CCnorm of about 1.13 on these data).
    by_condition = (
        neurons.groupby(["model_fn", "seed"]).agg(
            r_control=("single_trial_correlation_control", "mean"),
            r_optogenetic=("single_trial_correlation_optogenetic", "mean"),
            median_cc_norm_control=("cc_norm_control", "median"),
            median_cc_norm_optogenetic=("cc_norm_optogenetic", "median"),
        ).reset_index()
    )
    recovery = modulation_recovery(neurons, ground_truth)
    ceiling = float(np.mean(list(ground_truth["ceiling"].values())))
    seconds = time.perf_counter() - started
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        out("\ntest scores per optogenetic condition (mean single-trial r, median CCnorm over neurons):")
        out(by_condition.to_string(index=False))
    out(f"ground-truth ceiling of the single-trial r (true rates): {ceiling:.3f}")
    out("CCnorm above 1: behaviour changes responses between repeats; the repeat-based ceiling counts "
        "that as noise, and these models predict part of it from running and pupil")
    out("\noptogenetic modulation recovered from the models' predictions (AUC, 0.5 = chance):")
    for fn, auc in recovery.items():
        out(f"  {fn:28s} {auc:.3f}")
    n_modulated = sum(sum(v["modulated"]) for v in ground_truth["sessions"].values())
    out(f"  ground truth: {n_modulated} of {len(neurons) // len(keys)} neurons are modulated by the laser")
    out(f"\ntrained {trained} model(s) in {seconds:.1f} s" + ("" if trained else ": all were already trained"))
    out("\nNext: notebooks/03_dlgn_movies.ipynb (traces, per-condition scores) and "
        "Performance.neurons() for one row per model x seed x session x neuron")
    return {"trained": trained, "seconds": seconds, "results": by_condition, "neurons": neurons,
            "recovery": recovery, "ceiling": ceiling, "path": path}

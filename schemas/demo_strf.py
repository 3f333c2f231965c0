"""`neurofit demo strf`: the deepSTRF benchmark on simulated auditory neurons with known STRFs.

Two synthetic datasets of linear-nonlinear neurons with Gabor-like STRFs (`neurofit.synthetic_strf`):
natural-like sounds (correlated in time and frequency), to which a ridge STRF, a linear model
fitted by gradient descent, an LN model, an NRF and a 2D-CNN are fitted; and DRC (white) sounds,
on which the ridge STRF recovers the true STRFs. Everything goes through the core (configs,
selection, populate); the scores come from `Performance`, `AuditoryScore` and `STRFRecovery`, and
the models are ranked with `neurofit.schemas.leaderboard.leaderboard`.

``$NEUROFIT_STRF_SIZE=small`` runs a smaller version (fewer neurons, bands and sounds, one seed),
as the notebook test does.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .activation import activate
from .config import Dataset, Model, Trainer
from .leaderboard import leaderboard
from .populating import populate
from .selection import TrainingSelection
from .training import TrainedModel

__all__ = ["SIZES", "demo_settings", "insert_demo_configs", "label", "run_strf_demo", "strf_pair"]

COMMENT = "neurofit strf demo"
TABLES = ["TrainedModel", "Performance", "AuditoryScore", "STRFRecovery"]

#: Per size: the simulation (defaults of `neurofit.synthetic_strf` otherwise), STRF length, the
#: gradient trainer's settings and the seeds. "full" is the measured benchmark configuration.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "data": {"n_neurons": 20, "n_bands": 18, "n_lags": 15, "n_train_clips": 60, "n_validation_clips": 6,
                 "n_test_clips": 6, "n_repeats": 10, "clip_bins": 200},
        "gradient": {"max_epochs": 40},
        "seeds": [1, 2],
    },
    "small": {
        "data": {"n_neurons": 8, "n_bands": 12, "n_lags": 8, "n_train_clips": 40, "n_validation_clips": 4,
                 "n_test_clips": 4, "n_repeats": 8, "clip_bins": 100},
        "gradient": {"max_epochs": 25},
        "seeds": [1],
    },
}

#: Short names of the model families, as deepSTRF's benchmark tables write them.
FAMILIES = {"neurofit.strf_linear": "L", "neurofit.strf_ln": "LN", "neurofit.strf_nrf": "NRF",
            "neurofit.strf_cnn2d": "2D-CNN", "neurofit.strf_dnet": "DNet", "neurofit.strf_statenet": "StateNet"}


def demo_settings(size: str | None = None) -> dict[str, Any]:
    """The settings of one size ("full" or "small"; default ``$NEUROFIT_STRF_SIZE`` or "full")."""
    size = size or os.environ.get("NEUROFIT_STRF_SIZE", "full")
    if size not in SIZES:
        raise ValueError(f"NEUROFIT_STRF_SIZE={size!r}: use one of {sorted(SIZES)}")
    return {"size": size, **SIZES[size]}


def label(model_fn: str, trainer_fn: str) -> str:
    """``"L (ridge)"``, ``"LN"``, ...: the family, and the trainer when it is the closed-form ridge."""
    family = FAMILIES.get(model_fn, model_fn)
    return f"{family} (ridge)" if trainer_fn == "neurofit.ridge_strf" else family


def insert_demo_configs(settings: dict[str, Any]) -> dict[str, Any]:
    """Insert both datasets, the four models and three trainer configs; select the grid.

    Returns:
        ``{"natural", "drc"}`` dataset keys and ``"keys"`` (every selected training).
    """
    n_lags = settings["data"]["n_lags"]
    natural = Dataset.add("neurofit.synthetic_strf", {**settings["data"], "stimulus": "natural"}, comment=COMMENT)
    drc = Dataset.add("neurofit.synthetic_strf", {**settings["data"], "stimulus": "drc"}, comment=COMMENT)
    linear = Model.add("neurofit.strf_linear", {"n_lags": n_lags}, comment=COMMENT)
    networks = [Model.add("neurofit.strf_ln", {"n_lags": n_lags}, comment=COMMENT),
                Model.add("neurofit.strf_nrf", {"n_lags": n_lags}, comment=COMMENT),
                Model.add("neurofit.strf_cnn2d", {}, comment=COMMENT)]
    ridge = Trainer.add("neurofit.ridge_strf", {}, comment=COMMENT)
    # Spike counts: a Poisson loss for the models with positive outputs; the linear model's
    # output can be negative, so it gets deepSTRF's MSE.
    mse = Trainer.add("neurofit.auditory", {**settings["gradient"], "loss": "mse"}, comment=COMMENT)
    poisson = Trainer.add("neurofit.auditory", {**settings["gradient"], "loss": "poisson"}, comment=COMMENT)
    seeds = settings["seeds"]
    keys = TrainingSelection.add_grid([natural, drc], linear, ridge, seeds)
    keys += TrainingSelection.add_grid(natural, linear, mse, seeds)
    keys += TrainingSelection.add_grid(natural, networks, poisson, seeds)
    return {"natural": natural, "drc": drc, "keys": keys}


def _recovery(keys) -> dict[str, float]:
    """Mean fitted-vs-true STRF r per model label (over seeds) of the given trainings."""
    from .auditory import STRFRecovery

    rows = (STRFRecovery * TrainedModel.proj() & keys).proj("mean_r").to_dicts()
    by_label: dict[str, list[float]] = {}
    for row in rows:
        by_label.setdefault(label(row["model_fn"], row["trainer_fn"]), []).append(float(row["mean_r"]))
    return {name: float(np.mean(values)) for name, values in by_label.items()}


def _cc_norm(keys) -> dict[str, float]:
    """Mean test CCnorm per model label (over seeds) of the given trainings, best first.

    From the demo's own trainings: the dataset's leaderboard also ranks any other model trained
    on the same data (an earlier configuration, a colleague's).
    """
    from .performance import Performance

    rows = (Performance & keys).proj("cc_norm").to_dicts()
    by_label: dict[str, list[float]] = {}
    for row in rows:
        by_label.setdefault(label(row["model_fn"], row["trainer_fn"]), []).append(float(row["cc_norm"]))
    means = {name: float(np.mean(values)) for name, values in by_label.items()}
    return dict(sorted(means.items(), key=lambda item: -item[1]))


def strf_pair(key: dict, neuron: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True and fitted STRF of one neuron of a trained L / LN model: two (lags, bands) arrays."""
    from .artefacts import DatasetArtefact
    from .auditory import STRFRecovery

    fitted = (STRFRecovery.Neuron & key & {"neuron": neuron}).fetch1("fitted_strf")
    truth = np.asarray(DatasetArtefact.fetch_artefact(key, "strf"))[neuron]
    return truth[0], np.asarray(fitted)[0]  # channel 0: the spectrogram itself (no front end)


def _board_text(board) -> str:
    import pandas as pd

    shown = board.assign(model=[label(m, t) for m, t in zip(board.model_fn, board.trainer_fn)],
                         n_parameters=board.n_parameters.round().astype(int),
                         configs=[f"{m[:6]}/{t[:6]}" for m, t in zip(board.model_hash, board.trainer_hash)])
    columns = ["rank", "model", "configs", "n_seeds", "cc_norm_mean", "cc_norm_sd", "cc_raw_mean", "n_parameters",
               "parameters_per_neuron"]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        return shown[columns].to_string(index=False)


def run_strf_demo(prefix: str | None = None, out=print) -> dict:
    """deepSTRF's benchmark on simulated auditory neurons: ridge, L, LN, NRF, 2D-CNN (a few minutes).

    Insert, populate, print CCnorm per model, STRF recovery and the leaderboard. Running it
    again trains nothing.

    Returns:
        ``{"trained", "seconds", "size", "cc_norm" ({label: mean test CCnorm}), "recovery"
        ({label: mean STRF r} on natural-like sounds), "drc_recovery" (ridge, DRC), "ceiling"
        (true rates' test CCnorm), "leaderboard" (DataFrame), "keys", "natural", "drc"}``.
    """
    started = time.perf_counter()
    backend = activate(prefix)
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    settings = demo_settings()
    selected = insert_demo_configs(settings)
    keys = selected["keys"]
    before = len(TrainedModel & keys)
    out(f"size {settings['size']}: selected {len(keys)} trainings (5 models on natural-like sounds, ridge on DRC, "
        f"seeds {settings['seeds']}); {before} already trained")
    populate(TABLES, keys, display_progress=True)
    trained = len(TrainedModel & keys) - before

    natural = [k for k in keys if k["dataset_hash"] == selected["natural"]["dataset_hash"]]
    drc = [k for k in keys if k["dataset_hash"] == selected["drc"]["dataset_hash"]]
    board = leaderboard(selected["natural"])
    cc_norm = _cc_norm(natural)
    ceiling = float((TrainedModel & natural[0]).fetch1("data_info")["ceiling"]["cc_norm"])
    recovery, drc_recovery = _recovery(natural), _recovery(drc)["L (ridge)"]
    seconds = time.perf_counter() - started

    out(f"\nnatural-like sounds: test CCnorm per model (mean over seeds); the true rates reach {ceiling:.3f}")
    for name, value in cc_norm.items():
        out(f"  {name:12s} {value:.3f}")
    out("\nSTRF recovery (Pearson r of fitted vs true STRFs, mean over neurons and seeds):")
    out(f"  DRC sounds, L (ridge)      {drc_recovery:.3f}")
    for name, value in recovery.items():
        out(f"  natural-like, {name:12s} {value:.3f}")
    out("  (correlated natural-like sounds blur the recovered kernels; white DRC sounds do not)")
    out(f"\nleaderboard, natural-like sounds (neurofit leaderboard {selected['natural']['dataset_hash'][:8]}):")
    out(_board_text(board))
    out(f"\ntrained {trained} model(s) in {seconds:.1f} s" + ("" if trained else ": all were already trained"))
    out("\nNext: notebooks/06_auditory.ipynb (true vs fitted STRFs), AuditoryScore.Neuron for every score per "
        "neuron (CCmax, TTRC, predictive power, jackknife intervals)")
    return {"trained": trained, "seconds": seconds, "size": settings["size"], "cc_norm": cc_norm,
            "recovery": recovery, "drc_recovery": drc_recovery, "ceiling": ceiling, "leaderboard": board,
            "keys": keys, "natural": selected["natural"], "drc": selected["drc"]}

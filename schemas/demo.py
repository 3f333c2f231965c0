"""`neurofit demo`: the whole loop on synthetic data with a known ground truth."""

from __future__ import annotations

import time

from neurofit.datasets.info import DataInfo

from .activation import activate
from .config import Dataset, Model, Trainer
from .performance import Performance
from .populating import populate
from .selection import TrainingSelection
from .training import TrainedModel

DEMO_DATASET = ("neurofit.synthetic_responses", {})
DEMO_MODELS = [
    ("neurofit.gaussian_cnn", {"hidden_channels": 8, "layers": 2}),
    ("neurofit.gaussian_cnn", {"hidden_channels": 16, "layers": 3}),
]
DEMO_TRAINER = ("neurofit.poisson", {})
DEMO_SEEDS = [1, 2]


def insert_demo_configs() -> list[dict]:
    """Insert the demo's configs and select its 2 models x 2 seeds; returns the selected keys."""
    dataset = Dataset.add(*DEMO_DATASET, comment="neurofit demo")
    models = [Model.add(fn, config, comment="neurofit demo") for fn, config in DEMO_MODELS]
    trainer = Trainer.add(*DEMO_TRAINER, comment="neurofit demo")
    return TrainingSelection.add_grid(dataset, models, trainer, DEMO_SEEDS)


def results_table(keys: list[dict]):
    """Demo results as a pandas DataFrame, one row per trained model."""
    rows = (TrainedModel * Performance & keys).proj(
        "score", "n_epochs", "duration", "single_trial_correlation", "correlation_to_average",
        "feve", "oracle_correlation",
    )
    frame = rows.to_pandas().reset_index()
    frame["model"] = frame["model_hash"].str[:8]
    return frame[
        ["model", "seed", "n_epochs", "duration", "score", "single_trial_correlation",
         "correlation_to_average", "feve", "oracle_correlation"]
    ].sort_values(["model", "seed"])


def run_demo(prefix: str | None = None, out=print) -> dict:
    """CNNs fitted to simulated responses to images, 2 models x 2 seeds (1-3 minutes).

    Insert, populate, print. Running it again trains nothing.

    Returns:
        ``{"trained": int, "seconds": float, "results": DataFrame, "ceiling": dict}``.
    """
    started = time.perf_counter()
    backend = activate(prefix)
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    keys = insert_demo_configs()
    before = len(TrainedModel & keys)
    out(f"selected {len(keys)} trainings (2 models x 2 seeds); {before} already trained")
    populate(display_progress=True)
    trained = len(TrainedModel & keys) - before
    results = results_table(keys)
    ceiling = DataInfo.from_dict((TrainedModel & keys[0]).fetch1("data_info")).ceiling
    seconds = time.perf_counter() - started
    import pandas as pd

    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        out("\n" + results.to_string(index=False))
    out(
        "\nmean test correlation, single trials: "
        f"{results['single_trial_correlation'].mean():.3f} (ground-truth ceiling "
        f"{ceiling.get('single_trial_correlation', float('nan')):.3f}, chance 0)"
    )
    out(
        "mean test correlation to the repeat average: "
        f"{results['correlation_to_average'].mean():.3f} (ground-truth ceiling "
        f"{ceiling.get('correlation_to_average', float('nan')):.3f})"
    )
    out(f"\ntrained {trained} model(s) in {seconds:.1f} s" + ("" if trained else ": all were already trained"))
    out(
        "\nNext:\n"
        "  neurofit status                      what is done, pending or failed\n"
        "  neurofit builders                    the dataset/model/trainer builders you can use\n"
        "  neurofit add model neurofit.gaussian_cnn --config my_model.yaml\n"
        "  neurofit select --dataset HASH --model HASH --trainer HASH --seed 1 2 && neurofit populate\n"
        "  notebooks/01_getting_started.ipynb   query results into pandas and plot them"
    )
    return {"trained": trained, "seconds": seconds, "results": results, "ceiling": ceiling}

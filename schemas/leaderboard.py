"""Benchmark tables: the trained models of one dataset ranked by mean CCnorm (deepSTRF's benchmark).

Works for every dataset whose trained models have `Performance` rows (dLGN movies, images,
spectrograms): CCnorm (Schoppe et al. 2016) and CCraw (= CCabs) are means over neurons with
signal power, each then averaged over seeds (mean ± sd).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["leaderboard", "LEADERBOARD_COLUMNS"]

LEADERBOARD_COLUMNS = (
    "rank", "model_fn", "model_hash", "trainer_fn", "trainer_hash", "n_seeds", "cc_norm_mean", "cc_norm_sd",
    "cc_raw_mean", "cc_raw_sd", "n_parameters", "n_neurons", "parameters_per_neuron",
)


def _dataset_restriction(dataset: str | Mapping[str, Any]):
    """The `Dataset` rows a name, a hash (prefix) or a key designates; raises if none."""
    from .config import Dataset

    if isinstance(dataset, Mapping):
        query = Dataset & dict(dataset)
    else:
        text = str(dataset)
        query = Dataset & {"dataset_fn": text}
        if not query:
            hashes = [h for h in Dataset.to_arrays("dataset_hash") if str(h).startswith(text)] if text else []
            query = Dataset & [{"dataset_hash": h} for h in hashes]
    if not query:
        raise ValueError(
            f"no dataset {dataset!r}: give a dataset builder name (e.g. neurofit.synthetic_strf), a dataset hash "
            "(a unique prefix is enough) or a key; `neurofit status` and Dataset() list them"
        )
    return query.proj()


def leaderboard(dataset: str | Mapping[str, Any], *, score: str = "cc_norm"):
    """Models of one dataset ranked by mean test CCnorm, with CCraw and parameter counts.

    Args:
        dataset: a dataset builder name (all its configs), a dataset hash or unique prefix, or a
            `Dataset` key.
        score: ``"cc_norm"`` (default) or ``"cc_raw"``, the column the ranking sorts by.

    Returns:
        pandas.DataFrame with `LEADERBOARD_COLUMNS`, one row per (model config, trainer
        config) over its seeds, best first: ``*_mean`` / ``*_sd`` over seeds (sd NaN for a
        single seed), ``n_parameters`` (trainable parameters, the mean over seeds),
        ``n_neurons`` and ``parameters_per_neuron``. Empty (with the columns) when no trained
        model of the dataset has a `Performance` row yet (run ``neurofit populate``).

    Raises:
        ValueError: an unknown dataset or score.
    """
    import pandas as pd

    from .performance import Performance
    from .training import TrainedModel

    if score not in ("cc_norm", "cc_raw"):
        raise ValueError(f"score {score!r}: rank by 'cc_norm' or 'cc_raw'")
    rows = (Performance * TrainedModel.proj("n_parameters") & _dataset_restriction(dataset)).proj(
        "cc_norm", "cc_abs", "n_neurons", "n_parameters").to_dicts()
    if not rows:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    frame = pd.DataFrame(rows).rename(columns={"cc_abs": "cc_raw"})
    for column in ("cc_norm", "cc_raw", "n_parameters", "n_neurons"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    group = ["model_fn", "model_hash", "trainer_fn", "trainer_hash"]
    table = frame.groupby(group, sort=False).agg(
        n_seeds=("seed", "nunique"), cc_norm_mean=("cc_norm", "mean"), cc_norm_sd=("cc_norm", "std"),
        cc_raw_mean=("cc_raw", "mean"), cc_raw_sd=("cc_raw", "std"), n_parameters=("n_parameters", "mean"),
        n_neurons=("n_neurons", "mean"),
    ).reset_index()
    table["parameters_per_neuron"] = table["n_parameters"] / table["n_neurons"]
    table = table.sort_values(f"{score}_mean", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table[list(LEADERBOARD_COLUMNS)]

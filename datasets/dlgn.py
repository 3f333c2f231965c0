"""Dataset builders of the dLGN movie workflow: a stored trial dataset, or simulated dLGN data.

Both return the nested video loaders of `neurofit.datasets.video_loaders`; see there for the
batch layout and the meaning of ``subsequence_length`` and ``burn_in``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ._correlation import pearson_columns
from .info import DataBundle
from .paths import resolve_data_path
from .synthetic_dlgn import simulate_dlgn
from .trial_storage import is_trial_store, open_trials
from .trials import TrialSet
from .video_loaders import build_video_loaders

__all__ = ["build_video_trials", "build_synthetic_dlgn", "ground_truth_ceiling"]


def build_video_trials(
    seed: int,
    *,
    path: str,
    subsequence_length: int = 60,
    burn_in: int = 15,
    batch_size: int = 8,
    normalize: bool = True,
    num_workers: int = 0,
) -> DataBundle:
    """Loaders over a trial dataset written by `neurofit.datasets.trial_storage.write_trials`.

    Args:
        seed: non-negative; changes only the order of train trials and their random windows.
        path: folder of the dataset (numpy-memmap or Deep Lake; the format is detected). It
            must lie inside ``$NEUROFIT_DATA_ROOTS`` when that is set (`neurofit.datasets.paths`).
        subsequence_length, burn_in, batch_size, normalize, num_workers: see
            `neurofit.datasets.video_loaders.build_video_loaders`.

    Returns:
        A `DataBundle`; ``info.fingerprint`` identifies the stored content, so a trained
        model records which data it saw even if the folder is later replaced.
    """
    location = resolve_data_path(path, "neurofit trial store (write one with `neurofit convert`)", is_trial_store)
    reader = open_trials(location)
    return build_video_loaders(
        reader, seed, subsequence_length=subsequence_length, burn_in=burn_in,
        batch_size=batch_size, normalize=normalize, num_workers=num_workers,
    )


def build_synthetic_dlgn(
    seed: int,
    *,
    n_sessions: int = 2,
    n_neurons: int = 30,
    frame_size: Sequence[int] = (16, 24),
    n_train_clips: int = 40,
    n_validation_clips: int = 8,
    n_test_clips: int = 4,
    n_test_repeats: int = 6,
    clip_length: Sequence[int] = (40, 80),
    modulated_fraction: float = 0.4,
    optogenetic_gain: float = 0.4,
    ground_truth_seed: int = 0,
    subsequence_length: int = 40,
    burn_in: int = 10,
    batch_size: int = 8,
) -> DataBundle:
    """Loaders over simulated dLGN responses to movies with known ground truth.

    The simulation (`neurofit.datasets.synthetic_dlgn.simulate_dlgn`) is fixed by
    ``ground_truth_seed``; ``seed`` changes only the order of train trials and their windows.

    Returns:
        A `DataBundle` whose ``info.ceiling`` holds the mean single-trial r of the true rates on
        the test frames after ``burn_in`` (see `ground_truth_ceiling`), and whose artefacts (fixed
        by the config, whatever ``seed``) are ``ground_truth`` (the simulation's settings and,
        per session, `DLGNPopulation.to_json`: which neurons the laser modulates and by what
        gain, receptive fields, temporal kernels, running gains) and ``ceiling_per_neuron``
        (``{session: [r per neuron]}``, the same frames).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed!r}")
    simulation = simulate_dlgn(
        ground_truth_seed, n_sessions=n_sessions, n_neurons=n_neurons,
        frame_size=tuple(frame_size), n_train_clips=n_train_clips,
        n_validation_clips=n_validation_clips, n_test_clips=n_test_clips,
        n_test_repeats=n_test_repeats, clip_length=tuple(clip_length),
        modulated_fraction=modulated_fraction, optogenetic_gain=optogenetic_gain,
        ground_truth_seed=ground_truth_seed,
    )
    trials = TrialSet.from_arrays(
        simulation.trials, neurons=simulation.neurons, frame_rate=simulation.frame_rate,
        behavior_names=simulation.behavior_names,
    )
    ceiling = ground_truth_ceiling(simulation.trials, simulation.rates, burn_in)
    # The simulation's own ceilings count the burn-in frames; the artefact's are the scored frames.
    ground_truth = {k: v for k, v in simulation.ground_truth.items() if not k.startswith("ceiling")}
    bundle = build_video_loaders(
        trials, seed, subsequence_length=subsequence_length, burn_in=burn_in,
        batch_size=batch_size,
    )
    info = dataclasses.replace(
        bundle.info, ceiling={"single_trial_correlation": ceiling["single_trial_correlation"]}
    )
    artefacts = {"ground_truth": ground_truth, "ceiling_per_neuron": ceiling["by_session"]}
    return DataBundle(loaders=bundle.loaders, info=info, artefacts=artefacts)


def ground_truth_ceiling(trials: dict, rates: Sequence[np.ndarray], burn_in: int) -> dict:
    """Scores a perfect model (the true rates) gets on the test frames after ``burn_in``.

    Args:
        trials: the dict-of-arrays trials (``session``, ``tier``, ``responses``).
        rates: true rate (T_i, n_neurons) of every trial.
        burn_in: leading frames of each trial left out, as the scoring leaves them out.

    Returns:
        ``{"single_trial_correlation": mean over all neurons, "by_session": {session: [per
        neuron r]}}``: Pearson r between rate and counts over all scored test frames.
    """
    by_session: dict[str, list[float]] = {}
    for session in dict.fromkeys(trials["session"]):
        rows = [i for i, (s, t) in enumerate(zip(trials["session"], trials["tier"])) if s == session and t == "test"]
        counts = np.concatenate([np.asarray(trials["responses"][i], np.float64)[burn_in:] for i in rows])
        truth = np.concatenate([np.asarray(rates[i], np.float64)[burn_in:] for i in rows])
        r = pearson_columns(truth, counts)
        by_session[str(session)] = r.tolist()
    everything = np.concatenate([np.asarray(v) for v in by_session.values()])
    return {"single_trial_correlation": float(everything.mean()), "by_session": by_session}

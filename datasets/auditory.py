"""Spectrogram trial datasets: loaders over stored sound trials, and synthetic STRF neurons.

Stimuli are spectrograms, one (time, frequency) frame per time bin. They reuse the core trial
storage (`neurofit.datasets.trials.TrialSet`, `neurofit.datasets.trial_storage`): a spectrogram
of T bins and F bands is stored as a "video" of T frames of shape (1, 1, F) float32, with no
behaviour columns and a zero pupil column; repeats of one sound share its ``clip_id``. So
converted recordings (`neurofit.datasets.auditory_formats`) are written, fingerprinted and read
like movie trials, and the loaders reuse the movie loaders' samplers.

Batches (`neurofit.datasets.info.Batch`, modality "spectrogram"): ``inputs`` (B, T, F) float32,
``responses`` (B, T, N) float32, ``stimulus_id`` (B,) (the sound), ``trial_id`` and ``start``.

The synthetic generator (`simulate_strf_neurons`, builder ``neurofit.synthetic_strf``) draws
linear-nonlinear neurons with known Gabor-like STRFs, driven by DRC (white, chord-like) or
natural-like (correlated in time and frequency) spectrograms, optionally through an ON/OFF
adapting front end (the AdapTrans kernels of Rançon et al. 2024, fixed), with Poisson spike
counts or continuous (membrane-potential-like) responses. The validation and test sounds are
repeated so that noise ceilings (CCnorm) can be computed; the ground-truth STRFs are artefacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._correlation import pearson_columns
from .info import TIERS, DataBundle, DataInfo
from .trials import TrialSet
from .video_loaders import _already_batched, _RandomWindows, _WholeTrials

__all__ = [
    "SpectrogramSimulation",
    "adaptrans_kernels",
    "apply_on_off",
    "build_spectrogram_loaders",
    "build_spectrogram_store",
    "build_synthetic_strf",
    "gabor_strfs",
    "simulate_strf_neurons",
    "spectrogram_trials",
    "stimulus_spectrograms",
]


# --------------------------------------------------------------------------------------------
# Storage: spectrogram trials as core trials
# --------------------------------------------------------------------------------------------


def spectrogram_trials(
    spectrograms: Sequence[np.ndarray],
    responses: Sequence[np.ndarray],
    *,
    session: Sequence[str],
    tier: Sequence[str],
    clip_id: Sequence[int],
    sampling_rate: float,
    neurons: dict | None = None,
) -> TrialSet:
    """Validated core trials from spectrograms and responses (see the module docstring).

    Args:
        spectrograms: per trial a (T_i, F) float array (time first); repeats repeat the sound.
        responses: per trial a (T_i, n_neurons[session]) float array.
        session, tier, clip_id: per trial (see `neurofit.datasets.trials`).
        sampling_rate: time bins per second (Hz), e.g. 200 for 5 ms bins.
        neurons: optional ``{session: {column: (n,) values}}`` unit table.

    Raises:
        TrialFormatError: naming the trial, the column and the fix.
    """
    videos = [np.asarray(s, dtype=np.float32)[:, None, None, :] for s in spectrograms]
    n = len(videos)
    return TrialSet.from_arrays(
        {
            "session": list(session), "tier": list(tier), "clip_id": [int(c) for c in clip_id],
            "videos": videos, "responses": [np.asarray(r, dtype=np.float32) for r in responses],
            "behavior": [np.zeros((len(v), 0), np.float32) for v in videos],
            "pupil_center": [np.zeros((len(v), 2), np.float32) for v in videos],
        } if n else {"session": []},
        neurons=neurons, frame_rate=sampling_rate,
    )


class _SpectrogramFrames(Dataset):
    """Batches of windows of one session: ``inputs`` (B, t, F), ``responses`` (B, t, N)."""

    def __init__(self, reader, band_mean: np.ndarray, band_scale: np.ndarray):
        self.reader = reader
        self.meta = reader.meta
        self._mean = band_mean.astype(np.float32)
        self._inverse = (1.0 / band_scale).astype(np.float32)

    def __len__(self) -> int:
        return self.meta.n_trials

    def __getitems__(self, items: list[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
        raws = [self.reader.read(trial, start, start + length) for trial, start, length in items]
        inputs = np.stack([raw["videos"][:, 0, 0, :] for raw in raws]).astype(np.float32)
        inputs -= self._mean
        inputs *= self._inverse
        responses = np.stack([raw["responses"] for raw in raws]).astype(np.float32)
        trials = np.fromiter((item[0] for item in items), np.int64, len(items))
        return {
            "inputs": torch.from_numpy(inputs),
            "responses": torch.from_numpy(responses),
            "stimulus_id": torch.from_numpy(self.meta.clip_id[trials].astype(np.int64)),
            "trial_id": torch.from_numpy(trials),
            "start": torch.from_numpy(np.fromiter((item[1] for item in items), np.int64, len(items))),
        }


def _band_statistics(reader, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd per frequency band over the given (train) trials, streamed trial by trial."""
    total = squares = None
    count = 0
    for index in trials:
        frames = reader.read(int(index))["videos"][:, 0, 0, :].astype(np.float64)
        total = frames.sum(0) if total is None else total + frames.sum(0)
        squares = np.square(frames).sum(0) if squares is None else squares + np.square(frames).sum(0)
        count += len(frames)
    mean = total / count
    sd = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean, np.where(sd > 0, sd, 1.0)


def build_spectrogram_loaders(
    reader,
    seed: int,
    *,
    window: int | None = None,
    burn_in: int = 0,
    batch_size: int = 8,
    normalize: bool = True,
    response_unit: str = "spike count per bin",
    extra: dict[str, Any] | None = None,
) -> DataBundle:
    """``{tier: {session: DataLoader}}`` over a store of spectrogram trials.

    Train loaders draw one random window of ``window`` bins per train trial per epoch (the whole
    trial when ``window`` is None, then every train trial needs the same length), in an order
    from torch's global RNG (exact resume). Validation and test loaders give whole trials,
    batched by length. With ``normalize`` every band is z-scored with its train statistics per
    session; responses are left as recorded (Poisson counts stay counts).

    Args:
        reader: a `TrialSet` or an opened trial store holding spectrogram trials.
        seed: fixes the order of train trials and the windows (with torch's global RNG).
        window: bins per train window (None: whole trials).
        burn_in: leading bins of every sequence left out of losses and scores.
        batch_size: sequences per batch.
        normalize: z-score each frequency band with train statistics.
        response_unit: what the responses are, for ``DataInfo.response_unit``.
        extra: a lab's own JSON-able facts for ``DataInfo.extra``.

    Raises:
        ValueError: trials that are not spectrograms, a session without a tier, or windows that
            do not fit, naming the session and the fix.
    """
    meta = reader.meta
    if tuple(meta.video_shape[:2]) != (1, 1):
        raise ValueError(
            f"the trials hold frames of shape {meta.video_shape}, not spectrogram frames (1, 1, F); "
            "write spectrograms with neurofit.datasets.auditory.spectrogram_trials"
        )
    loaders: dict[str, dict[str, DataLoader]] = {tier: {} for tier in TIERS}
    normalization, mean_response = {}, {}
    for stream, session in enumerate(meta.sessions):
        train = meta.select(session=session, tier="train")
        if len(train) == 0:
            raise ValueError(f"session {session!r} has no train trials; every session needs all three tiers")
        mean, sd = _band_statistics(reader, train) if normalize else (
            np.zeros(meta.video_shape[2]), np.ones(meta.video_shape[2]))
        normalization[session] = {"band_mean": mean.tolist(), "band_sd": sd.tolist()}
        dataset = _SpectrogramFrames(reader, mean, sd)
        for tier in TIERS:
            trials = meta.select(session=session, tier=tier)
            if len(trials) == 0:
                raise ValueError(f"session {session!r} has no {tier} trials; every session needs all three tiers")
            lengths = meta.length[trials]
            if tier == "train":
                size = int(lengths.min()) if window is None else int(window)
                if window is None and int(lengths.max()) != size:
                    raise ValueError(
                        f"train trials of session {session!r} last {int(lengths.min())}-{int(lengths.max())} "
                        "bins; give window=<bins> to train on random windows of unequal trials"
                    )
                if size > int(lengths.min()) or size <= burn_in:
                    raise ValueError(
                        f"window={size} must be > burn_in={burn_in} and <= the shortest train trial "
                        f"({int(lengths.min())} bins) of session {session!r}"
                    )
                sampler = _RandomWindows(trials, lengths, size, batch_size, seed, stream)
            else:
                if int(lengths.min()) <= burn_in:
                    raise ValueError(f"a {tier} trial of session {session!r} is not longer than burn_in={burn_in}")
                sampler = _WholeTrials(trials, lengths, batch_size)
            loaders[tier][session] = DataLoader(dataset, batch_sampler=sampler, collate_fn=_already_batched)
        counts = np.concatenate([reader.read(int(i))["responses"] for i in train]).astype(np.float64)
        mean_response[session] = counts.mean(0).tolist()
    info = DataInfo(
        input_shape=(int(meta.video_shape[2]),),
        n_neurons=dict(meta.n_neurons),
        input_unit="log power per band, z-scored on train bins" if normalize else "log power per band",
        response_unit=response_unit,
        modality="spectrogram",
        input_axes=("frequency",),
        sampling_rate=float(meta.frame_rate),
        burn_in=int(burn_in),
        units={s: meta.neurons[s] for s in meta.sessions},
        mean_response=mean_response,
        normalization=normalization,
        fingerprint=meta.fingerprint,
        extra=dict(extra or {}),
    )
    return DataBundle(loaders=loaders, info=info)


# --------------------------------------------------------------------------------------------
# Synthetic ground truth
# --------------------------------------------------------------------------------------------


def gabor_strfs(rng: np.random.Generator, n_neurons: int, n_lags: int, n_bands: int,
                n_channels: int = 1) -> np.ndarray:
    """Gabor-like STRFs with unit norm: (n_neurons, n_channels, n_lags, n_bands).

    Each is a Gaussian envelope in lag and frequency times a cosine grating (spectro-temporal
    modulation), the shape auditory-cortex STRFs typically take (excitatory band flanked by
    inhibition, with a temporal rebound).
    """
    lags = np.arange(n_lags)[None, :, None]
    bands = np.arange(n_bands)[None, None, :]
    shape = (n_neurons * n_channels, 1, 1)
    centre_t = rng.uniform(1.5, max(2.0, n_lags / 3), shape)
    centre_f = rng.uniform(0.2 * n_bands, 0.8 * n_bands, shape)
    width_t = rng.uniform(1.0, max(1.5, n_lags / 5), shape)
    width_f = rng.uniform(1.0, max(1.5, n_bands / 8), shape)
    omega_t = rng.uniform(0.0, 0.15, shape)  # cycles per bin
    omega_f = rng.uniform(-0.15, 0.15, shape)  # cycles per band
    phase = rng.uniform(-0.5, 0.5, shape)
    envelope = np.exp(-((lags - centre_t) ** 2) / (2 * width_t**2) - ((bands - centre_f) ** 2) / (2 * width_f**2))
    grating = np.cos(2 * np.pi * (omega_t * (lags - centre_t) + omega_f * (bands - centre_f)) + phase)
    w = (envelope * grating).reshape(n_neurons, n_channels, n_lags, n_bands)
    return w / np.linalg.norm(w.reshape(n_neurons, -1), axis=1)[:, None, None, None]


def stimulus_spectrograms(rng: np.random.Generator, n_clips: int, n_bins: int, n_bands: int,
                          kind: Literal["drc", "natural"], chord_bins: int = 2) -> np.ndarray:
    """Unit-variance spectrograms (n_clips, n_bins, n_bands).

    ``drc``: dynamic random chords, independent levels per band held for ``chord_bins`` bins
    (white in frequency). ``natural``: 1/f-like, smooth in frequency (Gaussian, sd 2 bands) and
    in time (sd 3 bins), times a slow shared envelope: strongly correlated, as natural sounds are.
    """
    if kind == "drc":
        chords = rng.standard_normal((n_clips, -(-n_bins // chord_bins), n_bands))
        x = np.repeat(chords, chord_bins, axis=1)[:, :n_bins]
    else:
        white = rng.standard_normal((n_clips, n_bins + 24, n_bands + 12))
        x = _smooth(_smooth(white, 3.0, axis=1), 2.0, axis=2)[:, 12:12 + n_bins, 6:6 + n_bands]
        x = (x - x.mean()) / x.std()
        envelope = _smooth(rng.standard_normal((n_clips, n_bins + 60, 1)), 10.0, axis=1)[:, 30:30 + n_bins]
        x = x * (1.0 + 0.5 * envelope / envelope.std()) + 0.8 * envelope / envelope.std()
    return ((x - x.mean()) / x.std()).astype(np.float64)


def _smooth(x: np.ndarray, sd: float, axis: int) -> np.ndarray:
    """Gaussian smoothing along one axis ('same' size, zero outside)."""
    half = int(np.ceil(3 * sd))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
    kernel /= np.sqrt(np.square(kernel).sum())
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, x)


def adaptrans_kernels(a: np.ndarray, w: np.ndarray, kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """ON and OFF kernels per band, (n_bands, kernel_size), most recent bin last.

    ON = the present bin minus ``w`` times a normalised exponential average of the past
    ``kernel_size - 1`` bins (decay ``a`` per bin); OFF = the past average minus ``w`` times
    the present (Rançon et al. 2024). ``a = exp(-dt / tau)`` holds the bin width.
    """
    past = a[:, None] ** np.arange(kernel_size - 1)[None, :]  # lag 1, 2, ... as powers 0, 1, ...
    past /= past.sum(1, keepdims=True)
    on = np.concatenate([-w[:, None] * past[:, ::-1], np.ones((len(a), 1))], axis=1)
    off = np.concatenate([past[:, ::-1], -w[:, None]], axis=1)
    return on, off


def apply_on_off(x: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Rectified ON and OFF channels of spectrograms: (n, T, F) -> (n, 2, T, F).

    Causal per-band filtering, the first bin replicated into the past (as AdapTrans pads).
    """
    k = on.shape[1]
    padded = np.concatenate([np.repeat(x[:, :1], k - 1, axis=1), x], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=1)  # (n, T, F, k)
    return np.maximum(np.stack([np.einsum("ntfk,fk->ntf", windows, kern) for kern in (on, off)], 1), 0.0)


def _drive(features: np.ndarray, strfs: np.ndarray) -> np.ndarray:
    """Linear drive: features (n, C, T, F), strfs (N, C, L, F) -> (n, T, N), causal, zero past."""
    n_lags = strfs.shape[2]
    padded = np.concatenate([np.zeros((*features.shape[:2], n_lags - 1, features.shape[3])), features], axis=2)
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_lags, axis=2)  # (n, C, T, F, L)
    return np.einsum("nctfl,mclf->ntm", windows, strfs[:, :, ::-1])


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclass
class SpectrogramSimulation:
    """Simulated sound trials and their ground truth.

    Attributes:
        trials: the `TrialSet` (one session "session_0").
        strfs: (n_neurons, n_channels, n_lags, n_bands) true STRFs (channel 0 ON, 1 OFF with the
            front end; lag 0 = the present bin).
        gain, offset: (n_neurons,) the nonlinearity rate = scale * softplus(gain * drive + offset).
        true_rates: ``{tier: (n_clips, n_bins, n_neurons)}`` noise-free responses per sound.
        ceiling: CCnorm of the true rates on the test tier, mean over neurons.
    """

    trials: TrialSet
    strfs: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    true_rates: dict[str, np.ndarray]
    ceiling: dict[str, float]


def simulate_strf_neurons(
    *,
    n_neurons: int = 20,
    n_bands: int = 18,
    n_lags: int = 15,
    stimulus: Literal["drc", "natural"] = "natural",
    n_train_clips: int = 60,
    n_validation_clips: int = 6,
    n_test_clips: int = 6,
    n_repeats: int = 10,
    clip_bins: int = 200,
    sampling_rate: float = 100.0,
    response: Literal["poisson", "gaussian"] = "poisson",
    mean_rate: float = 1.0,
    nonlinearity_gain: float = 2.0,
    noise_sd: float = 0.5,
    front_end: Literal["none", "on_off"] = "none",
    ground_truth_seed: int = 0,
) -> SpectrogramSimulation:
    """LN neurons with known STRFs responding to DRC or natural-like spectrograms.

    rate(t) = scale · softplus(gain · z(t) + offset), where z is the STRF drive standardised on
    the train sounds; ``nonlinearity_gain`` sets how nonlinear (rectifying) the neurons are,
    ``offset`` is drawn around -1 (sparse firing) and ``scale`` makes the mean rate
    ``mean_rate`` per bin. Poisson responses are spike counts; gaussian ones add noise of sd
    ``noise_sd`` (in rate units) to a rate (a membrane-potential-like signal).

    Returns:
        A `SpectrogramSimulation`; everything depends only on the arguments.
    """
    rng = np.random.default_rng([ground_truth_seed, 13])
    n_channels = 2 if front_end == "on_off" else 1
    strfs = gabor_strfs(rng, n_neurons, n_lags, n_bands, n_channels)
    counts = {"train": n_train_clips, "validation": n_validation_clips, "test": n_test_clips}
    sounds = {tier: stimulus_spectrograms(rng, n, clip_bins, n_bands, stimulus) for tier, n in counts.items()}
    if front_end == "on_off":
        tau_ms = 500.0 - 105.0 * np.log10(np.geomspace(500.0, 20000.0, n_bands))  # Willmore et al. 2016
        a = np.exp(-(1000.0 / sampling_rate) / tau_ms)
        kernels = adaptrans_kernels(a, np.full(n_bands, 0.75), kernel_size=min(20, clip_bins))
        features = {t: apply_on_off(s, *kernels) for t, s in sounds.items()}
    else:
        features = {t: s[:, None] for t, s in sounds.items()}
    drive = {t: _drive(f, strfs) for t, f in features.items()}
    centre, spread = drive["train"].mean((0, 1)), drive["train"].std((0, 1))
    gain = np.full(n_neurons, float(nonlinearity_gain))
    offset = rng.normal(-1.0, 0.3, n_neurons)
    raw = {t: _softplus(gain * (d - centre) / spread + offset) for t, d in drive.items()}
    scale = mean_rate / raw["train"].mean((0, 1))
    rates = {t: r * scale for t, r in raw.items()}
    repeats = {"train": 1, "validation": n_repeats, "test": n_repeats}
    noise = np.random.default_rng([ground_truth_seed, 14])
    columns: dict[str, list] = {"spectrograms": [], "responses": [], "tier": [], "clip_id": []}
    next_id = 0
    for tier in TIERS:
        for clip in range(counts[tier]):
            for _ in range(repeats[tier]):
                rate = rates[tier][clip]
                observed = noise.poisson(rate) if response == "poisson" else rate + noise_sd * noise.standard_normal(rate.shape)
                columns["spectrograms"].append(sounds[tier][clip])
                columns["responses"].append(observed)
                columns["tier"].append(tier)
                columns["clip_id"].append(next_id + clip)
        next_id += counts[tier]
    trials = spectrogram_trials(
        columns["spectrograms"], columns["responses"], session=["session_0"] * len(columns["tier"]),
        tier=columns["tier"], clip_id=columns["clip_id"], sampling_rate=sampling_rate,
    )
    return SpectrogramSimulation(trials, strfs, gain, offset, rates, _true_rate_ceiling(trials, rates["test"]))


def _true_rate_ceiling(trials: TrialSet, test_rates: np.ndarray) -> dict[str, float]:
    """CCnorm and CCabs of the noise-free rates on the test repeats (the calibration check).

    Datasets may not import pipelines, so the Schoppe CCnorm (ddof 0, SP of Sahani & Linden) is
    written out here; ``tests/unit/test_auditory_data.py`` checks it against
    ``neurofit.pipelines.analysis.prediction.cc_norm``.
    """
    meta = trials.meta
    index = meta.select(tier="test")
    clips = meta.clip_id[index]
    ids = np.unique(clips)
    responses = np.stack([trials.read(int(i))["responses"] for i in index]).astype(np.float64)
    n_repeats = len(index) // len(ids)
    order = np.argsort(clips, kind="stable")
    repeats = responses[order].reshape(len(ids), n_repeats, *responses.shape[1:]).transpose(1, 0, 2, 3)
    repeats = repeats.reshape(n_repeats, -1, responses.shape[2])  # (R, clips x bins, N)
    predicted = test_rates.reshape(-1, responses.shape[2])  # test clips in id order
    return {"cc_norm": float(np.nanmean(_cc_norm(repeats, predicted))),
            "cc_abs": float(np.mean(pearson_columns(repeats.mean(0), predicted)))}


def _cc_norm(repeats: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Schoppe et al. 2016 CCnorm per neuron: repeats (R, S, N), predicted (S, N); NaN if SP <= 0."""
    n = repeats.shape[0]
    mean = repeats.mean(0)
    sp = (n * mean.var(0) - repeats.var(1).mean(0)) / (n - 1)
    cov = ((mean - mean.mean(0)) * (predicted - predicted.mean(0))).mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sp > 0, cov / np.sqrt(np.abs(sp) * predicted.var(0)), np.nan)


def build_synthetic_strf(
    seed: int,
    *,
    n_neurons: int = 20,
    n_bands: int = 18,
    n_lags: int = 15,
    stimulus: Literal["drc", "natural"] = "natural",
    n_train_clips: int = 60,
    n_validation_clips: int = 6,
    n_test_clips: int = 6,
    n_repeats: int = 10,
    clip_bins: int = 200,
    sampling_rate: float = 100.0,
    response: Literal["poisson", "gaussian"] = "poisson",
    mean_rate: float = 1.0,
    nonlinearity_gain: float = 2.0,
    noise_sd: float = 0.5,
    front_end: Literal["none", "on_off"] = "none",
    window: int | None = None,
    batch_size: int = 8,
    ground_truth_seed: int = 0,
) -> DataBundle:
    """Loaders over simulated LN neurons with known STRFs (see `simulate_strf_neurons`).

    Args:
        seed: changes only the order of train trials (and their windows).
        n_neurons, n_bands, n_lags, stimulus, n_train_clips, n_validation_clips, n_test_clips,
            n_repeats, clip_bins, sampling_rate, response, mean_rate, nonlinearity_gain,
            noise_sd, front_end, ground_truth_seed: the simulation (`simulate_strf_neurons`);
            train sounds are heard once, validation and test sounds ``n_repeats`` times.
        window: bins per train window (None: whole clips).
        batch_size: sequences per batch.

    Returns:
        A `DataBundle` of modality "spectrogram" (inputs z-scored per band). ``info.ceiling``
        holds the true rates' test CCnorm and CCabs; artefacts: ``strf`` (the true STRFs,
        (n_neurons, n_channels, n_lags, n_bands)), ``nonlinearity`` (gain, offset) and
        ``true_rates_test`` ((n_test_clips, clip_bins, n_neurons)).
    """
    sim = simulate_strf_neurons(
        n_neurons=n_neurons, n_bands=n_bands, n_lags=n_lags, stimulus=stimulus, n_train_clips=n_train_clips,
        n_validation_clips=n_validation_clips, n_test_clips=n_test_clips, n_repeats=n_repeats,
        clip_bins=clip_bins, sampling_rate=sampling_rate, response=response, mean_rate=mean_rate,
        nonlinearity_gain=nonlinearity_gain, noise_sd=noise_sd, front_end=front_end,
        ground_truth_seed=ground_truth_seed,
    )
    unit = "spike count per bin" if response == "poisson" else "membrane-potential-like (rate units + noise)"
    bundle = build_spectrogram_loaders(sim.trials, seed, window=window, batch_size=batch_size,
                                       response_unit=unit, extra={"strf_lags": n_lags, "front_end": front_end})
    info = DataInfo.from_dict({**bundle.info.to_dict(), "ceiling": sim.ceiling})
    artefacts = {
        "strf": sim.strfs.astype(np.float64),
        "nonlinearity": np.stack([sim.gain, sim.offset]).astype(np.float64),
        "true_rates_test": sim.true_rates["test"].astype(np.float64),
    }
    return DataBundle(loaders=bundle.loaders, info=info, artefacts=artefacts)


def build_spectrogram_store(
    seed: int,
    *,
    path: str,
    window: int | None = None,
    burn_in: int = 0,
    batch_size: int = 8,
    normalize: bool = True,
) -> DataBundle:
    """Loaders over a spectrogram trial store (written by `neurofit.datasets.auditory_formats`).

    Args:
        seed: changes only the order of train trials and their windows.
        path: folder of the store; inside ``$NEUROFIT_DATA_ROOTS`` when that is set.
        window, burn_in, batch_size, normalize: see `build_spectrogram_loaders`.
    """
    from .paths import resolve_data_path
    from .trial_storage import is_trial_store, open_trials

    location = resolve_data_path(path, "spectrogram trial store (write one with neurofit.datasets.auditory_formats)",
                                 is_trial_store)
    reader = open_trials(location)
    return build_spectrogram_loaders(reader, seed, window=window, burn_in=burn_in, batch_size=batch_size,
                                     normalize=normalize)

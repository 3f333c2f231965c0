"""Nested ``{tier: {session: DataLoader}}`` loaders over a store of movie trials.

Training draws one random subsequence of ``subsequence_length`` frames from every train trial per
epoch (clips have different lengths); validation and test loaders give whole trials, batched with
trials of equal length. Normalisation statistics come from the train trials only, per session,
so nothing of the held-out data leaks into the inputs.

Every batch is a `neurofit.datasets.info.Batch` (see ``neurofit.pipelines.batches``): ``inputs``
(channels, time, height, width), ``responses`` (time, n_neurons), ``behavior`` (time, k),
``pupil_center`` (time, 2), ``optogenetic_signal`` (time,) if recorded, and the labels
``stimulus_id`` (the clip), ``trial_id``, ``condition`` (0 control, 1 optogenetic) and ``start``
(first frame of the subsequence); each with a leading batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .info import TIERS, DataBundle, DataInfo
from .trials import CONDITIONS

__all__ = ["Normalization", "build_video_loaders", "normalization_statistics"]

# Responses are divided by their train standard deviation (as neuralpredictors' NeuroNormalizer
# does): Poisson targets stay non-negative. Nearly silent neurons would be blown up, so their
# scale is floored at this fraction of the session's mean standard deviation.
_MIN_SCALE_FRACTION = 0.01


@dataclass(frozen=True)
class Normalization:
    """Train-tier statistics of one session that the loaders apply to every tier.

    Attributes:
        video_mean, video_std: (channels,) luminance statistics over all train frames and pixels.
        response_mean: (n_neurons,) mean response per frame (before scaling).
        response_scale: (n_neurons,) responses are divided by this (train standard deviation).
        behavior_mean, behavior_std: (n_behavior,) statistics of the behaviour channels.
        pupil_mean, pupil_std: (2,) statistics of the pupil centre.
    """

    video_mean: np.ndarray
    video_std: np.ndarray
    response_mean: np.ndarray
    response_scale: np.ndarray
    behavior_mean: np.ndarray
    behavior_std: np.ndarray
    pupil_mean: np.ndarray
    pupil_std: np.ndarray

    def identity(self) -> "Normalization":
        """The same statistics, but transforms that leave every value as recorded."""
        return Normalization(
            np.zeros_like(self.video_mean), np.ones_like(self.video_std), self.response_mean,
            np.ones_like(self.response_scale), np.zeros_like(self.behavior_mean),
            np.ones_like(self.behavior_std), np.zeros_like(self.pupil_mean), np.ones_like(self.pupil_std),
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {name: np.asarray(value, dtype=float).tolist() for name, value in vars(self).items()}


def normalization_statistics(reader, session: str) -> Normalization:
    """Streams once over the train trials of ``session`` and returns its `Normalization`.

    Sums are accumulated in float64 trial by trial, so memory stays at one trial.

    Raises:
        ValueError: if the session has no train trial.
    """
    trials = reader.meta.select(session=session, tier="train")
    if len(trials) == 0:
        raise ValueError(
            f"session {session!r} has no train trials; normalisation statistics come from the "
            "train tier only, so every session needs some"
        )
    sums: dict[str, list[np.ndarray]] = {}
    count_frames = 0
    count_pixels = 0
    for index in trials:
        item = reader.read(int(index))
        video = item["videos"].astype(np.float64)  # (t, C, H, W)
        per_channel = [video.sum(axis=(0, 2, 3)), np.square(video).sum(axis=(0, 2, 3))]
        for name, value in (("videos", per_channel),
                            *((k, [item[k].astype(np.float64).sum(0), np.square(item[k].astype(np.float64)).sum(0)])
                              for k in ("responses", "behavior", "pupil_center"))):
            if name in sums:
                sums[name][0] += value[0]
                sums[name][1] += value[1]
            else:
                sums[name] = [value[0].copy(), value[1].copy()]
        count_frames += video.shape[0]
        count_pixels += video.shape[0] * video.shape[2] * video.shape[3]

    def mean_std(name: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        total, squares = sums[name]
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return mean, std

    video_mean, video_std = mean_std("videos", count_pixels)
    response_mean, response_std = mean_std("responses", count_frames)
    behavior_mean, behavior_std = mean_std("behavior", count_frames)
    pupil_mean, pupil_std = mean_std("pupil_center", count_frames)
    floor = _MIN_SCALE_FRACTION * max(float(response_std.mean()), 1e-12)
    return Normalization(
        video_mean=video_mean,
        video_std=np.where(video_std > 0, video_std, 1.0),
        response_mean=response_mean,
        response_scale=np.maximum(response_std, floor),
        behavior_mean=behavior_mean,
        behavior_std=np.where(behavior_std > 0, behavior_std, 1.0),
        pupil_mean=pupil_mean,
        pupil_std=np.where(pupil_std > 0, pupil_std, 1.0),
    )


class _TrialFrames(Dataset):
    """Items of one session: ``dataset[(trial, start, length)]`` is frames [start, start+length)."""

    def __init__(self, reader, normalization: Normalization):
        self.reader = reader
        self.meta = reader.meta
        n = normalization
        self._video = (n.video_mean.astype(np.float32)[None, :, None, None],
                       (1.0 / n.video_std).astype(np.float32)[None, :, None, None])
        self._response_scale = (1.0 / n.response_scale).astype(np.float32)
        self._behavior = (n.behavior_mean.astype(np.float32), (1.0 / n.behavior_std).astype(np.float32))
        self._pupil = (n.pupil_mean.astype(np.float32), (1.0 / n.pupil_std).astype(np.float32))

    def __len__(self) -> int:
        return self.meta.n_trials

    def __getitem__(self, item: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([item]).items()}

    def __getitems__(self, items: list[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
        """One batch of windows of equal length; the DataLoader calls this instead of collating.

        Normalising whole batches in place, after one copy of each window out of the store, is
        what keeps this loader close to raw memmap indexing (benchmarks/video_loader_throughput.py).
        """
        raws = [self.reader.read(trial, start, start + length) for trial, start, length in items]
        first = raws[0]["videos"]  # (t, C, H, W)
        video = np.empty((len(raws), first.shape[1], first.shape[0], *first.shape[2:]), dtype=np.float32)
        for out, raw in zip(video, raws):
            out[...] = raw["videos"].transpose(1, 0, 2, 3)  # into the (C, t, H, W) layout of the cores
        video -= self._video[0].transpose(1, 0, 2, 3)
        video *= self._video[1].transpose(1, 0, 2, 3)

        def stacked(name: str) -> np.ndarray:
            return np.stack([raw[name] for raw in raws]).astype(np.float32, copy=False)

        responses = stacked("responses")
        responses *= self._response_scale
        behavior = stacked("behavior")
        behavior -= self._behavior[0]
        behavior *= self._behavior[1]
        pupil = stacked("pupil_center")
        pupil -= self._pupil[0]
        pupil *= self._pupil[1]
        trials = np.fromiter((item[0] for item in items), np.int64, len(items))
        batch = {
            "inputs": torch.from_numpy(video),
            "responses": torch.from_numpy(responses),
            "behavior": torch.from_numpy(behavior),
            "pupil_center": torch.from_numpy(pupil),
            "stimulus_id": torch.from_numpy(self.meta.clip_id[trials].astype(np.int64)),
            "trial_id": torch.from_numpy(trials),
            "condition": torch.from_numpy(self.meta.condition[trials].astype(np.int64)),
            "start": torch.from_numpy(np.fromiter((item[1] for item in items), np.int64, len(items))),
        }
        if "optogenetic_signal" in raws[0]:
            batch["optogenetic_signal"] = torch.from_numpy(stacked("optogenetic_signal"))
        return batch


def _already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """collate_fn for datasets whose ``__getitems__`` returns whole batches."""
    return batch


class _RandomWindows(Sampler[list]):
    """Batches of one random window per train trial, in a new random order on every pass.

    The order and the window starts depend on the dataset ``seed`` and one draw from torch's
    global RNG per pass (like the image loaders' sampler), so ``set_seed`` in the trainer makes
    every epoch reproducible and a resumed training sees the windows an uninterrupted one would.
    """

    def __init__(self, trials: np.ndarray, lengths: np.ndarray, window: int, batch_size: int,
                 seed: int, stream: int):
        self.trials, self.lengths = trials, lengths
        self.window, self.batch_size, self.seed, self.stream = window, batch_size, seed, stream

    def __len__(self) -> int:
        return -(-len(self.trials) // self.batch_size)

    def __iter__(self) -> Iterator[list]:
        draw = int(torch.randint(0, 2**31 - 1, (1,)).item())
        rng = np.random.default_rng([self.seed, self.stream, draw])
        order = rng.permutation(len(self.trials))
        starts = rng.integers(0, self.lengths[order] - self.window + 1)
        items = [(int(self.trials[i]), int(s), self.window) for i, s in zip(order, starts)]
        for first in range(0, len(items), self.batch_size):
            yield items[first:first + self.batch_size]


class _WholeTrials(Sampler[list]):
    """Whole trials in a fixed order, each batch holding trials of one length only."""

    def __init__(self, trials: np.ndarray, lengths: np.ndarray, batch_size: int):
        order = np.lexsort((trials, lengths))
        self.batches: list[list] = []
        for length in np.unique(lengths):
            same = [(int(trials[i]), 0, int(length)) for i in order if lengths[i] == length]
            self.batches += [same[j:j + batch_size] for j in range(0, len(same), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list]:
        return iter(self.batches)


def build_video_loaders(
    reader,
    seed: int,
    *,
    subsequence_length: int = 60,
    burn_in: int = 15,
    batch_size: int = 8,
    normalize: bool = True,
    num_workers: int = 0,
    sessions: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> DataBundle:
    """Loaders for every tier and session of a trial store.

    Args:
        reader: a `neurofit.datasets.trials.TrialSet` or a store opened with
            `neurofit.datasets.trial_storage.open_trials`.
        seed: fixes the order of train trials and the windows drawn from them (together with
            torch's global RNG, which the trainer seeds).
        subsequence_length: frames per training window; every train trial must be this long.
        burn_in: leading frames of every sequence that the loss and the scores leave out, because
            a causal model has not yet seen enough history there. Must be < subsequence_length
            and shorter than every validation and test trial.
        batch_size: sequences per batch (validation/test batches may be smaller: they hold
            trials of one length each).
        normalize: z-score videos, behaviour and pupil, and divide responses by their standard
            deviation, with statistics from the train trials of each session.
        num_workers: DataLoader worker processes (readers are picklable).
        sessions: the sessions to load (default: all, in store order).
        extra: a lab's own JSON-able facts for ``DataInfo.extra`` (not the typed fields).

    Returns:
        A `DataBundle` whose ``info`` has modality "video", ``input_shape`` one frame
        (channel, height, width), ``burn_in``, ``sampling_rate`` (the frame rate),
        ``behavior_names``, ``has_optogenetic``, ``conditions``, ``mean_response`` (per session,
        train mean of the normalised responses), ``units`` (per-session unit tables, e.g. unit
        ids), ``normalization`` and the store's ``fingerprint``.

    Raises:
        ValueError: for sizes that do not fit the data, naming the trial and the fix.
    """
    meta = reader.meta
    if subsequence_length < 1 or batch_size < 1 or burn_in < 0:
        raise ValueError("subsequence_length and batch_size must be >= 1 and burn_in >= 0")
    if burn_in >= subsequence_length:
        raise ValueError(
            f"burn_in={burn_in} must be smaller than subsequence_length={subsequence_length}: "
            "otherwise no training frame is left for the loss"
        )
    chosen = list(meta.sessions) if sessions is None else [str(s) for s in sessions]
    unknown = sorted(set(chosen) - set(meta.sessions))
    if unknown:
        raise ValueError(f"unknown sessions {unknown}; the store has {list(meta.sessions)}")

    loaders: dict[str, dict[str, DataLoader]] = {tier: {} for tier in TIERS}
    normalization: dict[str, dict[str, list[float]]] = {}
    mean_response: dict[str, list[float]] = {}
    for stream, session in enumerate(chosen):
        statistics = normalization_statistics(reader, session)
        n = statistics if normalize else statistics.identity()
        normalization[session] = n.to_dict()
        dataset = _TrialFrames(reader, n)
        for tier in TIERS:
            trials = meta.select(session=session, tier=tier)
            if len(trials) == 0:
                raise ValueError(f"session {session!r} has no {tier} trials; every session needs all three tiers")
            lengths = meta.length[trials]
            if tier == "train":
                short = trials[lengths < subsequence_length]
                if len(short):
                    raise ValueError(
                        f"train trial {int(short[0])} of session {session!r} has "
                        f"{int(meta.length[short[0]])} frames, fewer than subsequence_length="
                        f"{subsequence_length} ({len(short)} such trials); use a subsequence_length "
                        f"<= {int(lengths.min())}"
                    )
                sampler = _RandomWindows(trials, lengths, subsequence_length, batch_size, seed, stream)
            else:
                if int(lengths.min()) <= burn_in:
                    raise ValueError(
                        f"a {tier} trial of session {session!r} has {int(lengths.min())} frames, not "
                        f"more than burn_in={burn_in}: it would have nothing left to score"
                    )
                sampler = _WholeTrials(trials, lengths, batch_size)
            loaders[tier][session] = DataLoader(
                dataset, batch_sampler=sampler, collate_fn=_already_batched, num_workers=num_workers,
                persistent_workers=num_workers > 0,
            )
        mean_response[session] = (n.response_mean / n.response_scale).tolist()

    info = DataInfo(
        input_shape=tuple(int(s) for s in meta.video_shape),
        n_neurons={s: int(meta.n_neurons[s]) for s in chosen},
        input_unit="luminance, z-scored per session on train frames" if normalize else f"luminance ({meta.video_dtype})",
        response_unit="spike count per frame / train std" if normalize else "spike count per frame",
        modality="video",
        input_axes=("channel", "height", "width"),
        burn_in=int(burn_in),
        sampling_rate=float(meta.frame_rate),
        behavior_names=tuple(meta.behavior_names),
        has_optogenetic=bool(meta.has_optogenetic),
        conditions=tuple(CONDITIONS),
        mean_response=mean_response,
        units={s: meta.neurons[s] for s in chosen},
        normalization=normalization,
        fingerprint=meta.fingerprint,
        extra=dict(extra or {}),
    )
    return DataBundle(loaders=loaders, info=info)


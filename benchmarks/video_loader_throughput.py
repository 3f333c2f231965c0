"""Throughput of the trial-dataset backends against raw numpy-memmap indexing.

Data: jagged movie trials (default 200 clips of 20-40 frames x 36 x 64 float32, 40 neurons,
2 behaviour channels, pupil, optogenetic signal), written once with each backend.

Two levels, each against its own raw-memmap baseline measured in the same run:

* reader: random windows of ``--window`` frames read with ``reader.read(trial, start, stop)``
  versus slicing the same windows out of ``np.load(mmap_mode="r")`` arrays with precomputed
  offsets (the fastest thing a hand-written loader can do), both copied out of the mapping;
* loader: samples/s through neurofit's train ``DataLoader`` (random windows, train-tier
  normalisation, dict batches) versus a bare ``DataLoader`` over a Dataset that slices the raw
  memmaps and returns tensors, both batch 16 with 0 workers.

Target: memmap backend >= 0.8x of raw memmap. No database is used.

Usage: python benchmarks/video_loader_throughput.py [--trials 200] [--repeats 3] [--window 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from neurofit.datasets.trial_storage import open_trials, write_trials
from neurofit.datasets.trials import TrialSet
from neurofit.datasets.video_loaders import build_video_loaders


def make_trials(n_trials: int, seed: int = 0) -> TrialSet:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 41, n_trials)
    tiers = np.array(["train"] * n_trials, dtype=object)
    tiers[-20:] = "validation"
    tiers[-10:] = "test"
    return TrialSet.from_arrays(
        {
            "session": ["s0"] * n_trials,
            "tier": list(tiers),
            "clip_id": list(range(n_trials)),
            "videos": [rng.random((t, 36, 64), dtype=np.float32) for t in lengths],
            "responses": [rng.poisson(0.3, (t, 40)).astype(np.float32) for t in lengths],
            "behavior": [rng.random((t, 2), dtype=np.float32) for t in lengths],
            "pupil_center": [rng.random((t, 2), dtype=np.float32) for t in lengths],
            "optogenetic_signal": [np.full(t, float(i % 2), np.float32) for i, t in enumerate(lengths)],
        },
        frame_rate=30.0,
    )


class RawWindows(Dataset):
    """The baseline: slices of raw memmaps at precomputed offsets, as tensors."""

    def __init__(self, arrays: dict[str, np.ndarray], offsets: np.ndarray):
        self.arrays, self.offsets = arrays, offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, item):
        trial, start, length = item
        first = self.offsets[trial] + start
        return {k: torch.from_numpy(np.array(v[first:first + length])) for k, v in self.arrays.items()}


def raw_memmap(trials: TrialSet, folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Writes every field concatenated along time with np.save and opens it memory-mapped."""
    n = trials.meta.n_trials
    parts = [trials.read(i) for i in range(n)]
    arrays = {}
    for name in parts[0]:
        np.save(folder / f"{name}.npy", np.concatenate([p[name] for p in parts]))
        arrays[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    offsets = np.concatenate([[0], np.cumsum(trials.meta.length)[:-1]])
    return arrays, offsets


def windows(meta, window: int, seed: int = 1) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    trials = meta.select(tier="train")
    starts = rng.integers(0, meta.length[trials] - window + 1)
    return [(int(t), int(s), window) for t, s in zip(trials, starts)]


def best_rate(function, n_items: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return n_items / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    trials = make_trials(args.trials)
    folder = Path(tempfile.mkdtemp(prefix="neurofit_loader_bench_"))
    raw_arrays, offsets = raw_memmap(trials, folder)
    readers = {}
    for backend in ("memmap", "deeplake"):
        write_trials(trials, folder / backend, backend=backend)
        readers[backend] = open_trials(folder / backend)
    items = windows(trials.meta, args.window)

    def raw_reads():
        for trial, start, length in items:
            first = offsets[trial] + start
            for array in raw_arrays.values():
                np.array(array[first:first + length])  # copied out: the frames are really read

    print(f"{len(items)} random windows of {args.window} frames; best of {args.repeats}")
    baseline = best_rate(raw_reads, len(items), args.repeats)
    print(f"{'reader':<34}{'windows/s':>12}{'ratio to raw':>14}")
    print(f"{'raw memmap slicing (baseline)':<34}{baseline:12.0f}{1.0:14.2f}")
    for backend, reader in readers.items():
        for trial, start, length in items[:3]:  # warm up (Deep Lake opens lazily)
            reader.read(trial, start, start + length)
        rate = best_rate(
            lambda: [[np.array(v) for v in reader.read(t, s, s + n).values()] for t, s, n in items],  # noqa: B023 (called at once)
            len(items), args.repeats,
        )
        print(f"{backend + ' reader':<34}{rate:12.0f}{rate / baseline:14.2f}")

    batch = 16
    raw_loader = DataLoader(RawWindows(raw_arrays, offsets), batch_size=batch,
                            sampler=items, num_workers=0)
    baseline = best_rate(lambda: [b for b in raw_loader], len(items), args.repeats)
    print(f"\n{'loader (batch 16, 0 workers)':<34}{'samples/s':>12}{'ratio to raw':>14}")
    print(f"{'raw memmap DataLoader (baseline)':<34}{baseline:12.0f}{1.0:14.2f}")
    for backend, reader in readers.items():
        bundle = build_video_loaders(reader, 0, subsequence_length=args.window, burn_in=0, batch_size=batch)
        loader = bundle.loaders["train"]["s0"]
        n = sum(len(b["responses"]) for b in loader)
        rate = best_rate(lambda: [b for b in loader], n, args.repeats)  # noqa: B023 (called at once)
        print(f"{'neurofit ' + backend + ' loader':<34}{rate:12.0f}{rate / baseline:14.2f}")


if __name__ == "__main__":
    main()

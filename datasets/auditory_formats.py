"""Converters of the public auditory datasets used by deepSTRF into neurofit spectrogram trial stores.

Each reads one HDF5 file in the layout below (the arrays deepSTRF's loaders build from the
published releases), checks every field first, and writes a trial store
(`neurofit.datasets.trial_storage.write_trials`, atomic) that ``neurofit.spectrogram_trials``
loads. A malformed file raises `AuditoryFormatError` naming the file, the field and the
problem, and nothing is written.

NS1 (Harper et al. 2016; 34 bands, 5 ms bins, stimuli x repeats)::

    spectrograms   (S, 34, T)       log-power spectrogram of each sound
    responses      (N, S, R, T)     spike counts per 5 ms bin, every neuron heard every sound R times
    noise_ratio    (N,) optional    Sahani-Linden noise power / signal power of each neuron

NAT4 A1 or PEG (Pennington & David 2023; 18 bands, 10 ms bins)::

    estimation/stim   (S_est, 18, T)       sounds heard once (-> train)
    estimation/resp   (N, S_est, 1, T)
    validation/stim   (S_val, 18, T)       sounds heard 20 times (-> validation and test)
    validation/resp   (N, S_val, 20, T)
    attrs: area = "A1" | "PEG"

Wehr (CRCNS AC1; membrane potentials per neuron, a variable number of clips)::

    spectrograms               (n_sounds, F, T_max)   the sounds, zero-padded to T_max
    sound_length               (n_sounds,)            bins of each sound
    neurons/<name>/clip        (n_clips,)             index into spectrograms of each clip heard
    neurons/<name>/potential   (n_clips, R, T_max)    membrane potential (mV) per repeat

Every NS1/NAT4 neuron is a unit of one session; each Wehr neuron is its own session (its own
clips). deepSTRF's valid-neuron criterion is the option ``max_noise_ratio``: neurons whose
noise ratio (NP / SP of Sahani & Linden, from the file or computed from the repeats) is not
below it are dropped (deepSTRF keeps 73 of NS1's 119 neurons).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .trial_storage import write_trials
from .trials import TrialSet

__all__ = ["AuditoryFormatError", "convert_nat4", "convert_ns1", "convert_wehr", "noise_ratio"]

NS1_BANDS, NS1_BIN_MS = 34, 5.0
NAT4_BANDS, NAT4_BIN_MS = 18, 10.0


class AuditoryFormatError(ValueError):
    """A source file that does not follow its documented layout; nothing was written."""


def noise_ratio(repeats: np.ndarray) -> np.ndarray:
    """Sahani-Linden noise ratio NP / SP per neuron from repeats (R, S, N) (ddof 0); inf if SP <= 0."""
    r = np.asarray(repeats, dtype=np.float64)
    n = r.shape[0]
    total = r.var(axis=1).mean(axis=0)
    sp = (n * r.mean(axis=0).var(axis=0) - total) / (n - 1)
    return np.where(sp > 0, (total - sp) / np.where(sp > 0, sp, 1.0), np.inf)


class _File:
    """Reads fields of one HDF5 file, every problem an `AuditoryFormatError` naming file and field."""

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        try:
            self.h5 = h5py.File(self.path, "r")
        except (OSError, FileNotFoundError) as error:
            raise AuditoryFormatError(f"{self.path}: cannot be opened as HDF5 ({error})") from None

    def array(self, field: str, ndim: int, *, optional: bool = False, integer: bool = False) -> np.ndarray | None:
        if field not in self.h5:
            if optional:
                return None
            raise AuditoryFormatError(f"{self.path}: field {field!r} is missing; see the layout in neurofit.datasets.auditory_formats")
        value = np.asarray(self.h5[field][()])
        if value.ndim != ndim:
            raise AuditoryFormatError(f"{self.path}: field {field!r} has shape {value.shape}, expected {ndim} dimensions")
        if value.dtype.kind not in ("iu" if integer else "iuf"):
            raise AuditoryFormatError(f"{self.path}: field {field!r} has dtype {value.dtype}, expected {'integers' if integer else 'numbers'}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise AuditoryFormatError(f"{self.path}: field {field!r} contains NaN or inf at {np.argwhere(~np.isfinite(value))[0].tolist()}")
        return value

    def fail(self, field: str, problem: str):
        raise AuditoryFormatError(f"{self.path}: field {field!r} {problem}")

    def close(self):
        self.h5.close()


def _keep_neurons(source: _File, repeats: np.ndarray, given: np.ndarray | None, max_noise_ratio: float | None):
    """Neurons passing deepSTRF's noise-ratio criterion, and the ratio of every neuron."""
    ratio = given if given is not None else noise_ratio(repeats)
    if max_noise_ratio is None:
        return np.ones(len(ratio), bool), ratio
    keep = ratio < max_noise_ratio
    if not keep.any():
        source.fail("noise_ratio", f"leaves no neuron below max_noise_ratio={max_noise_ratio} (min {np.min(ratio):.3g})")
    return keep, ratio


def _write(columns: dict[str, list], neurons: dict, bin_ms: float, destination, backend: str, overwrite: bool) -> Path:
    videos = [np.asarray(s, np.float32)[:, None, None, :] for s in columns["spectrograms"]]
    trials = TrialSet.from_arrays({
        "session": columns["session"], "tier": columns["tier"], "clip_id": columns["clip_id"], "videos": videos,
        "responses": [np.asarray(r, np.float32) for r in columns["responses"]],
        "behavior": [np.zeros((len(v), 0), np.float32) for v in videos],
        "pupil_center": [np.zeros((len(v), 2), np.float32) for v in videos],
    }, neurons=neurons, frame_rate=1000.0 / bin_ms)
    return write_trials(trials, destination, backend=backend, overwrite=overwrite)


def _append(columns, session, tier, clip, spectrogram, responses):
    columns["session"].append(session)
    columns["tier"].append(tier)
    columns["clip_id"].append(int(clip))
    columns["spectrograms"].append(spectrogram)
    columns["responses"].append(responses)


def convert_ns1(source: str | os.PathLike, destination: str | os.PathLike, *,
                validation_stimuli: tuple[int, ...] = (3, 6), test_stimuli: tuple[int, ...] = (9, 19),
                max_noise_ratio: float | None = None, backend: str = "memmap", overwrite: bool = False) -> Path:
    """NS1 file -> trial store: one trial per (sound, repeat), tiers by sound index.

    Args:
        source: HDF5 file in the NS1 layout (module docstring).
        destination: folder to create.
        validation_stimuli, test_stimuli: sound indices of those tiers (default: Rahman et al.'s
            test sounds 3, 6, 9, 19 split in two); all other sounds are train sounds.
        max_noise_ratio: keep neurons with noise ratio below this (None: all).
        backend, overwrite: see `write_trials`.

    Raises:
        AuditoryFormatError: naming the file, the field and the problem (nothing written).
    """
    f = _File(source)
    try:
        spectrograms = f.array("spectrograms", 3)
        responses = f.array("responses", 4)
        given = f.array("noise_ratio", 1, optional=True)
    finally:
        f.close()
    s, bands, t = spectrograms.shape
    if bands != NS1_BANDS:
        f.fail("spectrograms", f"has {bands} frequency bands; NS1 has {NS1_BANDS} (shape (S, 34, T))")
    if responses.shape[1] != s or responses.shape[3] != t:
        f.fail("responses", f"has shape {responses.shape}; expected (N, {s}, R, {t}) to match spectrograms")
    if responses.min() < 0:
        f.fail("responses", "has negative spike counts")
    if given is not None and len(given) != responses.shape[0]:
        f.fail("noise_ratio", f"has {len(given)} entries for {responses.shape[0]} neurons")
    tiers = _stimulus_tiers(f, s, validation_stimuli, test_stimuli)
    keep, ratio = _keep_neurons(f, responses.transpose(2, 1, 3, 0).reshape(responses.shape[2], -1, responses.shape[0]),
                                given, max_noise_ratio)
    columns: dict[str, list] = {k: [] for k in ("session", "tier", "clip_id", "spectrograms", "responses")}
    for stimulus in range(s):
        for repeat in range(responses.shape[2]):
            _append(columns, "ns1", tiers[stimulus], stimulus, spectrograms[stimulus].T,
                    responses[keep, stimulus, repeat].T)
    neurons = {"ns1": {"unit_id": np.flatnonzero(keep), "noise_ratio": np.minimum(ratio[keep], 1e30)}}
    return _write(columns, neurons, NS1_BIN_MS, destination, backend, overwrite)


def _stimulus_tiers(f: _File, n: int, validation, test) -> list[str]:
    chosen = list(validation) + list(test)
    bad = [i for i in chosen if not 0 <= int(i) < n]
    if bad or len(set(chosen)) != len(chosen) or not validation or not test or len(chosen) >= n:
        f.fail("spectrograms", f"has {n} sounds; validation_stimuli={list(validation)} and test_stimuli={list(test)} "
               "must be distinct, non-empty indices below it, leaving train sounds")
    tiers = ["train"] * n
    for i in validation:
        tiers[int(i)] = "validation"
    for i in test:
        tiers[int(i)] = "test"
    return tiers


def convert_nat4(source: str | os.PathLike, destination: str | os.PathLike, *, n_validation_sounds: int | None = None,
                 max_noise_ratio: float | None = None, backend: str = "memmap", overwrite: bool = False) -> Path:
    """NAT4 (A1 or PEG) file -> trial store: estimation sounds train, repeated sounds validation/test.

    Args:
        source: HDF5 file in the NAT4 layout (module docstring).
        destination: folder to create.
        n_validation_sounds: repeated sounds given to the validation tier, the rest to test
            (default: half).
        max_noise_ratio: keep neurons whose noise ratio on the repeated sounds is below this.
        backend, overwrite: see `write_trials`.

    Raises:
        AuditoryFormatError: naming the file, the field and the problem (nothing written).
    """
    f = _File(source)
    try:
        area = f.h5.attrs.get("area")
        area = area.decode() if isinstance(area, bytes) else area
        arrays = {name: f.array(name, 3 if name.endswith("stim") else 4)
                  for name in ("estimation/stim", "estimation/resp", "validation/stim", "validation/resp")}
    finally:
        f.close()
    if area not in ("A1", "PEG"):
        f.fail("attrs/area", f"is {area!r}; NAT4 files name their area 'A1' or 'PEG'")
    for part in ("estimation", "validation"):
        stim, resp = arrays[f"{part}/stim"], arrays[f"{part}/resp"]
        if stim.shape[1] != NAT4_BANDS:
            f.fail(f"{part}/stim", f"has {stim.shape[1]} frequency bands; NAT4 has {NAT4_BANDS}")
        if resp.shape[1] != stim.shape[0] or resp.shape[3] != stim.shape[2]:
            f.fail(f"{part}/resp", f"has shape {resp.shape}; expected (N, {stim.shape[0]}, R, {stim.shape[2]})")
    est, val = arrays["estimation/resp"], arrays["validation/resp"]
    if est.shape[2] != 1:
        f.fail("estimation/resp", f"has {est.shape[2]} repeats; NAT4 estimation sounds are heard once")
    if val.shape[2] < 2:
        f.fail("validation/resp", "has fewer than 2 repeats; the validation sounds are repeated (20 times)")
    if est.shape[0] != val.shape[0]:
        f.fail("validation/resp", f"has {val.shape[0]} neurons but estimation/resp has {est.shape[0]}")
    n_val = val.shape[1] // 2 if n_validation_sounds is None else int(n_validation_sounds)
    if not 1 <= n_val < val.shape[1]:
        f.fail("validation/stim", f"has {val.shape[1]} sounds; n_validation_sounds={n_val} must leave test sounds")
    keep, ratio = _keep_neurons(f, val.transpose(2, 1, 3, 0).reshape(val.shape[2], -1, val.shape[0]), None, max_noise_ratio)
    session = f"nat4_{area.lower()}"
    columns: dict[str, list] = {k: [] for k in ("session", "tier", "clip_id", "spectrograms", "responses")}
    for s in range(est.shape[1]):
        _append(columns, session, "train", s, arrays["estimation/stim"][s].T, est[keep, s, 0].T)
    for s in range(val.shape[1]):
        for r in range(val.shape[2]):
            _append(columns, session, "validation" if s < n_val else "test", est.shape[1] + s,
                    arrays["validation/stim"][s].T, val[keep, s, r].T)
    neurons = {session: {"unit_id": np.flatnonzero(keep), "noise_ratio": np.minimum(ratio[keep], 1e30)}}
    return _write(columns, neurons, NAT4_BIN_MS, destination, backend, overwrite)


def convert_wehr(source: str | os.PathLike, destination: str | os.PathLike, *, bin_ms: float = 5.0,
                 test_fraction: float = 0.2, backend: str = "memmap", overwrite: bool = False) -> Path:
    """Wehr file -> trial store: one session per neuron, one trial per (clip, repeat).

    Each neuron's clips (at least 3) are split in order: the last ``test_fraction`` (at least
    one) test, the one before validation, the rest train.

    Args:
        source: HDF5 file in the Wehr layout (module docstring).
        destination: folder to create.
        bin_ms: bin width of the spectrograms and potentials (ms).
        test_fraction: fraction of each neuron's clips in the test tier.
        backend, overwrite: see `write_trials`.

    Raises:
        AuditoryFormatError: naming the file, the field and the problem (nothing written).
    """
    f = _File(source)
    try:
        spectrograms = f.array("spectrograms", 3)
        lengths = f.array("sound_length", 1, integer=True)
        if "neurons" not in f.h5 or not len(f.h5["neurons"]):
            f.fail("neurons", "is missing or empty; one group per neuron: neurons/<name>/{clip, potential}")
        names = sorted(f.h5["neurons"])
        cells = {name: (f.array(f"neurons/{name}/clip", 1, integer=True), f.array(f"neurons/{name}/potential", 3))
                 for name in names}
    finally:
        f.close()
    if len(lengths) != len(spectrograms) or lengths.min() < 1 or lengths.max() > spectrograms.shape[2]:
        f.fail("sound_length", f"must give 1..{spectrograms.shape[2]} bins for each of the {len(spectrograms)} sounds")
    columns: dict[str, list] = {k: [] for k in ("session", "tier", "clip_id", "spectrograms", "responses")}
    for name, (clips, potential) in cells.items():
        where = f"neurons/{name}"
        if len(clips) < 3:
            f.fail(f"{where}/clip", f"lists {len(clips)} clips; a neuron needs >= 3 (train, validation, test)")
        if clips.min() < 0 or clips.max() >= len(spectrograms):
            f.fail(f"{where}/clip", f"has indices outside 0..{len(spectrograms) - 1}")
        if potential.shape[0] != len(clips) or potential.shape[2] != spectrograms.shape[2]:
            f.fail(f"{where}/potential", f"has shape {potential.shape}; expected ({len(clips)}, R, {spectrograms.shape[2]})")
        n_test = max(1, int(round(test_fraction * len(clips))))
        tiers = ["train"] * (len(clips) - n_test - 1) + ["validation"] + ["test"] * n_test
        for clip, tier, traces in zip(clips, tiers, potential):
            t = int(lengths[clip])
            for trace in traces:
                _append(columns, name, tier, clip, spectrograms[clip, :, :t].T, trace[:t, None])
    neurons: dict[str, Any] = {name: {"unit_id": [0]} for name in names}
    return _write(columns, neurons, bin_ms, destination, backend, overwrite)

"""NWB spiking data read natively with pynwb, as the same bundle as `neurofit.ctd_spikes`.

What is read: the ``units`` table (``spike_times`` per unit, and an optional boolean column
``heldout``), the ``trials`` table (``start_time``, ``stop_time`` and an optional text column
``split`` of "train"/"valid"), and optionally a TimeSeries in ``acquisition`` named by
``input_series`` with the task inputs (time x features, sampled at the bin size). Spikes are
counted in bins of ``bin_size`` seconds from each trial's start; every trial must hold the same
number of bins. Without a ``split`` column the first 80 % of trials train.

nlb_tools' loader breaks on pandas 3; this reader needs only pynwb and numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ctd_files import CtdFileError, ctd_bundle
from .info import DataBundle
from .paths import resolve_data_path

__all__ = ["NwbFileError", "build_nwb_spikes", "read_nwb_spikes", "write_nwb_spikes"]


class NwbFileError(CtdFileError):
    """An NWB file without the tables or columns this reader needs, or with inconsistent shapes."""


def _bin(spike_times: list[np.ndarray], starts: np.ndarray, n_bins: int, bin_size: float) -> np.ndarray:
    """(n_trials, n_bins, n_units) counts; one histogram per unit over all trials' bin edges."""
    edges = starts[:, None] + bin_size * np.arange(n_bins + 1)[None]
    counts = np.zeros((len(starts), n_bins, len(spike_times)))
    for unit, times in enumerate(spike_times):  # per unit: a searchsorted over all trial edges at once
        idx = np.searchsorted(np.asarray(times), edges)
        counts[:, :, unit] = np.diff(idx, axis=1)
    return counts


def read_nwb_spikes(path: str | Path, *, bin_size: float = 0.01, input_series: str = "",
                    n_heldout: int = 0) -> dict[str, np.ndarray]:
    """Binned spikes, inputs and the held-out split of an NWB file.

    Returns:
        ``spikes`` (n_trials, T, N) with held-out units last, ``inputs`` (n_trials, T, I) (I = 1,
        zeros, without ``input_series``), ``train`` (n_trials,) bool, ``n_heldin`` (int array).

    Raises:
        NwbFileError: a missing table, column or series, trials of different lengths, or inputs of
            the wrong length, naming what is wrong.
    """
    import pynwb

    where = str(path)
    resolved = resolve_data_path(path, "NWB file", lambda p: p.is_file())
    with pynwb.NWBHDF5IO(str(resolved), "r") as io:
        nwb = io.read()
        if nwb.units is None or "spike_times" not in nwb.units.colnames:
            raise NwbFileError(f"{where}: no units table with spike_times; write units with nwbfile.add_unit")
        if nwb.trials is None:
            raise NwbFileError(f"{where}: no trials table; add trials with start_time and stop_time")
        spike_times = [np.asarray(nwb.units["spike_times"][i]) for i in range(len(nwb.units))]
        heldout = (np.asarray(nwb.units["heldout"][:], bool) if "heldout" in nwb.units.colnames
                   else np.arange(len(spike_times)) >= len(spike_times) - n_heldout)
        starts = np.asarray(nwb.trials["start_time"][:], float)
        stops = np.asarray(nwb.trials["stop_time"][:], float)
        lengths = np.round((stops - starts) / bin_size).astype(int)
        if len(set(lengths)) != 1 or lengths[0] < 2:
            raise NwbFileError(f"{where}: trials hold {sorted(set(lengths))} bins of {bin_size} s; they must all "
                               "be equally long (>= 2 bins)")
        split = (np.asarray(nwb.trials["split"][:]) == "train" if "split" in nwb.trials.colnames
                 else np.arange(len(starts)) < int(0.8 * len(starts)))
        n_bins = int(lengths[0])
        if input_series:
            if input_series not in nwb.acquisition:
                raise NwbFileError(f"{where}: no acquisition series {input_series!r}; it has {sorted(nwb.acquisition)}")
            series = nwb.acquisition[input_series]
            data = np.asarray(series.data[:], float).reshape(len(series.data), -1)
            first = np.round((starts - (series.starting_time or 0.0)) / bin_size).astype(int)
            if first.min() < 0 or first.max() + n_bins > len(data):
                raise NwbFileError(f"{where}: series {input_series!r} has {len(data)} samples, too few to cover "
                                   f"every trial at {bin_size} s per sample")
            inputs = data[first[:, None] + np.arange(n_bins)[None]]
        else:
            inputs = np.zeros((len(starts), n_bins, 1))
    if heldout.all() or not heldout.any():
        raise NwbFileError(f"{where}: {int(heldout.sum())} of {len(heldout)} units are held out; mark some (not "
                           "all) with a boolean units column 'heldout', or pass n_heldout")
    if split.all() or not split.any():
        raise NwbFileError(f"{where}: the trials need both train and valid trials (column 'split')")
    order = np.concatenate([np.flatnonzero(~heldout), np.flatnonzero(heldout)])
    spikes = _bin([spike_times[i] for i in order], starts, n_bins, bin_size)
    return {"spikes": spikes, "inputs": inputs, "train": split, "n_heldin": np.asarray(int((~heldout).sum()))}


def build_nwb_spikes(seed: int, *, path: str, bin_size: float = 0.01, input_series: str = "", n_heldout: int = 0,
                     batch_size: int = 64) -> DataBundle:
    """NWB spiking trials as a dataset (same batches as ``neurofit.ctd_spikes``; no ground truth)."""
    data = read_nwb_spikes(path, bin_size=bin_size, input_series=input_series, n_heldout=n_heldout)
    arrays = {}
    for split, rows in (("train", data["train"]), ("valid", ~data["train"])):
        arrays[f"{split}_recon_data"] = data["spikes"][rows]
        arrays[f"{split}_inputs"] = data["inputs"][rows]
        arrays[f"{split}_latents"] = np.zeros((int(rows.sum()), data["spikes"].shape[1], 0))
    return ctd_bundle(arrays, int(data["n_heldin"]), batch_size, source=f"nwb:{Path(path).name}")


def write_nwb_spikes(path: str | Path, spikes: np.ndarray, *, bin_size: float = 0.01, heldout: np.ndarray,
                     inputs: np.ndarray | None = None, n_train: int | None = None) -> Path:
    """Writes binned trials (n_trials, T, N) as an NWB file this reader understands (for tests, demos)."""
    from datetime import datetime, timezone

    import pynwb

    n_trials, n_bins, n_units = spikes.shape
    nwb = pynwb.NWBFile(session_description="neurofit spikes", identifier=Path(path).stem,
                        session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    nwb.add_trial_column("split", "train or valid")
    n_train = int(0.8 * n_trials) if n_train is None else n_train
    for trial in range(n_trials):
        start = trial * (n_bins + 1) * bin_size
        nwb.add_trial(start_time=start, stop_time=start + n_bins * bin_size,
                      split="train" if trial < n_train else "valid")
    nwb.add_unit_column("heldout", "held out of the encoder's input")
    centres = np.arange(n_bins) * bin_size + bin_size / 2
    for unit in range(n_units):
        times = [np.repeat(t * (n_bins + 1) * bin_size + centres, spikes[t, :, unit].astype(int))
                 for t in range(n_trials)]
        nwb.add_unit(spike_times=np.concatenate(times), heldout=bool(heldout[unit]))
    if inputs is not None:
        full = np.zeros((n_trials * (n_bins + 1), inputs.shape[-1]))
        for trial in range(n_trials):
            full[trial * (n_bins + 1): trial * (n_bins + 1) + n_bins] = inputs[trial]
        nwb.add_acquisition(pynwb.TimeSeries(name="inputs", data=full, unit="a.u.", rate=1.0 / bin_size,
                                             starting_time=0.0))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return Path(path)

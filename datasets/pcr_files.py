"""DeepDraw's published PCR dataset files (``pcr_dataset_{train,test}.hdf5``), streamed.

Layout (``amathislab/DeepDraw``: ``code/nn_train_utils.py`` reads ``spindle_info`` and
``label``; ``single_cell`` reads the kinematics; N trajectories, T = 320 samples at 0.015 s)::

    spindle_info        (N, 25, T, 2)  muscle length (mm) and its np.gradient (mm/s)   required
    label               (N,)           class 1..20                                     required
    endeffector_coords  (N, 3, T)      hand position, world cm                         required
    joint_coords        (N, 4, T)      joint angles (degrees)                          optional
    muscle_coords       (N, 25, T)     muscle lengths (mm)                             optional
    start_id, end_id    (N,)           first / last sample of the drawn part           optional
    speed               (N,)           the speed latent                                optional

Trajectories are NaN-padded: a padded time step is NaN in every muscle and channel, and padding
only runs from the start or to the end of a trajectory. Any other NaN (inside a trajectory, or
in only some muscles) is refused, naming the file, key and trajectory. The padding becomes a
rest: lengths (and hand positions) hold their nearest valid value, velocities are 0, and for the
trajectory task the loss mask (``weights``) is 0 there.

The files are never read whole (the full set is about 30 GB): batches are read from h5py per
batch (sorted row indices, one fancy-indexed read per key), normalization statistics come from at
most ``normalization_rows`` training trajectories, and the NaN layout is checked on the first
``check_rows`` trajectories at build time and on every batch as it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from . import muscles
from .info import DataBundle, DataInfo
from .paths import resolve_data_path
from .pcr import CLASS_NAMES, kinematic_features

__all__ = ["PcrFileError", "build_pcr_hdf5", "check_pcr_file", "fill_padding", "padding_mask", "read_rows"]

#: key -> (shape after N, with None for T, required). The muscle count is DeepDraw's 25.
LAYOUT = {
    "spindle_info": ((len(muscles.MUSCLE_NAMES), None, 2), True),
    "label": ((), True),
    "endeffector_coords": ((3, None), True),
    "joint_coords": ((4, None), False),
    "muscle_coords": ((len(muscles.MUSCLE_NAMES), None), False),
    "start_id": ((), False),
    "end_id": ((), False),
    "speed": ((), False),
}
#: Keys with a time axis, and where it is (after N).
TIME_AXIS = {"spindle_info": 2, "endeffector_coords": 2, "joint_coords": 2, "muscle_coords": 2}


class PcrFileError(ValueError):
    """A PCR hdf5 file with a missing key, a wrong shape, bad labels or NaN that is not padding."""


def _is_h5(path: Path) -> bool:
    return path.is_file() and h5py.is_hdf5(path)


def _want(shape: tuple, n: int, n_time: int) -> tuple:
    return (n, *[n_time if s is None else s for s in shape])


def check_pcr_file(path: str | Path, n_classes: int = 20) -> dict:
    """Keys, shapes and labels of a PCR file; returns ``{"n", "n_time", "keys"}``.

    Raises:
        PcrFileError: naming the file, the key and the problem.
    """
    with h5py.File(path, "r") as f:
        for key, (_, required) in LAYOUT.items():
            if required and key not in f:
                need = [k for k, (_, r) in LAYOUT.items() if r]
                raise PcrFileError(f"{path}: key {key!r} is missing (a PCR file needs {need})")
        spindle = f["spindle_info"].shape
        if len(spindle) != 4:
            raise PcrFileError(f"{path}: key 'spindle_info' has shape {spindle}, expected (N, 25, T, 2)")
        n, n_time = spindle[0], spindle[2]
        keys = [k for k in LAYOUT if k in f]
        for key in keys:
            got = f[key].shape
            want = _want(LAYOUT[key][0], n, n_time)
            if got != want and not (LAYOUT[key][0] == () and got == (n, 1)):
                raise PcrFileError(f"{path}: key {key!r} has shape {got}, expected {want} (N={n}, T={n_time})")
        labels = f["label"][()].reshape(-1)
    if n == 0:
        raise PcrFileError(f"{path}: key 'spindle_info' holds no trajectories")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)) or labels.min() < 1 \
            or labels.max() > n_classes:
        raise PcrFileError(f"{path}: key 'label' must hold integers 1..{n_classes}, got {labels.min()}..{labels.max()}")
    return {"n": n, "n_time": n_time, "keys": keys}


def padding_mask(values: np.ndarray, time_axis: int, where: str, key: str, first_row: int = 0) -> np.ndarray:
    """(B, T) bool, True on valid steps, after checking that every NaN is padding.

    Args:
        values: (B, ..., T, ...) one batch of ``key``, time on ``time_axis``.
        where: the file, for the message.
        first_row: file row of ``values[0]`` (or an array of the rows), for the message.

    Raises:
        PcrFileError: NaN in only part of a time step, NaN inside a trajectory, or a trajectory
            with no valid step.
    """
    moved = np.moveaxis(values, time_axis, 1).reshape(len(values), values.shape[time_axis], -1)
    nan = np.isnan(moved)
    any_nan, all_nan = nan.any(axis=2), nan.all(axis=2)
    valid = ~all_nan
    rows = np.asarray(first_row) + np.arange(len(values)) if np.ndim(first_row) == 0 else np.asarray(first_row)
    partial = np.flatnonzero((any_nan & ~all_nan).any(axis=1))
    if len(partial):
        raise PcrFileError(f"{where}: key {key!r}, trajectory {rows[partial[0]]}: NaN in only some entries of a "
                           "time step (padding must be NaN in every entry)")
    n_valid = valid.sum(axis=1)
    empty = np.flatnonzero(n_valid == 0)
    if len(empty):
        raise PcrFileError(f"{where}: key {key!r}, trajectory {rows[empty[0]]}: every time step is NaN")
    # Valid steps must be one run: the padding is a prefix and/or a suffix.
    first = valid.argmax(axis=1)
    last = valid.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    holes = np.flatnonzero(last - first + 1 != n_valid)
    if len(holes):
        raise PcrFileError(f"{where}: key {key!r}, trajectory {rows[holes[0]]}: NaN inside the trajectory "
                           "(only leading or trailing NaN padding is allowed)")
    return valid


def fill_padding(values: np.ndarray, valid: np.ndarray, time_axis: int) -> np.ndarray:
    """``values`` with padded steps holding the nearest valid step (a rest), same shape."""
    moved = np.moveaxis(values, time_axis, 1)
    first = valid.argmax(axis=1)
    last = valid.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    source = np.clip(np.arange(valid.shape[1])[None], first[:, None], last[:, None])  # (B, T)
    filled = np.take_along_axis(moved, source.reshape(*source.shape, *[1] * (moved.ndim - 2)), axis=1)
    return np.moveaxis(filled, 1, time_axis)


def read_rows(f: h5py.File, rows: np.ndarray, keys, where: str) -> dict[str, np.ndarray]:
    """The ``keys`` of file rows ``rows`` (sorted), padding checked and filled, plus ``valid`` (B, T).

    Spindle velocities are 0 on padded steps (the arm rests there). ``valid`` comes from the first
    time-series key in ``keys``.
    """
    rows = np.asarray(rows)
    # One contiguous slice when possible: h5py reads those much faster than a list of rows.
    index = slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) and rows[-1] - rows[0] + 1 == len(rows) else rows
    out = {}
    for key in keys:
        values = f[key][index]
        if key in TIME_AXIS:
            valid = padding_mask(values, TIME_AXIS[key], where, key, rows)
            values = fill_padding(values, valid, TIME_AXIS[key])
            if key == "spindle_info":
                values[..., 1] = np.where(valid[:, None, :], values[..., 1], 0.0)
            out.setdefault("valid", valid)  # from the first time-series key read (spindle_info first)
        out[key] = values
    return out


class _FileBatches(Dataset):
    """Batches of one tier of a PCR file: ``dataset[list of positions]`` reads them from disk."""

    def __init__(self, path: str, rows: np.ndarray, task: str, mean: np.ndarray, sd: np.ndarray):
        self.path, self.rows, self.task = path, rows, task
        self.mean, self.sd = mean.astype(np.float32), sd.astype(np.float32)
        self._file, self._pid = None, None

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # DataLoader workers reopen the file in their own process
        return {**self.__dict__, "_file": None, "_pid": None}

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def __getitem__(self, positions) -> dict[str, torch.Tensor]:
        positions = np.atleast_1d(np.asarray(positions))
        rows = np.sort(self.rows[positions])  # h5py reads increasing rows
        keys = ["spindle_info", "label"] if self.task == "classification" else ["spindle_info", "endeffector_coords"]
        data = read_rows(self._handle(), rows, keys, self.path)
        inputs = (data["spindle_info"].transpose(0, 2, 1, 3) - self.mean) / self.sd  # (B, T, 25, 2)
        batch = {"inputs": torch.as_tensor(inputs.astype(np.float32))}
        if self.task == "classification":
            batch["labels"] = torch.as_tensor(data["label"].reshape(-1).astype(np.int64) - 1)
        else:
            ee = data["endeffector_coords"].transpose(0, 2, 1)  # (B, T, 3) world cm
            first = data["valid"].argmax(axis=1)
            start = ee[np.arange(len(ee)), first][:, None]
            batch["targets"] = torch.as_tensor((ee - start).astype(np.float32))
            batch["weights"] = torch.as_tensor(data["valid"].astype(np.float32))
        return batch


def _tiers(n_train_file: int, n_test_file: int | None, validation_fraction: float, test_fraction: float,
           test_rows: int) -> dict[str, tuple[str, np.ndarray]]:
    """Rows per tier as (file, rows): DeepDraw's split, validation = the last fraction of train."""
    if n_test_file is None:  # one file: train | validation | test in that order
        n_test = max(int(round(test_fraction * n_train_file)), 1)
        test = ("train", np.arange(n_train_file - n_test, n_train_file))
        n_train_file -= n_test
    else:
        test = ("test", np.arange(n_test_file))
    n_val = max(int(round(validation_fraction * n_train_file)), 1)
    if n_train_file - n_val < 1:
        raise PcrFileError(f"{n_train_file} trajectories leave none for training after validation and test")
    if test_rows:
        test = (test[0], test[1][:test_rows])
    return {"train": ("train", np.arange(n_train_file - n_val)),
            "validation": ("train", np.arange(n_train_file - n_val, n_train_file)), "test": test}


def _statistics(path: str, rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per muscle and channel mean and SD (25, 2) over valid steps of the first ``n_rows`` rows."""
    with h5py.File(path, "r") as f:
        data = read_rows(f, rows[:n_rows], ["spindle_info"], path)
    x = data["spindle_info"].transpose(0, 2, 1, 3)[data["valid"]]  # (valid steps, 25, 2)
    return x.mean(axis=0), x.std(axis=0) + 1e-6


def _check_rows(path: str, n: int, n_rows: int, keys) -> None:
    with h5py.File(path, "r") as f:
        for start in range(0, min(n, n_rows), 1024):  # in chunks: bounded memory
            read_rows(f, np.arange(start, min(start + 1024, n, n_rows)), [k for k in keys if k in TIME_AXIS], path)


def _test_kinematics(path: str, rows: np.ndarray, keys, dt: float) -> dict[str, np.ndarray]:
    """Kinematic artefacts of the test tier (as `neurofit.pcr_characters` stores them), read in chunks."""
    parts = []
    with h5py.File(path, "r") as f:
        for start in range(0, len(rows), 1024):
            chunk = read_rows(f, rows[start:start + 1024], [k for k in ("endeffector_coords", "joint_coords",
                                                                        "label") if k in keys], path)
            ee = chunk["endeffector_coords"].transpose(0, 2, 1).astype(np.float64)  # (B, T, 3)
            # The drawing plane: horizontal draws in world (x, y) with z constant, vertical in (y, z)
            # with x constant (DeepDraw's plane_to_world); plane x = -world y.
            vertical = np.ptp(ee[..., 0], axis=1) < np.ptp(ee[..., 2], axis=1)
            plane = np.stack([-ee[..., 1], np.where(vertical[:, None], ee[..., 2], ee[..., 0])], axis=-1)
            first = chunk["valid"].argmax(axis=1) if "valid" in chunk else np.zeros(len(ee), int)
            plane = plane - plane[np.arange(len(ee)), first][:, None]
            part = {k: v for k, v in kinematic_features(plane, dt).items() if k != "speed" and k != "direction"}
            part["endeffector"] = ee
            part["label"] = chunk["label"].reshape(-1).astype(np.int64) - 1
            if "joint_coords" in chunk:
                part["joint_angles"] = chunk["joint_coords"].transpose(0, 2, 1).astype(np.float64)
            parts.append(part)
    return {f"test_{k}": np.concatenate([p[k] for p in parts]) for k in parts[0]}


def build_pcr_hdf5(
    seed: int,
    *,
    path: str = "",
    test_path: str = "",
    task: str = "classification",
    n_classes: int = 20,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    test_rows: int = 0,
    batch_size: int = 64,
    normalization_rows: int = 4096,
    check_rows: int = 4096,
) -> DataBundle:
    """DeepDraw's PCR hdf5 files as spindle-input batches, streamed (the batches of `neurofit.pcr_characters`).

    Tiers: train and validation are the first and the last ``validation_fraction`` of ``path``
    (DeepDraw's ``train_val_split``); test is ``test_path`` (DeepDraw's ``pcr_dataset_test.hdf5``),
    or without one the last ``test_fraction`` of ``path``; ``test_rows`` > 0 keeps only the first
    that many test trajectories (DeepDraw analysed a fraction of its test set). Batches:
    ``inputs`` (B, T, 25, 2) float32 z-scored per muscle and channel with statistics of the first
    ``normalization_rows`` training trajectories; ``labels`` (B,) int64 0..19, or for
    ``task="trajectory"`` ``targets`` (B, T, 3) hand position (world cm, from its first valid
    step) and ``weights`` (B, T), 0 on NaN padding. ``seed`` is unused: the train loader shuffles
    from torch's global generator. Artefacts: the test tier's kinematics (``test_position``,
    ``test_velocity``, ``test_acceleration`` in the drawing plane, ``test_endeffector``,
    ``test_joint_angles`` when the file has joint coordinates, ``test_label``).

    Raises:
        DataPathError: no readable hdf5 file at ``path`` / ``test_path``.
        PcrFileError: a missing key, a wrong shape, bad labels or NaN that is not padding,
            naming the file and key.
    """
    if task not in ("classification", "trajectory"):
        raise ValueError(f"task={task!r}: use 'classification' or 'trajectory'")
    if not path:
        raise ValueError("neurofit.pcr_hdf5 needs path= (DeepDraw's pcr_dataset_train.hdf5)")
    files = {"train": str(resolve_data_path(path, "PCR hdf5 file", _is_h5))}
    layouts = {"train": check_pcr_file(files["train"], n_classes)}
    if test_path:
        files["test"] = str(resolve_data_path(test_path, "PCR hdf5 file", _is_h5))
        layouts["test"] = check_pcr_file(files["test"], n_classes)
        if layouts["test"]["n_time"] != layouts["train"]["n_time"]:
            raise PcrFileError(f"{test_path}: T={layouts['test']['n_time']} but {path} has "
                               f"T={layouts['train']['n_time']}: train and test files must match")
    for name, layout in layouts.items():
        _check_rows(files[name], layout["n"], check_rows, layout["keys"])
    tiers = _tiers(layouts["train"]["n"], layouts.get("test", {}).get("n"), validation_fraction, test_fraction,
                   test_rows)
    mean, sd = _statistics(files["train"], tiers["train"][1], normalization_rows)
    loaders = {}
    for tier, (name, rows) in tiers.items():
        batches = _FileBatches(files[name], rows, task, mean, sd)
        # Train order draws from torch's global generator (saved by the loop for exact resume).
        order = RandomSampler(batches) if tier == "train" else SequentialSampler(batches)
        loaders[tier] = {"all": DataLoader(batches, sampler=BatchSampler(order, batch_size, drop_last=False),
                                           batch_size=None)}
    n_time = layouts["train"]["n_time"]
    classification = task == "classification"
    test_file, test_rows_ = tiers["test"]
    info = DataInfo(
        input_shape=(n_time, len(muscles.MUSCLE_NAMES), 2), n_neurons={"all": 0},
        input_unit="muscle length (mm) and velocity (mm/s), z-scored per muscle and channel",
        provides=("labels",) if classification else ("targets", "mask"), modality="sequence",
        input_axes=("time", "space", "channel"), sampling_rate=1.0 / muscles.DT,
        n_classes=n_classes if classification else 0,
        class_names=CLASS_NAMES[:n_classes] if classification else (),
        target_shape=() if classification else (3,), target_names=() if classification else ("x", "y", "z"),
        normalization={"all": {"mean": mean.tolist(), "sd": sd.tolist()}},
        extra={"muscles": list(muscles.MUSCLE_NAMES), "dt_s": muscles.DT, "source": "DeepDraw PCR hdf5",
               "n_rows": {tier: len(rows) for tier, (_, rows) in tiers.items()}},
    )
    artefacts = _test_kinematics(files[test_file], test_rows_, layouts[test_file]["keys"], muscles.DT)
    return DataBundle(loaders=loaders, info=info, artefacts=artefacts)

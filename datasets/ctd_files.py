"""CtD's simulated-spiking h5 files: writer, validating reader, and the dataset builder.

Layout (CtD ``neural_simulator.py``; n = trials of a split, T steps, N = held-in + held-out
neurons, L latents, I inputs)::

    train_encod_data, valid_encod_data   (n, T, N_enc)  spikes the encoder sees (CtD: all N;
                                                       written here: the N_in held-in neurons)
    train_recon_data, valid_recon_data   (n, T, N)      spikes to reconstruct (all neurons)
    train_inputs, valid_inputs           (n, T, I)      task inputs
    train_activity, valid_activity       (n, T, N)      true rates (spikes per bin)
    train_latents, valid_latents         (n, T, L)      task-trained network's latents
    train_extra, valid_extra             (n, E)         task facts (zeros for NBFF)
    train_inds, valid_inds               (n,)           trial indices
    readout (L, N), orig_mean, orig_std (1, 1, 1), perm_neurons (N,)

Held-out neurons are the last ones: ``N - N_enc`` of them when the encoder data are narrower,
else the last ``n_heldout`` (CtD's files hold all neurons in both).

Batches (session "all", modality "sequence"): ``inputs`` (B, T, I) task inputs, ``encod_data``
(B, T, N_in) held-in spikes (a model keyword input), ``responses`` (B, T, N) all spikes. The
ground truth (rates, latents) is left out of batches: analyses read it with `read_ctd_h5`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import h5py
import numpy as np

from .ctd_tasks import tier_loaders
from .info import DataBundle, DataInfo
from .paths import resolve_data_path
from .stored import stored_file

__all__ = ["CtdFileError", "build_ctd_spikes", "ctd_bundle", "read_ctd_dataset", "read_ctd_h5", "split_heldout",
           "write_ctd_h5"]

_PER_SPLIT = ("encod_data", "recon_data", "inputs", "activity", "latents", "extra", "inds")
_GLOBAL = ("readout", "orig_mean", "orig_std", "perm_neurons")
SPLITS = ("train", "valid")


class CtdFileError(ValueError):
    """A CtD h5 file that lacks keys or whose arrays have inconsistent shapes."""


def _key(split: str, name: str) -> str:
    return f"{split}_{name}"


def write_ctd_h5(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Writes a CtD h5 file atomically (a temporary sibling renamed into place), after checking it.

    Args:
        path: destination.
        arrays: every key of the layout (see the module docstring).

    Raises:
        CtdFileError: a key is missing or a shape does not fit (nothing is written).
    """
    check_ctd_arrays({k: np.shape(v) for k, v in arrays.items()}, str(path))
    path = Path(path)
    # A name of its own: two writers of one destination (two test processes, two workers) must
    # not open the same temporary file, which HDF5's file lock refuses.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=np.asarray(value))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_ctd_arrays(shapes: dict[str, tuple], where: str) -> None:
    """Raises `CtdFileError` naming the file and key unless ``shapes`` fit the layout."""
    required = [_key(s, n) for s in SPLITS for n in _PER_SPLIT] + list(_GLOBAL)
    missing = [k for k in required if k not in shapes]
    if missing:
        raise CtdFileError(f"{where}: missing keys {missing}; a CtD simulated-spiking file needs {required}")

    def bad(key: str, want: str):
        return CtdFileError(f"{where}: {key} has shape {shapes[key]}, expected {want}")

    recon = shapes["train_recon_data"]
    if len(recon) != 3:
        raise bad("train_recon_data", "(n_trials, T, n_neurons)")
    n_time, n_neurons = recon[1:]
    n_latents = shapes["train_latents"][-1] if len(shapes["train_latents"]) == 3 else None
    for split in SPLITS:
        n = shapes[_key(split, "recon_data")][0] if len(shapes[_key(split, "recon_data")]) == 3 else None
        expect = {"recon_data": (n, n_time, n_neurons), "activity": (n, n_time, n_neurons)}
        for name, want in expect.items():
            if tuple(shapes[_key(split, name)]) != want:
                raise bad(_key(split, name), str(want))
        for name in ("encod_data", "inputs", "latents"):
            got = shapes[_key(split, name)]
            if len(got) != 3 or tuple(got[:2]) != (n, n_time):
                raise bad(_key(split, name), f"({n}, {n_time}, n_features)")
        if shapes[_key(split, "encod_data")][-1] > n_neurons or shapes[_key(split, "encod_data")][-1] < 1:
            raise bad(_key(split, "encod_data"), f"1..{n_neurons} neurons")
        if shapes[_key(split, "latents")][-1] != n_latents:
            raise bad(_key(split, "latents"), f"({n}, {n_time}, {n_latents}) like train_latents")
        if shapes[_key(split, "extra")][:1] != (n,) or tuple(shapes[_key(split, "inds")]) != (n,):
            raise bad(_key(split, "inds"), f"({n},), and {split}_extra ({n}, ...)")
    if tuple(shapes["readout"]) != (n_latents, n_neurons):
        raise bad("readout", f"({n_latents}, {n_neurons})")
    if tuple(shapes["perm_neurons"]) != (n_neurons,):
        raise bad("perm_neurons", f"({n_neurons},)")


def _is_h5(path: Path) -> bool:
    return path.is_file() and h5py.is_hdf5(path)


def read_ctd_h5(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a CtD h5 file, after checking keys and shapes.

    Raises:
        neurofit.datasets.paths.DataPathError: no readable h5 file there (or outside the roots).
        CtdFileError: missing keys or inconsistent shapes, naming the key.
    """
    return _read_checked(resolve_data_path(path, "CtD h5 file", _is_h5), str(path))


def _read_checked(resolved: Path, name: str) -> dict[str, np.ndarray]:
    with h5py.File(resolved, "r") as f:
        check_ctd_arrays({k: f[k].shape for k in f.keys() if isinstance(f[k], h5py.Dataset)}, name)
        return {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}


def read_ctd_dataset(config: dict) -> dict[str, np.ndarray]:
    """The arrays of the file a ``neurofit.ctd_spikes`` config names (its other keys are ignored).

    ``path``: a file on disk (`read_ctd_h5`); ``stored`` (+ ``stored_sha256``): a store-relative
    path in neurofit's object store (`neurofit.datasets.stored`), as simulated datasets hold.

    Raises:
        CtdFileError: neither or both named, missing keys or inconsistent shapes.
        neurofit.datasets.stored.StoredFileError: no object store here, or the file changed.
    """
    path, stored = config.get("path", ""), config.get("stored", "")
    if bool(path) == bool(stored):
        raise CtdFileError(f"a neurofit.ctd_spikes config names exactly one of 'path' (a file on disk) or 'stored' "
                           f"(an object-store path); got path={path!r}, stored={stored!r}")
    if path:
        return read_ctd_h5(path)
    return _read_checked(stored_file(stored, config.get("stored_sha256", "")), f"stored file {stored}")


def split_heldout(arrays: dict[str, np.ndarray], n_heldout: int) -> tuple[int, int]:
    """``(n_heldin, n_heldout)``: from the encoder width if narrower than all neurons, else the config."""
    n_neurons = arrays["train_recon_data"].shape[-1]
    n_enc = arrays["train_encod_data"].shape[-1]
    if n_enc < n_neurons:
        return n_enc, n_neurons - n_enc
    if not 0 < n_heldout < n_neurons:
        raise CtdFileError(f"n_heldout={n_heldout}: the file has {n_neurons} neurons; hold out 1..{n_neurons - 1}")
    return n_neurons - n_heldout, n_heldout


def ctd_bundle(arrays: dict[str, np.ndarray], n_heldin: int, batch_size: int, source: str) -> DataBundle:
    """The `DataBundle` of CtD-layout arrays with the first ``n_heldin`` neurons held in."""
    tiers = {}
    for split, tier in (("train", "train"), ("valid", "validation")):
        recon = arrays[_key(split, "recon_data")].astype(np.float32)
        tiers[tier] = {"inputs": arrays[_key(split, "inputs")].astype(np.float32),
                       "encod_data": recon[..., :n_heldin], "responses": recon}
    n_time, n_neurons = arrays["train_recon_data"].shape[1:]
    n_inputs = arrays["train_inputs"].shape[-1]
    info = DataInfo(input_shape=(n_time, n_inputs), n_neurons={"all": int(n_neurons)}, provides=("responses",),
                    modality="sequence", input_unit="task inputs", response_unit="spike count per bin",
                    mean_response={"all": tiers["train"]["responses"].mean(axis=(0, 1)).tolist()},
                    extra={"n_heldin": int(n_heldin), "n_heldout": int(n_neurons - n_heldin),
                           "n_latents": int(arrays["train_latents"].shape[-1]), "source": source})
    return DataBundle(loaders=tier_loaders(tiers, batch_size), info=info)


def build_ctd_spikes(seed: int, *, path: str = "", stored: str = "", stored_sha256: str = "", n_heldout: int = 10,
                     batch_size: int = 64, source: str = "") -> DataBundle:
    """Spikes of a CtD h5 file (simulated by neurofit or by CtD itself) as a dataset.

    Args:
        seed: unused (the file fixes the data).
        path: the h5 file (`neurofit.datasets.paths.resolve_data_path` rules); or else
        stored: its store-relative path in neurofit's object store (derived datasets), with
        stored_sha256: the file's checksum, verified before reading ("" skips the check).
        n_heldout: held-out neurons when the file's encoder data hold every neuron.
        batch_size: trials per batch.
        source: provenance tag (e.g. the task model and simulation keys); part of the config, so
            datasets derived from different task models never share a key.
    """
    arrays = read_ctd_dataset({"path": path, "stored": stored, "stored_sha256": stored_sha256})
    n_heldin, _ = split_heldout(arrays, n_heldout)
    return ctd_bundle(arrays, n_heldin, batch_size, source)

"""Trial stores on disk: numpy memmap directories (fast, default) and Deep Lake 4 datasets.

Both hold exactly what a `neurofit.datasets.trials.TrialSet` holds, with the same `TrialMeta`
(fingerprint included), and both implement the reader interface (``meta``,
``read(index, start=0, stop=None)``), so any reader can be written to either backend
(e.g. converting an opened memmap store to Deep Lake).

Memmap layout (``backend="memmap"``)::

    path/
      neurofit_trials.json            {"format": "neurofit.trials", "version": 1, "backend": "memmap",
                                       "files": [[file per field] per session], "meta": TrialMeta.to_dict()}
      session000_videos.npy           (frames of session 0, C, H, W)  uint8 | float32
      session000_responses.npy        (frames of session 0, n_neurons) float32
      session000_behavior.npy         (frames of session 0, n_behavior) float32
      session000_pupil_center.npy     (frames of session 0, 2) float32
      session000_optogenetic_signal.npy  (frames of session 0,) float32   (only with a signal)
      session001_...

Every file is one session's trials concatenated along time, in trial order; a trial's first
frame is the sum of the lengths of the session's earlier trials (`trials.session_offsets`).
`MemmapTrials.read` is one slice per field of arrays opened once with
``np.load(mmap_mode="r")``.

Deep Lake layout (``backend="deeplake"``): a Deep Lake 4 dataset with one row per trial, in trial
order, and columns ``session`` (text), ``tier`` (text), ``clip_id`` (int64), ``condition`` (int64)
for queries, plus one jagged Array column per field (same dtypes and shapes as above, per
trial). ``ds.metadata["neurofit_trials"]`` holds the JSON ``{"format", "version", "backend",
"meta"}``. Deep Lake reads whole rows (no partial reads of an array), so ``read`` of a window
reads the whole trial and slices it.

``import deeplake`` happens only inside the Deep Lake functions: importing it contacts an
error-reporting host (a DNS lookup) with no opt-out, so memmap users never import it.

Writes are atomic: everything is written to a hidden temporary sibling of ``path`` that is
renamed into place only when complete; after a failure nothing is left at ``path`` (or the
previous store is still there, when overwriting).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .trials import (
    TrialFormatError,
    TrialMeta,
    _ConcatenatedReader,
    _fields_of,
    _fingerprint_hasher,
    _hash_trial,
    field_layout,
    frame_window,
    session_frames,
    session_offsets,
)

__all__ = ["write_trials", "open_trials", "is_trial_store", "MemmapTrials", "DeepLakeTrials", "BACKENDS", "MANIFEST"]

BACKENDS = ("memmap", "deeplake")
MANIFEST = "neurofit_trials.json"
FORMAT = "neurofit.trials"
VERSION = 1
DEEPLAKE_METADATA_KEY = "neurofit_trials"
_DEEPLAKE_MARKER = "_deeplake_log"  # directory every Deep Lake 4 dataset has at its root
_DEEPLAKE_BATCH_BYTES = 64 * 2**20  # append rows in batches of about this size (bounded memory)


def _import_deeplake():
    """Import Deep Lake on first use only (its import contacts a network host)."""
    try:
        import deeplake
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Deep Lake backend needs deeplake>=4: pip install 'neurofit[deeplake]' "
            "(or use backend='memmap')") from None
    return deeplake


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _iter_trials(trials) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Every trial of a reader, in trial order, as (index, arrays)."""
    for i in range(trials.meta.n_trials):
        yield i, trials.read(i)


def _expected_shapes(meta: TrialMeta) -> list[dict[str, tuple[str, tuple[int, ...]]]]:
    """Per session: ``{field: (dtype, per-frame shape)}``."""
    layout = field_layout(meta)
    out = []
    for session in meta.sessions:
        per = dict(layout)
        per["responses"] = ("float32", (meta.n_neurons[session],))
        out.append(per)
    return out


def _checked(arrays: Mapping[str, np.ndarray], i: int, length: int,
             shapes: dict[str, tuple[str, tuple[int, ...]]]) -> Mapping[str, np.ndarray]:
    """The source reader must return exactly what its meta promises (else we would store garbage)."""
    for name, (dtype, shape) in shapes.items():
        a = arrays.get(name)
        if a is None or a.shape != (length, *shape) or a.dtype != np.dtype(dtype):
            got = None if a is None else f"{a.shape} {a.dtype}"
            raise TrialFormatError(
                f"trial {i} column {name!r}: the source reader returned {got} but its meta says "
                f"{(length, *shape)} {dtype}; the source store is inconsistent, rebuild it")
    return arrays


def _check_fingerprint(h, meta: TrialMeta) -> None:
    if h.hexdigest() != meta.fingerprint:
        raise TrialFormatError(
            f"the trials read from the source do not match its fingerprint {meta.fingerprint[:12]}...; "
            f"the source store was modified or is corrupt, rebuild it from the original data")


def _write_memmap(trials, directory: Path) -> None:
    meta = trials.meta
    fields = _fields_of(meta)
    shapes = _expected_shapes(meta)
    frames = session_frames(meta)
    directory.mkdir()
    files, outputs = [], []
    for s in range(len(meta.sessions)):
        names, arrays = [], []
        for name in fields:
            dtype, shape = shapes[s][name]
            filename = f"session{s:03d}_{name}.npy"
            names.append(filename)
            arrays.append(np.lib.format.open_memmap(
                directory / filename, mode="w+", dtype=dtype, shape=(frames[s], *shape)))
        files.append(names)
        outputs.append(arrays)
    session_of = meta.session_index.tolist()
    offset_of = session_offsets(meta).tolist()
    length_of = meta.length.tolist()
    h = _fingerprint_hasher(meta)
    for i, arrays in _iter_trials(trials):
        s, o, n = session_of[i], offset_of[i], length_of[i]
        _checked(arrays, i, n, shapes[s])
        for name, out in zip(fields, outputs[s]):
            out[o:o + n] = arrays[name]
        _hash_trial(h, arrays, fields)
    _check_fingerprint(h, meta)
    for arrays in outputs:
        for out in arrays:
            out.flush()
    del outputs
    manifest = {"format": FORMAT, "version": VERSION, "backend": "memmap", "files": files,
                "meta": meta.to_dict()}
    # The manifest is written last: a directory without it is never mistaken for a store.
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def _write_deeplake(trials, directory: Path) -> None:
    deeplake = _import_deeplake()
    meta = trials.meta
    fields = _fields_of(meta)
    shapes = _expected_shapes(meta)
    ds = deeplake.create(str(directory))
    types = deeplake.types
    ds.add_column("session", types.Text())
    ds.add_column("tier", types.Text())
    ds.add_column("clip_id", types.Int64())
    ds.add_column("condition", types.Int64())
    for name, (dtype, shape) in shapes[0].items():
        ds.add_column(name, types.Array(dtype, dimensions=1 + len(shape)))

    columns = ("session", "tier", "clip_id", "condition", *fields)
    batch: dict[str, list] = {c: [] for c in columns}
    batch_bytes = 0
    h = _fingerprint_hasher(meta)
    for i, arrays in _iter_trials(trials):
        s = int(meta.session_index[i])
        _checked(arrays, i, int(meta.length[i]), shapes[s])
        _hash_trial(h, arrays, fields)
        batch["session"].append(meta.sessions[s])
        batch["tier"].append(str(meta.tier[i]))
        batch["clip_id"].append(int(meta.clip_id[i]))
        batch["condition"].append(int(meta.condition[i]))
        for name in fields:
            # A copy: readers may return views of memory-mapped files or of a larger row.
            batch[name].append(np.array(arrays[name]))
            batch_bytes += arrays[name].nbytes
        if batch_bytes >= _DEEPLAKE_BATCH_BYTES:
            ds.append(batch)
            batch = {c: [] for c in columns}
            batch_bytes = 0
    if batch["session"]:
        ds.append(batch)
    _check_fingerprint(h, meta)
    ds.metadata[DEEPLAKE_METADATA_KEY] = json.dumps(
        {"format": FORMAT, "version": VERSION, "backend": "deeplake", "meta": meta.to_dict()})
    ds.commit("neurofit write_trials")
    del ds


_WRITERS = {"memmap": "_write_memmap", "deeplake": "_write_deeplake"}


def _is_store(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path / _DEEPLAKE_MARKER).is_dir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_trials(trials, path: str | os.PathLike, *, backend: str = "memmap",
                 overwrite: bool = False) -> Path:
    """Write any reader (TrialSet, MemmapTrials, DeepLakeTrials) to a new store, atomically.

    Args:
        trials: a reader: ``meta`` (TrialMeta) and ``read(index)``. Build one from arrays with
            `TrialSet.from_arrays` / `TrialSet.from_dataframe`.
        path: directory to create.
        backend: "memmap" (fast local training) or "deeplake" (Deep Lake 4 dataset).
        overwrite: replace an existing trial store (or empty directory) at ``path``.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False, or it is not a trial store.
        TrialFormatError: the source returned arrays that contradict its meta or fingerprint.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: use one of {list(BACKENDS)}")
    if isinstance(trials, Mapping) or not (hasattr(trials, "meta") and hasattr(trials, "read")):
        raise TypeError(
            f"write_trials needs a reader (TrialSet, MemmapTrials, DeepLakeTrials), got "
            f"{type(trials).__name__}; build one with TrialSet.from_arrays(trials, frame_rate=...)")
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
        empty_dir = path.is_dir() and not any(path.iterdir())
        if not (_is_store(path) or empty_dir):
            raise FileExistsError(
                f"{path} exists and is not a neurofit trial store; refusing to replace it even with "
                f"overwrite=True (delete it yourself or choose another path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp = path.parent / f".{path.name}.writing-{tag}"
    try:
        globals()[_WRITERS[backend]](trials, tmp)  # looked up at call time (tests patch writers)
        if path.exists() or path.is_symlink():
            # Replace: move the old store aside, move the new one in, then delete the old one;
            # if the second rename fails the old store is put back.
            old = path.parent / f".{path.name}.replaced-{tag}"
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            _remove(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _parse_header(header: Any, where: str, backend: str) -> TrialMeta:
    if (not isinstance(header, dict) or header.get("format") != FORMAT
            or header.get("backend") != backend or "meta" not in header):
        raise TrialFormatError(f"{where} is not a neurofit trial store header; rewrite it with write_trials")
    if header.get("version") != VERSION:
        raise TrialFormatError(
            f"{where} has format version {header.get('version')!r}, this neurofit reads version "
            f"{VERSION}; rewrite the store with this version's write_trials")
    return TrialMeta.from_dict(header["meta"])


class MemmapTrials(_ConcatenatedReader):
    """Reader of a memmap trial store (see the module docstring for the layout).

    Files are opened once per process with ``np.load(mmap_mode="r")``; ``read`` returns
    read-only views (one slice per field, no copy). Picklable: the open files are dropped and
    reopened lazily on the first ``read`` after unpickling (DataLoader workers).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        try:
            header = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{manifest_path} not found: {self.path} is not a memmap trial store "
                f"(write one with write_trials)") from None
        self.meta = _parse_header(header, str(manifest_path), "memmap")
        self._files = header["files"]
        self._index(self.meta)
        self._arrays = None
        self._open()  # fail early in the process that opens the store

    def _open(self) -> list[tuple[np.ndarray, ...]]:
        meta = self.meta
        frames = session_frames(meta)
        arrays = []
        for s, expected in enumerate(_expected_shapes(meta)):
            per = []
            for name, filename in zip(self._fields, self._files[s]):
                file = self.path / filename
                a = np.load(file, mmap_mode="r")
                dtype, shape = expected[name]
                if a.shape != (frames[s], *shape) or a.dtype != np.dtype(dtype):
                    raise TrialFormatError(
                        f"{file}: holds {a.shape} {a.dtype} but the manifest says "
                        f"{(frames[s], *shape)} {dtype}; the store is corrupt, rewrite it")
                # A plain ndarray view of the memmap: slicing np.memmap runs Python code on every
                # call, slicing its ndarray view does not (the view keeps the mapping alive).
                per.append(a.view(np.ndarray))
            arrays.append(tuple(per))
        self._arrays = arrays
        return arrays

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "meta": self.meta, "files": self._files}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self.meta = state["meta"]
        self._files = state["files"]
        self._index(self.meta)
        self._arrays = None  # reopened by the first read() in this process

    def __repr__(self) -> str:
        return f"MemmapTrials({str(self.path)!r}, n_trials={self.meta.n_trials})"


class DeepLakeTrials:
    """Reader of a Deep Lake 4 trial store (see the module docstring for the layout).

    Keeps a reference to the opened dataset (column objects die with it). Picklable: the dataset
    handle is dropped and reopened on the first ``read`` in the new process.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._ds = None
        self._columns = None
        ds = self._open_dataset()
        try:
            header = json.loads(ds.metadata[DEEPLAKE_METADATA_KEY])
        except (KeyError, RuntimeError, ValueError, TypeError):
            raise TrialFormatError(
                f"{self.path} is a Deep Lake dataset without neurofit trial metadata "
                f"(metadata key {DEEPLAKE_METADATA_KEY!r}); write it with write_trials") from None
        self.meta = _parse_header(header, f"{self.path} (Deep Lake metadata)", "deeplake")
        if len(ds) != self.meta.n_trials:
            raise TrialFormatError(
                f"{self.path} has {len(ds)} rows but its metadata lists {self.meta.n_trials} "
                f"trials; the store is corrupt, rewrite it")
        self._setup()

    def _setup(self) -> None:
        self._fields = _fields_of(self.meta)
        self._length_of = self.meta.length.tolist()

    def _open_dataset(self):
        deeplake = _import_deeplake()
        self._ds = deeplake.open_read_only(str(self.path))
        return self._ds

    def _open(self):
        ds = self._ds if self._ds is not None else self._open_dataset()
        self._columns = tuple(ds[name] for name in self._fields)
        return self._columns

    def __len__(self) -> int:
        return len(self._length_of)

    def read(self, index: int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Frames [start, stop) of trial ``index`` (same contract as `TrialSet.read`).

        Deep Lake has no partial reads of an array: the whole trial is read, then sliced.
        """
        stop = frame_window(self._length_of, index, start, stop)
        length = self._length_of[index]
        columns = self._columns if self._columns is not None else self._open()
        row = int(index) % len(self._length_of)
        if start == 0 and stop == length:
            return {name: column[row] for name, column in zip(self._fields, columns)}
        return {name: column[row][start:stop] for name, column in zip(self._fields, columns)}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self.meta = state["meta"]
        self._ds = None
        self._columns = None
        self._setup()

    def __repr__(self) -> str:
        return f"DeepLakeTrials({str(self.path)!r}, n_trials={self.meta.n_trials})"


def is_trial_store(path: str | os.PathLike) -> bool:
    """True if ``path`` looks like a store written by `write_trials` (either backend)."""
    path = Path(path)
    return (path / MANIFEST).is_file() or (path / _DEEPLAKE_MARKER).is_dir()


def open_trials(path: str | os.PathLike) -> MemmapTrials | DeepLakeTrials:
    """Open a trial store written by `write_trials`, detecting its backend from the files.

    A directory with ``neurofit_trials.json`` is a memmap store; one with Deep Lake's
    ``_deeplake_log`` folder a Deep Lake store (only then is deeplake imported).
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return MemmapTrials(path)
    if (path / _DEEPLAKE_MARKER).is_dir():
        return DeepLakeTrials(path)
    if not path.exists():
        raise FileNotFoundError(f"no trial store at {path}; write one with write_trials(trials, path)")
    raise TrialFormatError(
        f"{path} is not a neurofit trial store (no {MANIFEST} and no Deep Lake dataset); write one "
        f"with write_trials(trials, path)")

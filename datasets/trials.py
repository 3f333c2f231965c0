"""Validated video trials: one presentation of one movie clip to one recording session.

Input format ("dict of arrays", also what the synthetic dLGN generator returns)::

    trials = {
        "session":  list[str] (n_trials,)          recording session name
        "tier":     list[str] (n_trials,)          "train" | "validation" | "test"
        "clip_id":  list[int] (n_trials,)          stimulus identity, shared by repeats of a clip
        "videos":   list[(T_i, H, W) or (T_i, C, H, W)]   uint8 or float, finite
        "responses": list[(T_i, n_neurons[session])]       float, finite (spike counts per bin)
        "behavior": list[(T_i, n_behavior)]                float, finite
        "pupil_center": list[(T_i, 2)]                     float, finite (x, y)
        "optogenetic_signal": optional list[(T_i,)]        float in [0, 1] (laser on = 1)
    }

A pandas DataFrame with one row per trial and these columns is the other accepted input; its
index labels name trials in error messages (dict input: the trial's position).

`TrialSet` validates everything once and keeps, per session and field, one array concatenated
along time plus per-trial offsets. That is the layout `trial_storage.MemmapTrials` keeps on
disk, so writing is a straight copy and reading a trial window is one slice per field.

Reader interface (`TrialSet`, `trial_storage.MemmapTrials`, `trial_storage.DeepLakeTrials`):
an attribute ``meta`` (`TrialMeta`) and ``read(index, start=0, stop=None)`` returning frames
[start, stop) of one trial as ``{"videos": (t, C, H, W) video_dtype, "responses": (t, n) float32,
"behavior": (t, k) float32, "pupil_center": (t, 2) float32, "optogenetic_signal": (t,) float32}``
(the last key only when ``meta.has_optogenetic``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .info import TIERS

__all__ = [
    "CONDITIONS",
    "FIELDS",
    "TIERS",
    "TrialFormatError",
    "TrialMeta",
    "TrialSet",
    "content_fingerprint",
]

CONDITIONS = ("control", "optogenetic")
FIELDS = ("videos", "responses", "behavior", "pupil_center", "optogenetic_signal")

_META_COLUMNS = ("session", "tier", "clip_id")
_REQUIRED = _META_COLUMNS + FIELDS[:4]
_OPTIONAL = ("optogenetic_signal",)
_FINGERPRINT_VERSION = "neurofit.trials.fingerprint/1"


class TrialFormatError(ValueError):
    """Trial data that does not follow the format; the message names the trial, column and fix."""


def _where(label: Any, column: str) -> str:
    return f"trial {label!r} column {column!r}"


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class TrialMeta:
    """Everything about a trial set except the frames themselves (small, JSON-able).

    Attributes:
        sessions: session names in order of first appearance.
        session_index: (n_trials,) int64, index into ``sessions`` of every trial.
        tier: (n_trials,) str, "train" | "validation" | "test".
        clip_id: (n_trials,) int64 stimulus identity; repeats of one clip share it.
        length: (n_trials,) int64 number of frames of every trial.
        condition: (n_trials,) int64 index into `CONDITIONS`: 1 ("optogenetic") when the
            trial's mean optogenetic signal is > 0.5, else 0; all 0 without a signal.
        n_neurons: ``{session: number of neurons}``, in session order.
        video_shape: (C, H, W) of one frame.
        video_dtype: "uint8" (uint8 input) or "float32" (any other numeric input).
        behavior_names: one name per behaviour column (may be empty).
        has_optogenetic: whether trials carry an optogenetic signal.
        frame_rate: frames per second (Hz).
        neurons: ``{session: {column: list of n values}}``, always with a "unit_id" column.
        fingerprint: sha256 hex digest over the content (these fields and the stored arrays in
            trial order); equal content gives an equal fingerprint on every backend.

    Arrays are read-only. Equality compares `to_dict()`.
    """

    sessions: tuple[str, ...]
    session_index: np.ndarray
    tier: np.ndarray
    clip_id: np.ndarray
    length: np.ndarray
    condition: np.ndarray
    n_neurons: dict[str, int]
    video_shape: tuple[int, int, int]
    video_dtype: str
    behavior_names: tuple[str, ...]
    has_optogenetic: bool
    frame_rate: float
    neurons: dict[str, dict[str, list]]
    fingerprint: str

    def __post_init__(self):
        # Coerce so that direct construction and from_dict give identical, immutable values.
        set_ = object.__setattr__
        set_(self, "sessions", tuple(str(s) for s in self.sessions))
        for name in ("session_index", "clip_id", "length", "condition"):
            set_(self, name, _readonly(np.array(getattr(self, name), dtype=np.int64).reshape(-1)))
        set_(self, "tier", _readonly(np.array([str(t) for t in self.tier], dtype=str).reshape(-1)))
        set_(self, "n_neurons", {str(k): int(v) for k, v in self.n_neurons.items()})
        set_(self, "video_shape", tuple(int(v) for v in self.video_shape))
        set_(self, "video_dtype", str(self.video_dtype))
        set_(self, "behavior_names", tuple(str(b) for b in self.behavior_names))
        set_(self, "has_optogenetic", bool(self.has_optogenetic))
        set_(self, "frame_rate", float(self.frame_rate))
        set_(self, "neurons", {str(s): {str(c): list(v) for c, v in cols.items()}
                               for s, cols in self.neurons.items()})
        set_(self, "fingerprint", str(self.fingerprint))
        n = len(self.session_index)
        for name in ("tier", "clip_id", "length", "condition"):
            if len(getattr(self, name)) != n:
                raise TrialFormatError(
                    f"TrialMeta.{name} has {len(getattr(self, name))} entries but session_index has "
                    f"{n}; every per-trial field needs one entry per trial")
        if n and (self.session_index.min() < 0 or self.session_index.max() >= len(self.sessions)):
            raise TrialFormatError("TrialMeta.session_index points outside sessions")
        if set(self.n_neurons) != set(self.sessions):
            raise TrialFormatError("TrialMeta.n_neurons must have exactly one entry per session")
        if len(self.video_shape) != 3:
            raise TrialFormatError(f"TrialMeta.video_shape must be (C, H, W), got {self.video_shape}")
        if self.video_dtype not in ("uint8", "float32"):
            raise TrialFormatError(f"TrialMeta.video_dtype must be 'uint8' or 'float32', got {self.video_dtype!r}")

    @property
    def n_trials(self) -> int:
        return len(self.session_index)

    @property
    def n_behavior(self) -> int:
        return len(self.behavior_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; `from_dict` restores an equal TrialMeta."""
        return {
            "sessions": list(self.sessions),
            "session_index": self.session_index.tolist(),
            "tier": self.tier.tolist(),
            "clip_id": self.clip_id.tolist(),
            "length": self.length.tolist(),
            "condition": self.condition.tolist(),
            "n_neurons": dict(self.n_neurons),
            "video_shape": list(self.video_shape),
            "video_dtype": self.video_dtype,
            "behavior_names": list(self.behavior_names),
            "has_optogenetic": self.has_optogenetic,
            "frame_rate": self.frame_rate,
            "neurons": {s: {c: list(v) for c, v in cols.items()} for s, cols in self.neurons.items()},
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrialMeta":
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in d]
        unknown = [k for k in d if k not in names]
        if missing or unknown:
            raise TrialFormatError(
                f"TrialMeta.from_dict: missing keys {missing}, unknown keys {unknown}; pass the dict "
                f"written by TrialMeta.to_dict()")
        return cls(**{n: d[n] for n in names})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrialMeta):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def select(self, session: str | Iterable[str] | None = None,
               tier: str | Iterable[str] | None = None) -> np.ndarray:
        """Indices of the trials of the given session(s) and tier(s).

        Args:
            session: a session name, several names, or None for all sessions.
            tier: a tier name ("train", "validation", "test"), several, or None for all.

        Returns:
            (n_selected,) int64 trial indices, ascending.
        """
        keep = np.ones(self.n_trials, dtype=bool)
        if session is not None:
            names = [session] if isinstance(session, str) else list(session)
            unknown = [s for s in names if s not in self.sessions]
            if unknown:
                raise KeyError(f"unknown session(s) {unknown}; known sessions: {list(self.sessions)}")
            wanted = [self.sessions.index(s) for s in names]
            keep &= np.isin(self.session_index, wanted)
        if tier is not None:
            tiers = [tier] if isinstance(tier, str) else list(tier)
            unknown = [t for t in tiers if t not in TIERS]
            if unknown:
                raise KeyError(f"unknown tier(s) {unknown}; tiers are {list(TIERS)}")
            keep &= np.isin(self.tier, tiers)
        return np.flatnonzero(keep).astype(np.int64)

    def __repr__(self) -> str:
        return (f"TrialMeta(n_trials={self.n_trials}, sessions={list(self.sessions)}, "
                f"n_neurons={self.n_neurons}, video_shape={self.video_shape}, "
                f"video_dtype={self.video_dtype!r}, behavior_names={list(self.behavior_names)}, "
                f"has_optogenetic={self.has_optogenetic}, frame_rate={self.frame_rate}, "
                f"fingerprint={self.fingerprint[:12]!r}...)")


def _fields_of(meta: TrialMeta) -> tuple[str, ...]:
    return FIELDS if meta.has_optogenetic else FIELDS[:4]


def _fingerprint_hasher(meta: TrialMeta) -> "hashlib._Hash":
    """sha256 primed with the content-defining metadata (everything but the fingerprint)."""
    header = meta.to_dict()
    del header["fingerprint"]
    header["format"] = _FINGERPRINT_VERSION
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
    return h


def _hash_trial(h: "hashlib._Hash", arrays: Mapping[str, np.ndarray], fields: Sequence[str]) -> None:
    """Feed one trial's arrays (stored dtypes) in field order as C-contiguous little-endian bytes."""
    for name in fields:
        a = arrays[name]
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).data)


def content_fingerprint(reader) -> str:
    """Recompute the fingerprint of any reader from its content (reads every trial once).

    Equals ``reader.meta.fingerprint`` unless the stored frames were changed or corrupted.
    """
    meta = reader.meta
    fields = _fields_of(meta)
    h = _fingerprint_hasher(meta)
    for i in range(meta.n_trials):
        _hash_trial(h, reader.read(i), fields)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Concatenated layout shared by TrialSet and MemmapTrials
# --------------------------------------------------------------------------------------------


def session_offsets(meta: TrialMeta) -> np.ndarray:
    """(n_trials,) int64 first frame of every trial within its session's concatenated arrays."""
    offsets = np.zeros(meta.n_trials, dtype=np.int64)
    for s in range(len(meta.sessions)):
        idx = np.flatnonzero(meta.session_index == s)
        lengths = meta.length[idx]
        offsets[idx] = np.cumsum(lengths) - lengths
    return offsets


def session_frames(meta: TrialMeta) -> list[int]:
    """Total number of frames per session (rows of its concatenated arrays)."""
    return np.bincount(meta.session_index, weights=meta.length,
                       minlength=len(meta.sessions)).astype(np.int64).tolist()


def field_layout(meta: TrialMeta) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{field: (dtype, per-frame shape)}`` of the stored arrays; responses width is per session
    (given here as -1)."""
    layout = {
        "videos": (meta.video_dtype, tuple(meta.video_shape)),
        "responses": ("float32", (-1,)),
        "behavior": ("float32", (meta.n_behavior,)),
        "pupil_center": ("float32", (2,)),
    }
    if meta.has_optogenetic:
        layout["optogenetic_signal"] = ("float32", ())
    return layout


def frame_window(lengths: Sequence[int], index: int, start: int, stop: int | None) -> int:
    """Checks a request for frames [start, stop) of trial ``index``; returns the resolved stop.

    Args:
        lengths: frames of every trial (a list, for fast indexing).
        index: trial index (negative counts from the end).
        start, stop: the window; ``stop=None`` means the trial's end.

    Raises:
        IndexError: naming the trial and the valid range.
    """
    try:
        length = lengths[index]
    except (IndexError, TypeError):
        raise IndexError(f"trial index {index!r} out of range for {len(lengths)} trials") from None
    if stop is None:
        stop = length
    if not 0 <= start < stop <= length:
        raise IndexError(
            f"frames [{start}, {stop}) of trial {index}: need 0 <= start < stop <= {length} "
            f"(the trial's length)")
    return stop


class _ConcatenatedReader:
    """read() over per-session arrays concatenated along time (TrialSet and MemmapTrials).

    Subclasses set ``meta`` and call `_index(meta)`; ``_arrays`` is a list (one entry per
    session) of tuples of arrays in `_fields` order, or None until `_open()` provides it.
    """

    meta: TrialMeta
    _arrays: list[tuple[np.ndarray, ...]] | None

    def _index(self, meta: TrialMeta) -> None:
        # Plain Python lists: indexing them is several times faster than numpy scalars, and
        # read() is called for every sample of every epoch.
        self._fields = _fields_of(meta)
        self._session_of = meta.session_index.tolist()
        self._offset_of = session_offsets(meta).tolist()
        self._length_of = meta.length.tolist()

    def _open(self) -> list[tuple[np.ndarray, ...]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._length_of)

    def read(self, index: int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Frames [start, stop) of trial ``index``.

        Args:
            index: trial index (negative counts from the end).
            start: first frame, 0 <= start < stop.
            stop: one past the last frame, <= the trial's length; None = the trial's length.

        Returns:
            ``{"videos": (t, C, H, W), "responses": (t, n), "behavior": (t, k),
            "pupil_center": (t, 2)[, "optogenetic_signal": (t,)]}`` with t = stop - start.
            Arrays are read-only views (no copy); copy them before modifying in place.
        """
        stop = frame_window(self._length_of, index, start, stop)
        session = self._session_of[index]
        offset = self._offset_of[index]
        arrays = self._arrays
        if arrays is None:
            arrays = self._open()
        lo = offset + start
        hi = offset + stop
        return {name: a[lo:hi] for name, a in zip(self._fields, arrays[session])}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_NDIM = {"responses": 2, "behavior": 2, "pupil_center": 2, "optogenetic_signal": 1}
_SHAPE_TEXT = {
    "videos": "(T, H, W) or (T, C, H, W)",
    "responses": "(T, n_neurons)",
    "behavior": "(T, n_behavior)",
    "pupil_center": "(T, 2)",
    "optogenetic_signal": "(T,)",
}


def _as_array(value: Any, label: Any, column: str) -> np.ndarray:
    where = _where(label, column)
    if value is None:
        raise TrialFormatError(f"{where}: is missing (None); give every trial a {_SHAPE_TEXT[column]} array")
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise TrialFormatError(
            f"{where}: could not be converted to an array ({e}); give a {_SHAPE_TEXT[column]} "
            f"numeric array") from None
    allowed = "biuf" if column == "optogenetic_signal" else "iuf"
    if a.dtype.kind not in allowed:
        raise TrialFormatError(
            f"{where}: has non-numeric dtype {a.dtype}; give a {_SHAPE_TEXT[column]} array of "
            f"{'uint8 or float' if column == 'videos' else 'floats'}")
    ndim_ok = a.ndim in (3, 4) if column == "videos" else a.ndim == _NDIM[column]
    if not ndim_ok:
        raise TrialFormatError(
            f"{where}: has shape {a.shape} ({a.ndim} dimensions) but must be {_SHAPE_TEXT[column]} "
            f"with time first; reshape it")
    if a.shape[0] == 0:
        raise TrialFormatError(f"{where}: has zero frames; drop empty trials")
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            kind = "NaN" if np.isnan(a[tuple(bad)]) else "inf"
            raise TrialFormatError(
                f"{where}: contains {kind} at frame {int(bad[0])} (and {int((~finite).sum())} "
                f"non-finite values in all); remove or interpolate non-finite samples first")
    return a


def _check_column_lengths(columns: Mapping[str, Any]) -> int:
    lengths = {}
    for name, values in columns.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TrialFormatError(
                f"column {name!r}: is a {type(values).__name__}, not a sequence; give one entry per trial")
        lengths[name] = len(values)
    n = lengths["session"]
    bad = {k: v for k, v in lengths.items() if v != n}
    if bad:
        raise TrialFormatError(
            f"columns have different numbers of trials: 'session' has {n} but {bad}; every column "
            f"needs exactly one entry per trial")
    if n == 0:
        raise TrialFormatError("no trials: the input is empty; give at least one trial")
    return n


def _check_columns(names: Iterable[Any]) -> None:
    names = list(names)
    missing = [c for c in _REQUIRED if c not in names]
    unknown = [c for c in names if c not in _REQUIRED + _OPTIONAL]
    if missing:
        raise TrialFormatError(
            f"missing required column(s) {missing}; trials need columns {list(_REQUIRED)} "
            f"(and optionally {list(_OPTIONAL)})")
    if unknown:
        raise TrialFormatError(
            f"unknown column(s) {unknown}; allowed columns are {list(_REQUIRED + _OPTIONAL)} "
            f"(drop or rename the others)")


def _check_frame_rate(frame_rate: Any) -> float:
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, numbers.Real):
        raise TrialFormatError(f"frame_rate must be a positive number of Hz, got {frame_rate!r}")
    if not math.isfinite(frame_rate) or frame_rate <= 0:
        raise TrialFormatError(f"frame_rate must be a positive finite number of Hz, got {frame_rate!r}")
    return float(frame_rate)


def _check_behavior_names(names: Any, n_behavior: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"behavior_{i}" for i in range(n_behavior))
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TrialFormatError(f"behavior_names must be a list of strings, got {names!r}")
    names = list(names)
    if not all(isinstance(n, str) for n in names):
        raise TrialFormatError(f"behavior_names must be strings, got {names!r}")
    if len(names) != n_behavior:
        raise TrialFormatError(
            f"behavior_names has {len(names)} names {names} but the behavior arrays have "
            f"{n_behavior} columns; give one name per column")
    if len(set(names)) != len(names):
        raise TrialFormatError(f"behavior_names must be unique, got {names}")
    return tuple(names)


def _check_neurons(neurons: Any, n_neurons: dict[str, int]) -> dict[str, dict[str, list]]:
    out = {s: {"unit_id": list(range(n))} for s, n in n_neurons.items()}
    if neurons is None:
        return out
    if not isinstance(neurons, Mapping):
        raise TrialFormatError(
            f"neurons must be a dict {{session: {{column: (n,) array}}}}, got {type(neurons).__name__}")
    for session, columns in neurons.items():
        if session not in n_neurons:
            raise TrialFormatError(
                f"neurons has metadata for session {session!r}, which has no trials; known sessions: "
                f"{list(n_neurons)} (fix the name or drop the entry)")
        if not isinstance(columns, Mapping):
            raise TrialFormatError(
                f"neurons[{session!r}] must be a dict {{column: (n,) array}}, got {type(columns).__name__}")
        n = n_neurons[session]
        for name, values in columns.items():
            where = f"neurons[{session!r}][{name!r}]"
            if not isinstance(name, str):
                raise TrialFormatError(f"{where}: column names must be strings")
            a = np.asarray(values)
            if a.ndim != 1 or len(a) != n:
                raise TrialFormatError(
                    f"{where}: has shape {a.shape} but session {session!r} has {n} neurons; give one "
                    f"value per neuron, in the order of the responses columns")
            if a.dtype.kind not in "biufU":
                raise TrialFormatError(f"{where}: dtype {a.dtype} is not JSON-able; use numbers or strings")
            values = a.tolist()
            try:
                json.dumps(values, allow_nan=False)
            except ValueError:
                raise TrialFormatError(
                    f"{where}: contains NaN or inf, which JSON cannot store; use finite values") from None
            out[session][name] = values
        if len(set(out[session]["unit_id"])) != n:
            raise TrialFormatError(f"neurons[{session!r}]['unit_id']: unit ids must be unique within a session")
    return out


def _is_integer(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (numbers.Integral, np.integer)):
        return True
    # Whole floats are accepted: pandas turns an int column into floats as soon as one entry is
    # a float (or NaN), and that one entry is what the error should point at.
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def _validate(columns: Mapping[str, Sequence], labels: Sequence[Any], *, neurons, frame_rate,
              behavior_names) -> tuple[TrialMeta, list[tuple[np.ndarray, ...]]]:
    """Check every trial; return the meta (without fingerprint) and per-session concatenated arrays."""
    frame_rate = _check_frame_rate(frame_rate)
    has_opto = "optogenetic_signal" in columns
    fields = FIELDS if has_opto else FIELDS[:4]

    sessions: list[str] = []
    session_pos: dict[str, int] = {}
    first_of_session: dict[str, tuple[Any, int]] = {}  # session -> (label, n_neurons)
    per_session: list[dict[str, list[np.ndarray]]] = []
    session_index, tiers, clip_ids, lengths, conditions = [], [], [], [], []
    frame_shape = None  # ((C, H, W), is_uint8, label)
    behavior_width = None  # (k, label)

    for i, label in enumerate(labels):
        session = columns["session"][i]
        if not isinstance(session, str) or not session:
            raise TrialFormatError(
                f"{_where(label, 'session')}: {session!r} is not a session name; give a non-empty string")
        tier = columns["tier"][i]
        if not isinstance(tier, str) or tier not in TIERS:
            raise TrialFormatError(f"{_where(label, 'tier')}: {tier!r} is not a tier; use one of {list(TIERS)}")
        clip_id = columns["clip_id"][i]
        if not _is_integer(clip_id):
            raise TrialFormatError(
                f"{_where(label, 'clip_id')}: {clip_id!r} ({type(clip_id).__name__}) is not an integer; "
                f"give integer clip ids (repeats of one clip share the id)")

        arrays = {name: _as_array(columns[name][i], label, name) for name in fields}
        video = arrays["videos"]
        if video.ndim == 3:
            video = arrays["videos"] = video[:, None]  # (T, H, W) -> (T, 1, H, W)
        n_frames = video.shape[0]
        for name in fields[1:]:
            if arrays[name].shape[0] != n_frames:
                raise TrialFormatError(
                    f"{_where(label, name)}: has {arrays[name].shape[0]} frames but 'videos' has "
                    f"{n_frames}; every field of a trial needs the same number of frames (time first)")

        is_uint8 = video.dtype == np.uint8
        if frame_shape is None:
            frame_shape = (video.shape[1:], is_uint8, label)
        elif video.shape[1:] != frame_shape[0]:
            raise TrialFormatError(
                f"{_where(label, 'videos')}: frames are (C, H, W) = {video.shape[1:]} but trial "
                f"{frame_shape[2]!r} has {frame_shape[0]}; every trial needs the same frame shape")
        elif is_uint8 != frame_shape[1]:
            raise TrialFormatError(
                f"{_where(label, 'videos')}: dtype {video.dtype} but trial {frame_shape[2]!r} has "
                f"{'uint8' if frame_shape[1] else 'non-uint8'} frames; give all videos as uint8 or all as float")

        n = arrays["responses"].shape[1]
        if session not in first_of_session:
            first_of_session[session] = (label, n)
            session_pos[session] = len(sessions)
            sessions.append(session)
            per_session.append({name: [] for name in fields})
        elif n != first_of_session[session][1]:
            first_label, first_n = first_of_session[session]
            raise TrialFormatError(
                f"{_where(label, 'responses')}: has {n} neurons but session {session!r} has {first_n} "
                f"(from trial {first_label!r}); every trial of a session must record the same neurons")

        k = arrays["behavior"].shape[1]
        if behavior_width is None:
            behavior_width = (k, label)
        elif k != behavior_width[0]:
            raise TrialFormatError(
                f"{_where(label, 'behavior')}: has {k} columns but trial {behavior_width[1]!r} has "
                f"{behavior_width[0]}; every trial needs the same behaviour variables")

        if arrays["pupil_center"].shape[1] != 2:
            raise TrialFormatError(
                f"{_where(label, 'pupil_center')}: has {arrays['pupil_center'].shape[1]} columns; "
                f"give (T, 2) arrays of (x, y)")

        condition = 0
        if has_opto:
            opto = arrays["optogenetic_signal"]
            lo, hi = float(opto.min()), float(opto.max())
            if lo < 0 or hi > 1:
                raise TrialFormatError(
                    f"{_where(label, 'optogenetic_signal')}: values range from {lo} to {hi}; the "
                    f"signal must lie in [0, 1] (laser on = 1), rescale it")
            condition = int(float(np.mean(opto, dtype=np.float64)) > 0.5)

        for name in fields:
            per_session[session_pos[session]][name].append(arrays[name])
        session_index.append(session_pos[session])
        tiers.append(tier)
        clip_ids.append(int(clip_id))
        lengths.append(n_frames)
        conditions.append(condition)

    n_neurons = {s: first_of_session[s][1] for s in sessions}
    video_dtype = "uint8" if frame_shape[1] else "float32"
    dtypes = {name: "float32" for name in fields}
    dtypes["videos"] = video_dtype
    meta = TrialMeta(
        sessions=tuple(sessions), session_index=session_index, tier=tiers, clip_id=clip_ids,
        length=lengths, condition=conditions, n_neurons=n_neurons, video_shape=frame_shape[0],
        video_dtype=video_dtype, behavior_names=_check_behavior_names(behavior_names, behavior_width[0]),
        has_optogenetic=has_opto, frame_rate=frame_rate, neurons=_check_neurons(neurons, n_neurons),
        fingerprint="",
    )
    concatenated = []
    for lists in per_session:
        concatenated.append(tuple(
            _readonly(np.concatenate(lists[name], axis=0, dtype=dtypes[name], casting="unsafe"))
            for name in fields))
        lists.clear()  # drop references to the inputs as soon as they are copied
    return meta, concatenated


# --------------------------------------------------------------------------------------------
# TrialSet
# --------------------------------------------------------------------------------------------


class TrialSet(_ConcatenatedReader):
    """Validated trials in memory; implements the reader interface (``meta``, ``read``).

    Build with `from_arrays` or `from_dataframe`, write to disk with
    `neurofit.datasets.trial_storage.write_trials`.
    """

    def __init__(self, meta: TrialMeta, arrays: list[tuple[np.ndarray, ...]]):
        """Low level; prefer `from_arrays` / `from_dataframe`.

        Args:
            meta: the trials' metadata (fingerprint included).
            arrays: per session (in ``meta.sessions`` order) a tuple of arrays in `FIELDS` order
                (without "optogenetic_signal" when ``meta.has_optogenetic`` is False), each the
                session's trials concatenated along time in trial order.
        """
        self.meta = meta
        self._arrays = arrays
        self._index(meta)

    @classmethod
    def from_arrays(cls, trials: Mapping[str, Sequence], *, neurons: Mapping | None = None,
                    frame_rate: float, behavior_names: Sequence[str] | None = None) -> "TrialSet":
        """Validate the dict-of-arrays format (see the module docstring).

        Args:
            trials: ``{column: sequence with one entry per trial}``. Errors name trials by position.
            neurons: optional ``{session: {column: (n,) array}}``; default unit_id = arange(n).
            frame_rate: frames per second (Hz), > 0.
            behavior_names: one name per behaviour column; default ["behavior_0", ...].

        Raises:
            TrialFormatError: naming the trial, the column and the fix.
        """
        if hasattr(trials, "columns") and hasattr(trials, "index"):
            return cls.from_dataframe(trials, neurons=neurons, frame_rate=frame_rate,
                                      behavior_names=behavior_names)
        if not isinstance(trials, Mapping):
            raise TrialFormatError(
                f"trials must be a dict of per-trial sequences or a DataFrame, got {type(trials).__name__}")
        _check_columns(trials.keys())
        n = _check_column_lengths(trials)
        return cls._build(trials, list(range(n)), neurons, frame_rate, behavior_names)

    @classmethod
    def from_dataframe(cls, frame, *, neurons: Mapping | None = None, frame_rate: float,
                       behavior_names: Sequence[str] | None = None) -> "TrialSet":
        """Validate a pandas DataFrame with one row per trial and the columns of the dict format.

        Errors name trials by index label. Arguments as in `from_arrays`.
        """
        if not (hasattr(frame, "columns") and hasattr(frame, "index")):
            raise TrialFormatError(f"from_dataframe needs a pandas DataFrame, got {type(frame).__name__}")
        _check_columns(frame.columns)
        if len(frame) == 0:
            raise TrialFormatError("no trials: the DataFrame has no rows; give at least one trial")
        columns = {name: frame[name].tolist() for name in frame.columns}
        return cls._build(columns, frame.index.tolist(), neurons, frame_rate, behavior_names)

    @classmethod
    def _build(cls, columns, labels, neurons, frame_rate, behavior_names) -> "TrialSet":
        meta, arrays = _validate(columns, labels, neurons=neurons, frame_rate=frame_rate,
                                 behavior_names=behavior_names)
        fields = _fields_of(meta)
        h = _fingerprint_hasher(meta)
        offsets = session_offsets(meta)
        for s, o, n in zip(meta.session_index.tolist(), offsets.tolist(), meta.length.tolist()):
            _hash_trial(h, {name: a[o:o + n] for name, a in zip(fields, arrays[s])}, fields)
        return cls(dataclasses.replace(meta, fingerprint=h.hexdigest()), arrays)

    def __repr__(self) -> str:
        return f"TrialSet({self.meta!r})"

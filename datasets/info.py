"""The typed data contract: what a model needs to know about its data, and what a batch holds.

A `DataInfo` is small and JSON-serialisable: it is stored with every trained model
(``TrainedModel.data_info``) so that `load_model` can rebuild the network without building
dataloaders, and it tells trainers and scores what the data provide. Its fields are typed and
checked when it is made; ``extra`` holds only a lab's own facts. Known ground truth of simulated
data is not part of it: it travels in `DataBundle.artefacts` and is stored once per dataset.

`DataInfo.from_dict` also reads the layout of earlier releases, whose facts sat under ``extra``
(`LEGACY_EXTRA_KEYS` says where each went).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader

__all__ = [
    "AXES",
    "Batch",
    "DataBundle",
    "DataInfo",
    "DataInfoError",
    "LEGACY_EXTRA_KEYS",
    "MODALITIES",
    "PROVIDES",
    "TIERS",
    "TIME_RESOLVED",
]

TIERS = ("train", "validation", "test")

#: What a dataset can provide besides its inputs, and the batch key that carries it. The single
#: source of truth for `DataInfo.provides`.
PROVIDES: dict[str, str] = {
    "responses": "responses",  # recorded (or simulated) neural responses, one column per neuron
    "labels": "labels",  # class labels, int64 in [0, n_classes)
    "targets": "targets",  # regression targets (e.g. hand position, task outputs)
    "mask": "weights",  # a loss mask / per-element weights for responses or targets
}

#: Kinds of stimulus, with the layout of one item of a batch's ``inputs`` (after the batch axis).
MODALITIES: dict[str, str] = {
    "image": "a still stimulus per trial: (channel, height, width), or any tensor per trial",
    "video": "movie trials: (channel, time, height, width); input_shape is one frame",
    "sequence": "time series of features: (time, feature), e.g. task inputs or muscle signals",
    "spectrogram": "sound as a spectrogram: (time, frequency)",
}

#: Modalities whose batches carry a time axis right after the batch axis in every per-step key
#: (responses, targets, weights, behaviour); ``burn_in`` counts steps of that axis.
TIME_RESOLVED = frozenset({"video", "sequence", "spectrogram"})

#: Axis names neurofit's own code understands (a lab may use others for its own models).
AXES: dict[str, str] = {
    "channel": "colour or feature channels of an image or movie frame",
    "height": "image rows",
    "width": "image columns",
    "time": "time steps (frames, bins) of a trial",
    "feature": "entries of a feature vector",
    "frequency": "frequency bands of a spectrogram",
}

# input_axes inferred from (modality, number of axes) when a builder does not name them.
_DEFAULT_AXES: dict[tuple[str, int], tuple[str, ...]] = {
    ("image", 1): ("feature",),
    ("image", 2): ("height", "width"),
    ("image", 3): ("channel", "height", "width"),
    ("video", 3): ("channel", "height", "width"),
    ("video", 4): ("channel", "time", "height", "width"),
    ("sequence", 1): ("feature",),
    ("sequence", 2): ("time", "feature"),
    ("spectrogram", 1): ("frequency",),
    ("spectrogram", 2): ("time", "frequency"),
}

#: Where each typed fact of the previous release's ``extra`` went: ``{old extra key: field}``
#: (None: derived from another field, not stored).
LEGACY_EXTRA_KEYS: dict[str, str | None] = {
    "modality": "modality",
    "burn_in": "burn_in",
    "frame_rate": "sampling_rate",
    "n_behavior": None,  # len(behavior_names)
    "behavior_names": "behavior_names",
    "has_optogenetic": "has_optogenetic",
    "conditions": "conditions",
    "mean_response": "mean_response",
    "neurons": "units",
    "normalization": "normalization",
    "fingerprint": "fingerprint",
    "ceiling": "ceiling",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DataInfoError(ValueError):
    """A `DataInfo` field has a value outside its documented domain."""


class _BatchInputs(TypedDict):
    inputs: Tensor


class Batch(_BatchInputs, total=False):
    """One batch of a neurofit loader: a dict of tensors, ``inputs`` always present.

    B is the batch size, T the time steps of the batch's trials (time-resolved modalities only,
    see `TIME_RESOLVED`), N the neurons of the batch's session.

    ============== ===================================== =========================================
    key            image                                  video / sequence / spectrogram
    ============== ===================================== =========================================
    inputs         (B, *input_shape) float32              video (B, channel, T, height, width);
                                                          sequence (B, T, feature); spectrogram
                                                          (B, T, frequency)
    responses      (B, N) float32                         (B, T, N)
    targets        (B, *target_shape) float32             (B, T, *target_shape)
    weights        loss mask, the shape of ``targets``    (or of ``responses``), or their leading
                   axes ((B,) / (B, T)); 0 = ignored
    labels         (B,) int64 in [0, n_classes)           (B,) per trial, or (B, T) per step
    stimulus_id    (B,) int64; repeats of a stimulus (clip) share it
    trial_id       (B,) int64 (video)
    condition      (B,) int64 index into `DataInfo.conditions`
    start          (B,) int64 first frame of a window of a longer trial (video)
    behavior       —                                      (B, T, len(behavior_names)) float32
    pupil_center   —                                      (B, T, 2) float32
    optogenetic_signal —                                  (B, T) float32, 0 = laser off
    ============== ===================================== =========================================

    Keys in ``neurofit.pipelines.batches.LABEL_KEYS`` describe the trial; every other key (here
    behaviour, pupil and laser, or a lab's own) is passed to the model as a keyword argument.
    """

    responses: Tensor
    targets: Tensor
    weights: Tensor
    labels: Tensor
    stimulus_id: Tensor
    trial_id: Tensor
    condition: Tensor
    start: Tensor
    behavior: Tensor
    pupil_center: Tensor
    optogenetic_signal: Tensor


def jsonable(value: Any) -> Any:
    """numpy containers and tuples -> JSON-able Python values (dict keys as str)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _names(field_name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DataInfoError(f"DataInfo.{field_name} must be a list of names, got {value!r}")
    names = tuple(value)
    bad = [v for v in names if not isinstance(v, str) or not v]
    if bad:
        raise DataInfoError(f"DataInfo.{field_name} must hold non-empty strings, got {bad[0]!r}")
    if len(set(names)) != len(names):
        raise DataInfoError(f"DataInfo.{field_name} has repeated names: {list(names)}")
    return names


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _sizes(field_name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise DataInfoError(f"DataInfo.{field_name} must be a list of sizes, got {value!r}")
    if not all(_is_int(v) and v >= 1 for v in value):
        raise DataInfoError(f"DataInfo.{field_name} must hold integers >= 1, got {list(value)}")
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class DataInfo:
    """Shapes, units and facts of one dataset, typed (see the module docstring).

    Attributes:
        input_shape: sizes of one item of ``inputs`` without the batch axis, e.g.
            (channel, height, width). For a modality whose trials differ in length (videos,
            variable-length sounds) the time axis is left out: a video's input_shape is one frame.
        n_neurons: recorded neurons per session, in session order. Its keys are the sessions,
            i.e. the keys of ``DataBundle.loaders[tier]``; a dataset without neural responses
            lists its sessions with 0 neurons (e.g. ``{"all": 0}``).
        input_unit: unit of the stimulus values (e.g. "luminance, z-scored").
        response_unit: unit of the responses (e.g. "spike count per bin").
        provides: what batches carry besides ``inputs``: names from `PROVIDES` ("responses",
            "labels", "targets", "mask").
        modality: the kind of stimulus, one of `MODALITIES`.
        input_axes: one name per axis of ``input_shape`` (see `AXES`), e.g.
            ("channel", "height", "width") or ("time", "feature"). Left empty, it is inferred from
            the modality and the number of axes.
        sampling_rate: time steps (frames, bins) per second of time-resolved data (Hz); None if
            not time-resolved or unknown.
        burn_in: leading time steps of every sequence left out of losses and scores (a causal
            model has not yet seen enough history there). 0 for still images.
        units: per-session unit tables ``{session: {column: one value per neuron}}`` (e.g.
            ``unit_id``, ``depth_um``).
        conditions: names of the experimental conditions; a batch's ``condition`` is an index
            into it (e.g. ("control", "optogenetic")).
        has_optogenetic: whether batches carry an ``optogenetic_signal`` (laser) input.
        behavior_names: names of the columns of a batch's ``behavior`` input.
        n_classes: number of classes of ``labels`` (0 without labels).
        class_names: optional names of the classes (``n_classes`` of them).
        target_shape: shape of one trial's (or time step's) regression target (() without).
        target_names: optional names of a 1-D target's entries (e.g. ("x", "y", "z")).
        mean_response: ``{session: mean response per neuron}`` on the train tier, for readout
            bias initialisation.
        normalization: per-session statistics the loaders applied (``{session: {name: values}}``).
        ceiling: ``{score: value}`` that a perfect model (the true rates) reaches on the test
            tier; known only for simulated data.
        fingerprint: content hash of the stored data the loaders read ('' if not stored).
        extra: a lab's own JSON-serialisable facts. The typed fields above may not be repeated
            here (an earlier release kept them here; `from_dict` moves them).

    Raises:
        DataInfoError: (a ValueError) naming the field, the value and what is allowed.
    """

    input_shape: tuple[int, ...]
    n_neurons: dict[str, int]
    input_unit: str = ""
    response_unit: str = "spike count"
    provides: tuple[str, ...] = ("responses",)
    modality: str = "image"
    input_axes: tuple[str, ...] = ()
    sampling_rate: float | None = None
    burn_in: int = 0
    units: dict[str, dict[str, list]] = field(default_factory=dict)
    conditions: tuple[str, ...] = ()
    has_optogenetic: bool = False
    behavior_names: tuple[str, ...] = ()
    n_classes: int = 0
    class_names: tuple[str, ...] = ()
    target_shape: tuple[int, ...] = ()
    target_names: tuple[str, ...] = ()
    mean_response: dict[str, list[float]] = field(default_factory=dict)
    normalization: dict[str, dict[str, Any]] = field(default_factory=dict)
    ceiling: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        put("input_shape", _sizes("input_shape", self.input_shape))
        self._check_sessions(put)
        self._check_kinds(put)
        self._check_time(put)
        self._check_tables(put)
        self._check_tasks(put)
        self._check_extra(put)

    # ---- checks (each normalises its fields to plain, JSON-able values) ------------------------

    def _check_sessions(self, put) -> None:
        if not isinstance(self.n_neurons, dict):
            raise DataInfoError(
                f"DataInfo.n_neurons must be a dict {{session: n}}, got {self.n_neurons!r}"
            )
        for session, n in self.n_neurons.items():
            if not _is_int(n) or n < 0:
                raise DataInfoError(
                    f"DataInfo.n_neurons[{session!r}] must be an int >= 0, got {n!r}"
                )
        put("n_neurons", {str(k): int(v) for k, v in self.n_neurons.items()})
        for name in ("input_unit", "response_unit", "fingerprint"):
            if not isinstance(getattr(self, name), str):
                raise DataInfoError(
                    f"DataInfo.{name} must be a string, got {getattr(self, name)!r}"
                )

    def _check_kinds(self, put) -> None:
        provides = _names("provides", self.provides)
        unknown = [p for p in provides if p not in PROVIDES]
        if not provides or unknown:
            raise DataInfoError(
                f"DataInfo.provides={list(provides)}: each entry must be one of {list(PROVIDES)} "
                "(what batches carry besides 'inputs'), and at least one is needed"
            )
        if "mask" in provides and not {"responses", "targets"} & set(provides):
            raise DataInfoError(
                "DataInfo.provides has 'mask' but nothing it masks: add 'responses' or 'targets'"
            )
        put("provides", provides)
        responses = "responses" in provides
        if responses and (not self.n_neurons or min(self.n_neurons.values()) < 1):
            raise DataInfoError(
                f"DataInfo.n_neurons={self.n_neurons}: data that provide 'responses' need at least "
                "one session, each with >= 1 neuron"
            )
        if not responses and any(self.n_neurons.values()):
            raise DataInfoError(
                f"DataInfo.n_neurons={self.n_neurons} counts neurons, but "
                f"provides={list(provides)} has "
                "no 'responses'; add it, or list the sessions with 0 neurons"
            )
        if self.modality not in MODALITIES:
            raise DataInfoError(
                f"DataInfo.modality={self.modality!r}: use one of {list(MODALITIES)}"
            )
        axes = self.input_axes
        if not axes:
            axes = _DEFAULT_AXES.get((self.modality, len(self.input_shape)))
            if axes is None:
                raise DataInfoError(
                    f"DataInfo.input_axes: cannot infer names for a {self.modality!r} input of "
                    "shape "
                    f"{self.input_shape}; pass one name per axis, e.g. input_axes=('channel', "
                    "'height', 'width')"
                )
        axes = _names("input_axes", axes)
        if len(axes) != len(self.input_shape):
            raise DataInfoError(
                f"DataInfo.input_axes={list(axes)} names {len(axes)} axes but input_shape="
                f"{self.input_shape} has {len(self.input_shape)}; give one name per axis"
            )
        bad = [a for a in axes if not _NAME.match(a)]
        if bad:
            raise DataInfoError(
                f"DataInfo.input_axes: {bad[0]!r} is not a valid axis name (letters, digits, _)"
            )
        put("input_axes", axes)

    def _check_time(self, put) -> None:
        timed = self.modality in TIME_RESOLVED
        if "time" in self.input_axes and not timed:
            raise DataInfoError(
                f"DataInfo.input_axes={list(self.input_axes)} has a 'time' axis but modality "
                f"{self.modality!r} is not time-resolved; use one of {sorted(TIME_RESOLVED)}"
            )
        if (
            self.modality == "video"
            and "time" not in self.input_axes
            and self.input_axes != ("channel", "height", "width")
        ):
            raise DataInfoError(
                f"DataInfo.input_axes={list(self.input_axes)}: a video's input_shape is one frame "
                "('channel', 'height', 'width'), or the whole trial with a 'time' axis"
            )
        if not _is_int(self.burn_in) or self.burn_in < 0:
            raise DataInfoError(f"DataInfo.burn_in must be an int >= 0, got {self.burn_in!r}")
        if self.burn_in and not timed:
            raise DataInfoError(
                f"DataInfo.burn_in={self.burn_in}, but modality {self.modality!r} has no time axis "
                "to "
                "leave steps out of; use 0"
            )
        put("burn_in", int(self.burn_in))
        rate = self.sampling_rate
        if rate is not None:
            if (
                isinstance(rate, bool)
                or not isinstance(rate, (int, float, np.number))
                or not 0 < rate < math.inf
            ):
                raise DataInfoError(
                    f"DataInfo.sampling_rate must be a positive number of Hz or None, got {rate!r}"
                )
            put("sampling_rate", float(rate))

    def _check_tables(self, put) -> None:
        for name in ("units", "mean_response", "normalization", "ceiling"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise DataInfoError(f"DataInfo.{name} must be a dict, got {type(value).__name__}")
            put(name, jsonable(value))
        for name in ("units", "mean_response", "normalization"):
            unknown = sorted(set(getattr(self, name)) - set(self.n_neurons))
            if unknown:
                raise DataInfoError(
                    f"DataInfo.{name} has sessions {unknown} that n_neurons does not list "
                    f"({list(self.n_neurons)})"
                )
        for session, columns in self.units.items():
            if not isinstance(columns, dict):
                raise DataInfoError(
                    f"DataInfo.units[{session!r}] must be a dict {{column: values}}"
                )
            for column, values in columns.items():
                if not isinstance(values, list) or len(values) != self.n_neurons[session]:
                    raise DataInfoError(
                        f"DataInfo.units[{session!r}][{column!r}] must list one value per neuron "
                        f"({self.n_neurons[session]}), got {values!r:.80}"
                    )
        for session, values in self.mean_response.items():
            if not isinstance(values, list) or len(values) != self.n_neurons[session]:
                raise DataInfoError(
                    f"DataInfo.mean_response[{session!r}] must list one value per neuron "
                    f"({self.n_neurons[session]}), got {values!r:.80}"
                )
        for score, value in self.ceiling.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataInfoError(
                    f"DataInfo.ceiling[{score!r}] must be a number, got {value!r:.80}"
                )
        put("ceiling", {k: float(v) for k, v in self.ceiling.items()})
        put("conditions", _names("conditions", self.conditions))
        put("behavior_names", _names("behavior_names", self.behavior_names))
        if not isinstance(self.has_optogenetic, bool):
            raise DataInfoError(
                f"DataInfo.has_optogenetic must be True or False, got {self.has_optogenetic!r}"
            )
        if self.has_optogenetic and not self.conditions:
            raise DataInfoError(
                "DataInfo.has_optogenetic is True but conditions is empty; name the conditions a "
                "batch's 'condition' indexes, e.g. ('control', 'optogenetic')"
            )

    def _check_tasks(self, put) -> None:
        labels = "labels" in self.provides
        if not _is_int(self.n_classes) or self.n_classes < 0:
            raise DataInfoError(f"DataInfo.n_classes must be an int >= 0, got {self.n_classes!r}")
        if labels != (self.n_classes >= 2) or (not labels and self.n_classes):
            raise DataInfoError(
                f"DataInfo.n_classes={self.n_classes} with provides={list(self.provides)}: data "
                "that "
                "provide 'labels' need n_classes >= 2, other data n_classes=0"
            )
        put("n_classes", int(self.n_classes))
        classes = _names("class_names", self.class_names)
        if classes and len(classes) != self.n_classes:
            raise DataInfoError(
                f"DataInfo.class_names has {len(classes)} names for n_classes={self.n_classes}"
            )
        put("class_names", classes)
        shape = _sizes("target_shape", self.target_shape)
        if ("targets" in self.provides) != bool(shape):
            raise DataInfoError(
                f"DataInfo.target_shape={shape} with provides={list(self.provides)}: data that "
                "provide "
                "'targets' need the shape of one target, e.g. target_shape=(3,); other data ()"
            )
        put("target_shape", shape)
        names = _names("target_names", self.target_names)
        if names and (len(shape) != 1 or len(names) != shape[0]):
            raise DataInfoError(
                f"DataInfo.target_names names {len(names)} entries; it needs a 1-D target_shape of "
                "that "
                f"length, got {shape}"
            )
        put("target_names", names)

    def _check_extra(self, put) -> None:
        if not isinstance(self.extra, dict):
            raise DataInfoError(f"DataInfo.extra must be a dict, got {type(self.extra).__name__}")
        typed = sorted(
            (set(LEGACY_EXTRA_KEYS) | {f.name for f in dataclasses.fields(self)}) & set(self.extra)
        )
        if typed:
            moved = {k: LEGACY_EXTRA_KEYS.get(k, k) for k in typed}
            raise DataInfoError(
                f"DataInfo.extra has keys {typed}, which are typed fields now: pass "
                + ", ".join(
                    f"{new}=..." if new else f"behavior_names=... (instead of {old})"
                    for old, new in moved.items()
                )
                + " to DataInfo instead"
            )
        put("extra", jsonable(self.extra))

    # ---- derived facts -----------------------------------------------------------------------

    @property
    def sessions(self) -> list[str]:
        """Session names, in order (the keys of ``DataBundle.loaders[tier]``)."""
        return list(self.n_neurons)

    @property
    def time_resolved(self) -> bool:
        """Whether batches carry a time axis (see `TIME_RESOLVED`)."""
        return self.modality in TIME_RESOLVED

    @property
    def n_behavior(self) -> int:
        """Columns of a batch's ``behavior`` input."""
        return len(self.behavior_names)

    @property
    def batch_input_axes(self) -> tuple[str, ...]:
        """Axis names of a batch's ``inputs``: "batch", then input_axes with "time" where it goes.

        E.g. ("batch", "channel", "time", "height", "width") for videos.
        """
        axes = self.input_axes
        if self.time_resolved and "time" not in axes:
            at = 1 if self.modality == "video" else 0  # a video's time axis follows its channels
            axes = (*axes[:at], "time", *axes[at:])
        return ("batch", *axes)

    def axis_size(self, name: str) -> int:
        """Size of the input axis called ``name``.

        Raises:
            DataInfoError: the input has no such axis (e.g. the time axis of trials of varying
                length).
        """
        if name not in self.input_axes:
            raise DataInfoError(
                f"the input has no {name!r} axis of fixed size; its axes are "
                f"{list(self.input_axes)}"
            )
        return self.input_shape[self.input_axes.index(name)]

    # ---- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values (tuples as lists)."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        """Reads `to_dict` output of this or an earlier release (see `LEGACY_EXTRA_KEYS`).

        Raises:
            DataInfoError: the dict has fields this release does not know (it was written by a
                newer neurofit) or a value outside its domain.
        """
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataInfoError(
                f"data_info has fields {unknown} that this neurofit does not know; it was written "
                "by a "
                "newer release: upgrade neurofit to read it"
            )
        if "provides" not in d:  # the previous release's layout: typed facts under extra
            d = _from_legacy(d)
        for name in (
            "input_shape",
            "input_axes",
            "provides",
            "conditions",
            "behavior_names",
            "class_names",
            "target_shape",
            "target_names",
        ):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


def _from_legacy(d: dict[str, Any]) -> dict[str, Any]:
    """The previous release's dict with its known ``extra`` keys moved to the typed fields."""
    extra = dict(d.get("extra") or {})
    n_behavior = int(extra.get("n_behavior", 0) or 0)
    out = {k: v for k, v in d.items() if k != "extra"}
    for old, new in LEGACY_EXTRA_KEYS.items():
        if old not in extra:
            continue
        value = extra.pop(old)
        if new == "ceiling":
            # The dLGN ceiling held per-neuron lists next to its scalar: those stay in extra.
            out["ceiling"] = {k: v for k, v in value.items() if isinstance(v, (int, float))}
            for k, v in value.items():
                if k not in out["ceiling"]:
                    extra.setdefault(f"ceiling_{k}", v)
        elif new is not None:
            out[new] = value
    if n_behavior and not out.get("behavior_names"):
        out["behavior_names"] = [f"behavior_{i}" for i in range(n_behavior)]
    out["extra"] = extra
    return out


@dataclass
class DataBundle:
    """What a dataset builder returns.

    Attributes:
        loaders: ``{tier: {session: DataLoader}}`` with tiers from ``TIERS``; every batch is a
            `Batch` laid out as ``info`` describes.
        info: the `DataInfo` of these loaders.
        artefacts: ``{name: value}`` facts about the data too large or too detailed for
            ``info``: numpy arrays or JSON-able dicts, typically the ground truth of simulated
            data (true receptive fields, kernels, per-neuron ceilings). They must depend only on
            the dataset's config, not on the seed: they are stored once per `Dataset` row
            (``neurofit.schemas.DatasetArtefact``), not with every trained model. Names: letters,
            digits and ``_ . -``, up to 64 characters (see `neurofit.datasets.artefacts`).
    """

    loaders: dict[str, dict[str, DataLoader]]
    info: DataInfo
    artefacts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .artefacts import check_artefact

        for name, value in self.artefacts.items():
            check_artefact(name, value)

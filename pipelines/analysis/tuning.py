"""Single-unit tuning to kinematic features, after DeepDraw (metrics.md, section 4).

Pure numpy: arrays in, arrays out, float64. Every unit of a layer is fitted at once: one
batched least-squares solve per feature model, never a Python loop over units.

DeepDraw (Sandbrink, Mamidanna et al., eLife 2023; code ``amathislab/DeepDraw``,
``single_cell/rowwise_neuron_curves.py``) fits each unit of a layer with ordinary least
squares (with intercept) to kinematic features of the input trajectories, scores each
model by its R² on held-out trajectories, reads each unit's preferred direction off the
direction model and measures how uniformly the preferred directions of the directionally
tuned units cover the circle. This module reproduces those analyses.

Conventions shared by every function:

* A kinematic variable is a 2-D Cartesian vector per sample: arrays have a trailing axis
  of length 2 holding ``(x, y)``. Time-resolved arrays are ``(n_trajectories, n_time, 2)``;
  time is the second-to-last axis.
* Angles are in radians in ``(-pi, pi]``, measured counter-clockwise from the +x axis
  (DeepDraw's ``angle_xaxis``). The angle of a zero vector is undefined: NaN.
* Activations are ``(n_trajectories, n_time, n_units)``, or ``(n_samples, n_units)``
  together with a trajectory id per sample. Every unit (in DeepDraw: every channel x
  spatial row of a layer) is one column. The features must be sampled at the units' time
  points (DeepDraw aligns strided layers to input time with ``get_centers``; do that
  before calling :func:`fit_tuning`).
* Inputs must be finite; a ``ValueError`` naming the offending shapes is raised otherwise.

Feature models (``design_matrix``; ``v = (v_x, v_y)``, polar ``(r, θ)``; every model has
an intercept ``c``):

==================  ==========================================  ============================
model               fitted function                             rows dropped
==================  ==========================================  ============================
``cartesian``       ``a v_x + b v_y + c``                       none
``direction``       ``a cos θ + b sin θ + c``                   zero vectors (θ undefined)
``speed``           ``a r + c`` (magnitude; for acceleration    none
                    the acceleration magnitude)
``direction_speed`` ``a r cos θ + b r sin θ + c``               zero vectors
``position_polar``  ``direction_speed`` of ``v - v(t=0)``, the  samples at the start point
                    vector from the trajectory's start point
==================  ==========================================  ============================

References:
    Sandbrink, K. J., Mamidanna, P., Michaelis, C., Bethge, M., Mathis, M. W. and
    Mathis, A. (2023). Contrasting action and posture coding with hierarchical deep
    neural network models of proprioception. eLife 12: e81499.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = [
    "MODEL_FAMILIES",
    "DEFAULT_FAMILIES",
    "TuningResult",
    "velocity",
    "acceleration",
    "polar",
    "design_matrix",
    "default_models",
    "fit_tuning",
    "preferred_direction",
    "directionally_tuned",
    "direction_uniformity",
    "tuning_summary",
    "label_tuning",
    "paired_test",
    "deepdraw_kept_steps",
]

#: Every feature model :func:`design_matrix` and :func:`fit_tuning` know.
MODEL_FAMILIES: tuple[str, ...] = (
    "cartesian",
    "direction",
    "speed",
    "direction_speed",
    "position_polar",
)

#: DeepDraw's four models per feature set, in DeepDraw's order (model index 0..3).
DEFAULT_FAMILIES: tuple[str, ...] = ("cartesian", "direction", "speed", "direction_speed")

# A unit whose sum of squared deviations over a sample set is at most this fraction of
# its sum of squares (about the provisional centre) is constant on that set: the exact
# zero of r2_score's denominator, up to rounding (see fit_tuning).
_CONSTANT_RTOL = 1e-10
# Units whose squared sum exceeds their spread this many times are summed about a centre.
_CONDITION_LIMIT = 1e4
# Target size of the blocks of samples streamed through the solver, in float64 elements.
_BLOCK_ELEMENTS = 1 << 16


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------


def _as_float(values: ArrayLike, name: str) -> np.ndarray:
    """Converts ``values`` to a finite float64 array."""
    return numeric(values, name)


def _as_vectors(values: ArrayLike, name: str) -> np.ndarray:
    """A finite float64 array whose last axis has length 2 (x, y)."""
    array = _as_float(values, name)
    if array.ndim < 1 or array.shape[-1] != 2:
        raise ValueError(
            f"{name} must have a trailing axis of length 2 holding (x, y), got shape {array.shape}"
        )
    return array


def _check_family(model: str) -> str:
    if model not in MODEL_FAMILIES:
        raise ValueError(f"unknown feature model {model!r}; choose from {list(MODEL_FAMILIES)}")
    return model


# ----------------------------------------------------------------------------------------
# kinematics
# ----------------------------------------------------------------------------------------


def velocity(position: ArrayLike, dt: float = 1.0, *, axis: int = -2) -> np.ndarray:
    """Velocity by finite differences along time (DeepDraw's ``np.gradient(ee)[2]``).

    :func:`numpy.gradient` along ``axis``: second-order central differences
    ``(p[t+1] - p[t-1]) / (2 dt)`` inside, first-order one-sided differences at the two
    ends. DeepDraw uses ``dt = 1`` (per time step).

    Args:
        position: Positions, shape ``(..., n_time, 2)`` (e.g. ``(n_trajectories, n_time, 2)``)
            with time on ``axis``; at least 2 time points. Any length unit.
        dt: Time step, > 0, in the time unit of the result.
        axis: The time axis (default: second-to-last).

    Returns:
        Velocity, same shape as ``position``, float64, in position units per ``dt`` unit.

    Raises:
        ValueError: On non-finite values, fewer than 2 time points, or ``dt <= 0``.

    Examples:
        >>> velocity(np.array([[0.0, 0.0], [1.0, 2.0], [4.0, 4.0]]))
        array([[1., 2.],
               [2., 2.],
               [3., 2.]])
    """
    position = _as_float(position, "position")
    if position.ndim == 0:
        raise ValueError("position must have a time axis, got a scalar")
    if not (isinstance(dt, (int, float, np.integer, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    try:
        n_time = position.shape[axis]
    except IndexError:
        raise ValueError(f"axis {axis} is out of range for shape {position.shape}") from None
    if n_time < 2:
        raise ValueError(
            f"at least 2 time points are needed along axis {axis}, got shape {position.shape}"
        )
    return np.gradient(position, float(dt), axis=axis)


def acceleration(position: ArrayLike, dt: float = 1.0, *, axis: int = -2) -> np.ndarray:
    """Acceleration: the :func:`velocity` of the velocity (DeepDraw: ``np.gradient(vels)[2]``).

    Args:
        position: Positions (not velocities), shape ``(..., n_time, 2)``, time on ``axis``.
        dt: Time step, > 0.
        axis: The time axis (default: second-to-last).

    Returns:
        Acceleration, same shape as ``position``, float64, position units per ``dt``².

    Raises:
        ValueError: As :func:`velocity`.

    Examples:
        >>> acceleration(np.array([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [9.0, 0.0]]))[:, 0]
        array([1. , 1.5, 1.5, 1. ])
    """
    return velocity(velocity(position, dt, axis=axis), dt, axis=axis)


def polar(vectors: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Polar coordinates ``(r, θ)`` of 2-D vectors (DeepDraw's ``get_polar``).

    ``r = |v|`` and ``θ = atan2(v_y, v_x)`` in ``(-pi, pi]`` (``-pi`` is reported as ``pi``,
    as DeepDraw's ``angle_xaxis`` does). Policy: the angle of a zero vector is undefined and
    is NaN (``r`` is 0); :func:`fit_tuning` drops such samples from the models that use θ.

    Args:
        vectors: Shape ``(..., 2)`` holding ``(x, y)``.

    Returns:
        ``(r, theta)``, each of shape ``vectors.shape[:-1]``, float64; ``r`` in the units of
        ``vectors``, ``theta`` in radians.

    Raises:
        ValueError: If the last axis does not have length 2, or on non-finite values.

    Examples:
        >>> r, theta = polar(np.array([[3.0, 4.0], [-1.0, 0.0], [0.0, 0.0]]))
        >>> r, theta / np.pi
        (array([5., 1., 0.]), array([0.29516724, 1.        ,        nan]))
    """
    return _polar_unchecked(_as_vectors(vectors, "vectors"))


def design_matrix(vectors: ArrayLike, model: str, *, origin: ArrayLike | None = None) -> np.ndarray:
    """The regressors of one feature model, with the intercept column last.

    Columns (see the module docstring): ``cartesian`` ``[v_x, v_y, 1]``; ``direction``
    ``[cos θ, sin θ, 1]``; ``speed`` ``[r, 1]``; ``direction_speed`` ``[r cos θ, r sin θ, 1]``;
    ``position_polar`` ``[r' cos θ', r' sin θ', 1]`` with ``(r', θ')`` the polar coordinates
    of ``vectors - origin``. These are DeepDraw's models 0-3 of ``tune_row_vel``, except
    that DeepDraw's model 0 is linear in whatever columns the feature set holds (``(r, θ)``
    for its velocity and acceleration sets, ``(x, y)`` for position); here ``cartesian`` is
    always ``(x, y)``. ``position_polar`` is DeepDraw's ``eepolar`` feature set scored with
    model 3, the column its comparisons report as polar-position tuning.

    Note that ``direction_speed`` equals ``cartesian`` (``r cos θ = v_x``) except that it
    drops zero vectors.

    Args:
        vectors: Cartesian 2-D vectors, shape ``(..., 2)``.
        model: One of :data:`MODEL_FAMILIES`.
        origin: ``position_polar`` only: the start point(s), broadcastable to
            ``vectors``. Default: the first time point, ``vectors[..., :1, :]`` (time on the
            second-to-last axis).

    Returns:
        Shape ``(..., n_columns)`` float64 with ``n_columns`` = 2 for ``speed``, else 3.
        Rows where θ is undefined (a zero vector, or the start point for
        ``position_polar``) are NaN in every column but the intercept.

    Raises:
        ValueError: On an unknown model, a trailing axis not of length 2, non-finite
            values, an ``origin`` given for another model, or a ``position_polar`` call
            without a time axis and without ``origin``.

    Examples:
        >>> design_matrix(np.array([[2.0, 0.0], [0.0, 0.0]]), "direction")
        array([[ 1.,  0.,  1.],
               [nan, nan,  1.]])
    """
    _check_family(model)
    vectors = _as_vectors(vectors, "vectors")
    if model == "position_polar":
        if origin is None:
            if vectors.ndim < 2:
                raise ValueError(
                    "position_polar needs a time axis (second-to-last) or an origin, got shape "
                    f"{vectors.shape}"
                )
            origin_array = vectors[..., :1, :]
        else:
            origin_array = _as_vectors(origin, "origin")
        try:
            vectors = vectors - origin_array
        except ValueError:
            raise ValueError(
                f"origin of shape {origin_array.shape} does not broadcast to vectors of shape "
                f"{vectors.shape}"
            ) from None
    elif origin is not None:
        raise ValueError(f"origin is only used by the position_polar model, not {model!r}")

    regressors = _regressors(vectors, model, _polar_unchecked(vectors))
    return np.concatenate([regressors, np.ones((*vectors.shape[:-1], 1))], axis=-1)


def _polar_unchecked(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`polar` without input validation."""
    x, y = vectors[..., 0], vectors[..., 1]
    r = np.hypot(x, y)
    theta = np.arctan2(y, x)
    theta = np.where(theta == -np.pi, np.pi, theta)
    theta = np.where(r == 0, np.nan, theta)
    return r, theta


def _regressors(vectors: np.ndarray, model: str, polar_coordinates) -> np.ndarray:
    """The non-intercept columns of ``model`` (see :func:`design_matrix`), shape (..., q).

    ``vectors`` are already relative to the origin for ``position_polar``;
    ``polar_coordinates`` is ``(r, theta)`` of ``vectors``.
    """
    if model == "cartesian":
        return vectors
    r, theta = polar_coordinates
    if model == "direction":
        return np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    if model == "speed":
        return r[..., None]
    # direction_speed and position_polar (the latter on the displacement from the start)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


def default_models(feature_names: Sequence[str]) -> list[str]:
    """DeepDraw's model set for the given features, as ``"feature/model"`` names.

    Every feature gets :data:`DEFAULT_FAMILIES`; a feature named ``"position"`` also gets
    ``"position_polar"``.

    Examples:
        >>> default_models(["velocity", "position"])[-2:]
        ['position/direction_speed', 'position/position_polar']
    """
    names = []
    for feature in feature_names:
        names += [f"{feature}/{family}" for family in DEFAULT_FAMILIES]
        if feature == "position":
            names.append(f"{feature}/position_polar")
    return names


# ----------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TuningResult:
    """Tuning fits of every unit of one layer (output of :func:`fit_tuning`).

    Attributes:
        model_names: ``"feature/model"`` names, one per column, e.g. ``"velocity/direction"``.
        r2_test: Held-out R² per unit and model, shape (n_units, n_models), dimensionless,
            at most 1; NaN where a model had no usable samples.
        r2_train: R² on the training samples, same shape.
        coefficients: OLS coefficients per unit and model, shape (n_units, n_models, 3):
            entry ``k`` multiplies column ``k`` of :func:`design_matrix`, zero-padded to 3 as
            DeepDraw stores them, i.e. ``(a, b, c)`` for the two-regressor models and
            ``(a, c, 0)`` for ``speed``. In activation units per feature unit (``c`` in
            activation units).
        n_train: Training samples each model used (after dropping undefined rows), (n_models,).
        n_test: Test samples each model used, (n_models,).
        train_trajectories: Sorted trajectory ids of the training split.
        test_trajectories: Sorted trajectory ids of the test split.
    """

    model_names: list[str]
    r2_test: np.ndarray
    r2_train: np.ndarray
    coefficients: np.ndarray
    n_train: np.ndarray
    n_test: np.ndarray
    train_trajectories: np.ndarray
    test_trajectories: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.model_names)})

    @property
    def n_units(self) -> int:
        return int(self.r2_test.shape[0])

    def index(self, model_name: str) -> int:
        """Column of ``model_name`` (``"feature/model"``) in the result arrays.

        Raises:
            KeyError: If the model was not fitted; the message lists the fitted ones.
        """
        try:
            return self._index[model_name]
        except KeyError:
            raise KeyError(
                f"model {model_name!r} was not fitted; fitted models: {self.model_names}"
            ) from None


# ----------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------


def _samples(
    activations: ArrayLike, features: Mapping[str, ArrayLike], trajectory: ArrayLike | None
) -> tuple[
    np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Flattens the inputs to samples.

    Returns ``(Y, features, ids, traj, t, length, first)``: the activations in their own
    dtype, never copied (3-D input stays ``(n_trajectories, n_time, n_units)``, whatever its
    memory layout; 2-D input is ``(n_samples, n_units)``); features name -> (n_samples, 2)
    float64; sorted unique trajectory ids; per sample its trajectory's index into ``ids``,
    its time index within the trajectory and that trajectory's length; per trajectory the
    sample index of its first time point.
    """
    act = np.asarray(activations)
    if not (np.issubdtype(act.dtype, np.number) or act.dtype == np.bool_) or np.iscomplexobj(act):
        raise TypeError(f"activations must be real numbers, got dtype {act.dtype}")
    if act.dtype == np.bool_:
        act = act.astype(np.float64)
    if not isinstance(features, Mapping) or len(features) == 0:
        raise ValueError("features must be a non-empty dict name -> (..., 2) array")

    if act.ndim == 3:
        if trajectory is not None:
            raise ValueError(
                "trajectory ids are only for 2-D activations (n_samples, n_units); "
                f"activations of shape {act.shape} already have a trajectory axis"
            )
        n_traj, n_time, n_units = act.shape
        lead = (n_traj, n_time)
        Y = act
        ids = np.arange(n_traj)
        traj = np.repeat(ids, n_time)
        t = np.tile(np.arange(n_time), n_traj)
        length = np.full(traj.shape, n_time)
        first = ids * n_time
    elif act.ndim == 2:
        if trajectory is None:
            raise ValueError(
                "2-D activations (n_samples, n_units) need trajectory ids (n_samples,) to split "
                f"by trajectory; got activations of shape {act.shape} and no trajectory"
            )
        Y = act
        lead = (act.shape[0],)
        ids_in = np.asarray(trajectory)
        if ids_in.shape != (act.shape[0],):
            raise ValueError(
                f"trajectory must have shape (n_samples,) = ({act.shape[0]},), got {ids_in.shape}"
            )
        ids, traj = np.unique(ids_in, return_inverse=True)
        traj = traj.reshape(-1)
        counts = np.bincount(traj, minlength=ids.shape[0])
        order = np.argsort(traj, kind="stable")
        starts = np.cumsum(counts) - counts
        t = np.empty(traj.shape, dtype=np.int64)
        t[order] = np.arange(traj.shape[0]) - starts[traj[order]]
        length = counts[traj]
        first = order[starts]
    else:
        raise ValueError(
            "activations must be (n_trajectories, n_time, n_units) or (n_samples, n_units), "
            f"got shape {act.shape}"
        )
    if Y.size == 0:
        raise ValueError(f"activations have no samples or no units (shape {act.shape})")

    flat = {}
    for name, values in features.items():
        if not isinstance(name, str) or "/" in name or not name:
            raise ValueError(f"feature names must be non-empty strings without '/', got {name!r}")
        vectors = _as_vectors(values, f"features[{name!r}]")
        if vectors.shape != (*lead, 2):
            raise ValueError(
                f"features[{name!r}] must have shape {(*lead, 2)} to match activations of shape "
                f"{act.shape}, got {vectors.shape}"
            )
        flat[name] = np.moveaxis(vectors, -1, 0).reshape(2, -1)  # (x, y) rows, as the design has them
    return Y, flat, ids, traj, t, length, first


@lru_cache(maxsize=32)
def _permutation(n: int, seed: int) -> np.ndarray:
    """``np.random.RandomState(seed).permutation(n)``, read-only: every layer tuned on one
    stimulus set splits it the same way, and seeding the legacy generator costs a millisecond."""
    permutation = np.random.RandomState(seed).permutation(n)
    permutation.flags.writeable = False
    return permutation


def _split(
    n_traj: int,
    ids: np.ndarray,
    train_trajectories: ArrayLike | None,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Boolean (n_traj,): which trajectories (in the order of ``ids``) are for training."""
    if train_trajectories is None:
        if not (isinstance(test_fraction, (float, int, np.floating)) and 0 < test_fraction < 1):
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        # sklearn's ShuffleSplit / train_test_split(test_size, random_state=seed), which
        # DeepDraw calls: n_test = ceil(test_fraction * n), the first n_test of a
        # RandomState(seed) permutation are the test set.
        n_test = math.ceil(test_fraction * n_traj)
        if not 1 <= n_test <= n_traj - 1:
            raise ValueError(
                f"test_fraction={test_fraction} of {n_traj} trajectories leaves {n_test} for "
                "testing; both splits need at least one trajectory"
            )
        permutation = _permutation(n_traj, seed)
        is_train = np.ones(n_traj, dtype=bool)
        is_train[permutation[:n_test]] = False
        return is_train

    chosen = np.asarray(train_trajectories)
    if chosen.dtype == np.bool_:
        if chosen.shape != (n_traj,):
            raise ValueError(
                f"a boolean train_trajectories must have shape ({n_traj},) (one per trajectory, "
                f"in sorted id order), got {chosen.shape}"
            )
        is_train = chosen.copy()
    else:
        chosen = chosen.reshape(-1)
        known = np.isin(chosen, ids)
        if not np.all(known):
            raise ValueError(
                f"train_trajectories holds unknown trajectory ids {chosen[~known][:10]}"
            )
        is_train = np.isin(ids, chosen)
    if is_train.all() or not is_train.any():
        raise ValueError(
            f"train_trajectories selects {int(is_train.sum())} of {n_traj} trajectories; both "
            "the training and the test split need at least one"
        )
    return is_train


def _parse_models(
    models: Sequence[str] | None, feature_names: list[str]
) -> list[tuple[str, str, str]]:
    if isinstance(models, str):
        raise TypeError("models must be a sequence of 'feature/model' names, not one string")
    names = default_models(feature_names) if models is None else list(models)
    if not names:
        raise ValueError("models is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"models contains duplicates: {names}")
    parsed = []
    for name in names:
        feature, _, family = str(name).partition("/")
        if feature not in feature_names:
            raise ValueError(
                f"model {name!r} refers to feature {feature!r}, but the features are "
                f"{feature_names}"
            )
        _check_family(family)
        parsed.append((name, feature, family))
    return parsed


# The regressors of each family, by name (see _model_columns): cartesian and direction_speed
# share (v_x, v_y), because r cos θ = v_x, and differ only in the samples they keep.
_FAMILY_COLUMNS = {
    "cartesian": ("x", "y"),
    "direction": ("cos", "sin"),
    "speed": ("r",),
    "direction_speed": ("x", "y"),
    "position_polar": ("x", "y"),  # of the displacement from the start point
}


# Families whose regressors need θ: they drop the samples where it is undefined.
_THETA_FAMILIES = ("direction", "direction_speed", "position_polar")


@dataclass(frozen=True, eq=False)
class _Columns:
    """The models' design on the used samples (training samples first).

    ``design`` (n_columns + n_groups, n_used): the distinct regressors, each minus its
    training mean ``shift``, then one 0/1 indicator row per mask group (group 0: every
    sample; each other group: the samples where one feature's θ is defined). Per model, its
    regressors' rows (``model_columns``) and its group (``model_group``).
    """

    design: np.ndarray
    shift: np.ndarray
    n_columns: int
    model_columns: list[np.ndarray]
    model_group: list[int]


def _norm(x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(n,) length of the vectors (x, y): ``sqrt(x² + y²)``, 6x faster than `np.hypot`, which
    guards against overflow, needed only for values beyond 1e150."""
    squared = np.multiply(x, x, out=out)
    squared += y * y
    if squared.max(initial=0.0) > 1e300:
        return np.hypot(x, y, out=squared)
    return np.sqrt(squared, out=squared)


def _model_columns(parsed, feats, used: np.ndarray, origin: np.ndarray, n_train: int) -> _Columns:
    """The distinct regressors of the models and their mask groups, on the ``used`` samples.

    Every regressor of a θ-based model is zero (before its shift) where θ is undefined: a
    zero vector has ``v_x = v_y = r = 0``, and cos θ, sin θ are set to 0 there. So a model's
    statistics over its own samples follow from statistics over all samples and its group's
    indicator (see :func:`_restricted`), and models share one column per regressor.
    ``origin`` holds the start-point sample of every used sample (``position_polar``).
    """
    index: dict[tuple, int] = {}  # (feature, relative, column name) -> design row
    groups: dict[tuple, int] = {}  # (feature, relative) -> mask group - 1
    model_columns, model_group = [], []
    for _, feature, family in parsed:
        key = (feature, family == "position_polar")
        model_columns.append(np.array([index.setdefault((*key, name), len(index))
                                       for name in _FAMILY_COLUMNS[family]]))
        model_group.append(1 + groups.setdefault(key, len(groups)) if family in _THETA_FAMILIES else 0)
    n_columns = len(index)
    design = np.empty((n_columns + 1 + len(groups), used.size))
    design[n_columns] = 1.0  # group 0: every sample
    masks = [np.ones(used.size, dtype=bool)]  # distinct groups; mask group -> distinct one
    same_as = {0: 0}
    for key in dict.fromkeys(entry[:2] for entry in index):
        feature, relative = key
        rows = {name: row for (*owner, name), row in index.items() if tuple(owner) == key}
        # x and y go straight into the design's rows where models use them.
        x, y = (design[rows[name]] if name in rows else np.empty(used.size) for name in ("x", "y"))
        for component, values in enumerate((x, y)):
            np.take(feats[feature][component], used, out=values)  # 3x faster than fancy indexing
            if relative:
                values -= np.take(feats[feature][component], origin)
        r = _norm(x, y, out=design[rows["r"]] if "r" in rows else None)
        defined = r > 0
        if "cos" in rows or "sin" in rows:
            inverse = np.zeros_like(r)
            np.divide(1.0, r, out=inverse, where=defined)
            for name, values in (("cos", x), ("sin", y)):
                if name in rows:
                    np.multiply(values, inverse, out=design[rows[name]])
        if key in groups:  # a mask equal to an earlier one (e.g. no zero position) is that group
            found = next((g for g, mask in enumerate(masks) if np.array_equal(mask, defined)), None)
            if found is None:
                found = len(masks)
                design[n_columns + found] = defined
                masks.append(defined)
            same_as[1 + groups[key]] = found
    shift = design[:n_columns, :n_train].mean(axis=1)
    design[:n_columns] -= shift[:, None]
    design = design[: n_columns + len(masks)]
    model_group = [same_as[group] for group in model_group]
    return _Columns(design, shift, n_columns, model_columns, model_group)


def _restricted(gram: np.ndarray, cross: np.ndarray, squares: np.ndarray, columns: _Columns, k: int):
    """Sufficient statistics of model ``k`` over its own samples, in one split.

    From the statistics of all the split's samples: ``gram`` = design @ design.T, ``cross``
    = design @ (Y - mu), ``squares`` = indicators @ (Y - mu)². Outside its group a
    regressor's shifted value is ``-shift``, which the sums over the group correct for.

    Returns ``(n, s_z, zz, zy, s_y, s_yy)``: sample count; per regressor its sum (q,), the
    cross-products (q, q) and with every unit (q, n_units); per unit the sum and the sum of
    squares of ``Y - mu`` (n_units,).
    """
    p, group = columns.n_columns, columns.model_group[k]
    idx, row = columns.model_columns[k], columns.n_columns + group
    n = gram[row, row]
    zz, zy = gram[np.ix_(idx, idx)], cross[idx]
    if group:
        shift = columns.shift[idx]
        zz = zz - (gram[p, p] - n) * np.outer(shift, shift)
        zy = zy + np.outer(shift, cross[p] - cross[row])
    return n, gram[idx, row], zz, zy, cross[row], squares[group]


def _block_step(Y: np.ndarray, window: tuple[int, int]) -> int:
    """Trajectories (3-D activations) or samples (2-D) per block of `_blocks`."""
    per_item = Y.shape[-1] * ((window[1] - window[0]) if Y.ndim == 3 else 1)
    return max(1, _BLOCK_ELEMENTS // per_item)


def _provisional_centre(Y: np.ndarray, rows: np.ndarray, trajectories: np.ndarray, window) -> np.ndarray:
    """(n_units,) mean of the first block of samples: the fits are shift-equivariant, so any
    centre near the data's only keeps the sums of squares well scaled."""
    first = slice(0, _block_step(Y, window))
    if Y.ndim == 3:
        values = Y[trajectories[first], window[0]:window[1]].reshape(-1, Y.shape[-1])
    else:
        values = Y[rows[first]]
    return values.mean(axis=0, dtype=np.float64)


def _blocks(Y: np.ndarray, rows: np.ndarray, trajectories: np.ndarray, window: tuple[int, int],
            centre: np.ndarray | None):
    """One split's samples as float64 blocks (n_block, n_units), in order, minus ``centre``
    (per unit) if one is given.

    3-D activations are read whole trajectories (time ``window``) at a time, straight from
    their memory (any layout) into the block; 2-D ones by ``rows``. Blocks hold about
    ``_BLOCK_ELEMENTS`` values, so that what is done with them stays in cache, and reuse one
    buffer: use each before asking for the next. The cast comes first and the centring after
    it, in float64: a float32 - float64 ufunc casts through small buffers, 3x slower.
    """
    n_units = Y.shape[-1]
    step = _block_step(Y, window)
    if Y.ndim == 3 and abs(Y.strides[1]) < abs(Y.strides[2]):
        yield from _blocks_time_contiguous(Y, trajectories, window, centre, step)
        return
    if Y.ndim == 3:
        view = Y[:, window[0]:window[1]]
        buffer = np.empty((min(step, trajectories.size), view.shape[1], n_units))
        for start in range(0, trajectories.size, step):
            chosen = trajectories[start:start + step]
            for i, j in enumerate(chosen):
                buffer[i] = view[j]
            block = buffer[: chosen.size].reshape(-1, n_units)
            if centre is not None:
                np.subtract(block, centre, out=block)
            yield block
        return
    buffer = np.empty((min(step, rows.size), n_units))
    for start in range(0, rows.size, step):
        chosen = rows[start:start + step]
        block = buffer[: chosen.size]
        block[...] = Y[chosen]
        if centre is not None:
            np.subtract(block, centre, out=block)
        yield block


def _blocks_time_contiguous(Y: np.ndarray, trajectories: np.ndarray, window: tuple[int, int],
                            centre: np.ndarray | None, step: int):
    """`_blocks` of 3-D activations whose time steps lie next to each other in memory (a conv
    layer's ``(n, units, time)`` viewed time-major, as the Tuning tables hand them over).

    The block is filled in that order, ``(n_units, n_block)``, and handed over transposed: the
    copy then runs along memory instead of transposing, and BLAS reads either order.
    """
    by_unit = Y.transpose(0, 2, 1)[:, :, window[0]:window[1]]
    n_units, n_time = by_unit.shape[1:]
    buffer = np.empty((n_units, min(step, trajectories.size), n_time))
    for start in range(0, trajectories.size, step):
        chosen = trajectories[start:start + step]
        if chosen.size < buffer.shape[1]:  # the last, shorter block: a contiguous buffer of its own
            buffer = np.empty((n_units, chosen.size, n_time))
        for i, j in enumerate(chosen):
            buffer[:, i] = by_unit[j]
        block = buffer.reshape(n_units, -1)
        if centre is not None:
            np.subtract(block, centre[:, None], out=block)
        yield block.T


def _pass_statistics(Y, splits, columns: _Columns, window, centre: np.ndarray | None):
    """One pass over the activations: per split ``(gram, cross, squares)`` (see
    :func:`_restricted`) of ``Y - centre`` (of ``Y`` itself without a centre)."""
    design, p = columns.design, columns.n_columns
    stats, offset = [], 0
    for rows, trajectories in splits:
        part = design[:, offset:offset + rows.size]
        cross = np.zeros((design.shape[0], Y.shape[-1]))
        squares = np.zeros((design.shape[0] - p, Y.shape[-1]))
        start = 0
        for block in _blocks(Y, rows, trajectories, window, centre):
            stop = start + block.shape[0]
            cross += part[:, start:stop] @ block
            np.square(block, out=block)
            squares += part[p:, start:stop] @ block
            start = stop
        if not np.all(np.isfinite(squares)):
            raise ValueError(
                "activations contain non-finite values (NaN or inf) in the samples used "
                f"(activations shape {Y.shape})"
            )
        stats.append((part @ part.T, cross, squares))
        offset += rows.size
    return stats


def _poorly_conditioned(stats, n_columns: int) -> np.ndarray:
    """(n_units,) bool: units whose uncentred sums lose more than ~1e-12 of their spread.

    Per split and mask group the spread is ``S_yy - S_y² / n``; its rounding error is about
    ``eps * S_yy``, so a unit is refitted on a centre if ``S_yy`` exceeds its spread
    ``_CONDITION_LIMIT`` times (a mean beyond ~100 standard deviations, or constant). Units
    that are exactly zero are exact uncentred and stay.
    """
    poor = np.zeros(stats[0][1].shape[1], dtype=bool)
    for gram, cross, squares in stats:
        for g in range(squares.shape[0]):
            n = gram[n_columns + g, n_columns + g]
            if n == 0:
                continue
            s_y, s_yy = cross[n_columns + g], squares[g]
            spread = s_yy - s_y * (s_y / n)
            poor |= (spread * _CONDITION_LIMIT <= s_yy) & (s_yy > 0)
    return poor


def _split_statistics(Y, splits, columns: _Columns, window):
    """Per split ``(gram, cross, squares)`` (see :func:`_restricted`) of ``Y - mu``, and
    ``mu`` (n_units,), from one pass over the activations.

    The pass sums the activations as they are (``mu = 0``), because centring every value
    costs as much as a third of it. The few units whose uncentred sums would round away
    their spread (see :func:`_poorly_conditioned`) are summed again about a provisional
    centre, the mean of their first training block: the fits are shift-equivariant, the
    centre only keeps the sums well scaled.
    """
    stats = _pass_statistics(Y, splits, columns, window, None)
    mu = np.zeros(Y.shape[-1])
    poor = np.flatnonzero(_poorly_conditioned(stats, columns.n_columns))
    if poor.size:
        some = np.take(Y, poor, axis=-1)
        mu[poor] = _provisional_centre(some, *splits[0], window)
        for (_, cross, squares), (_, again, again_squares) in zip(
            stats, _pass_statistics(some, splits, columns, window, mu[poor])
        ):
            cross[:, poor], squares[:, poor] = again, again_squares
    return mu, stats


def _solve(gram: np.ndarray, rhs: np.ndarray, scale: float, n: int) -> np.ndarray:
    """Minimum-norm solution of ``gram @ beta = rhs`` for all right-hand sides at once.

    ``gram`` (q, q) is symmetric positive semi-definite, ``rhs`` (q, n_units). Eigenvalues
    below ``(eps * n)**2 * scale`` count as zero: the squared counterpart of
    :func:`numpy.linalg.lstsq`'s default cut-off ``eps * max(M, N) * s_max`` on the singular
    values of the design (``scale`` is the trace of the uncentred Gram matrix, >= s_max²).
    """
    eigenvalues, vectors = np.linalg.eigh(gram)
    cutoff = (np.finfo(np.float64).eps * max(n, gram.shape[0] + 1)) ** 2 * scale
    keep = eigenvalues > cutoff
    inverse = np.zeros_like(eigenvalues)
    inverse[keep] = 1.0 / eigenvalues[keep]
    return (vectors * inverse) @ (vectors.T @ rhs)


def fit_tuning(
    activations: ArrayLike,
    features: Mapping[str, ArrayLike],
    *,
    trajectory: ArrayLike | None = None,
    train_trajectories: ArrayLike | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    crop: int = 0,
    crop_reference: int | None = None,
    models: Sequence[str] | None = None,
) -> TuningResult:
    """Fits DeepDraw's tuning models to every unit of a layer; scores them on held-out trajectories.

    Steps (DeepDraw's ``tune``/``tune_row_vel``/``linreg``):

    1. Trajectories are split into train and test sets (never time points of one
       trajectory into both). Default: sklearn's ``train_test_split(test_size=test_fraction,
       random_state=seed)`` over trajectories, reproduced with numpy: the first
       ``ceil(test_fraction * n_trajectories)`` entries of
       ``np.random.RandomState(seed).permutation(n_trajectories)`` are the test set (the
       same split DeepDraw uses with 0.2 and 42).
    2. Time points are cropped, then trajectories x time are flattened into samples. By
       default the first and last ``crop`` time points of every trajectory (in the units' own
       samples) are dropped: neurofit's symmetric crop. DeepDraw's published analysis
       (``rowwise_neuron_curves.tune``) keeps ``[tcoff : 320 - tcoff]`` of each layer's own
       samples, 320 being the number of *input* samples; for a strided layer (fewer than 320
       steps) the end index lies beyond its last step, so it loses only its start. Pass
       ``crop_reference=320`` (the input length) to replicate that.
    3. For each model (``"feature/model"``, see :func:`design_matrix`) samples where the
       model's regressors are undefined (zero vectors for the θ-based models) are dropped,
       then every unit is fitted by ordinary least squares with intercept on the training
       samples and scored on the test samples.

    R² follows ``sklearn.metrics.r2_score`` per unit: ``1 - SS_res / SS_tot`` over the
    samples of one set; a unit that is constant on the set (SS_tot = 0) gets 1.0 if the
    model predicts it exactly and 0.0 otherwise. In exact arithmetic a least-squares fit
    predicts a test-constant unit exactly only if the unit is also constant, with the same
    value, on the training samples, so that is the rule used here (dead units that output
    0 everywhere thus get R² = 1, which DeepDraw excludes from its statistics). "Constant"
    means SS_tot is at most ``1e-10`` of the unit's sum of squares about the centre used,
    i.e. zero up to rounding.

    Implementation: all units are solved together. Activations are streamed once, in
    cache-sized blocks of samples (3-D input a few whole trajectories at a time, in any memory
    layout), and reduced to the cross-products of the models' distinct regressors and of one
    indicator per mask group with every unit (one matrix product per block), and per group
    the sums of squares. Units whose uncentred sums would lose more than ~1e-12 of their
    spread (a mean beyond ~100 standard deviations, or constant) are streamed again, centred
    on a provisional per-unit centre. Models share regressors
    (``cartesian`` and ``direction_speed`` both use ``(v_x, v_y)``); a model's statistics
    over its own samples follow from these, because its regressors are zero where it drops a
    sample. Then each model's normal equations are solved for all units at once (a q x q
    pseudo-inverse, q <= 2, applied to a q x n_units right-hand side) and R² follows from the
    same sufficient statistics. No copy of the activations is made beyond one block at a
    time. Rank-deficient designs (e.g. a constant regressor) get the minimum-norm solution of
    the centred system: the degenerate slope is 0.

    Args:
        activations: ``(n_trajectories, n_time, n_units)``, or ``(n_samples, n_units)``
            with ``trajectory``. Any real dtype (computed in float64); finite.
        features: Name -> Cartesian 2-D kinematic variable, each
            ``(n_trajectories, n_time, 2)`` (or ``(n_samples, 2)``), e.g.
            ``{"velocity": ..., "position": ..., "acceleration": ...}`` (see
            :func:`velocity`, :func:`acceleration`). Names must not contain ``/``.
        trajectory: For 2-D activations only: the trajectory id of every sample,
            ``(n_samples,)``. Samples of one trajectory must appear in time order (the first
            one is its start point for ``position_polar`` and cropping counts from it).
        train_trajectories: Optional explicit training set: trajectory ids (for 3-D
            activations the indices ``0..n_trajectories-1``), or a boolean mask over the
            sorted ids. All other trajectories form the test set. Overrides
            ``test_fraction`` and ``seed``.
        test_fraction: Fraction of trajectories held out, in (0, 1) (DeepDraw: 0.2).
        seed: Seed of the split (DeepDraw: 42).
        crop: Time points dropped at the start of every trajectory and, with the default
            ``crop_reference=None``, also at its end (neurofit's symmetric crop; for
            unstrided layers this equals DeepDraw's). DeepDraw's ``tcoff`` is the number of
            layer steps centred at input time <= 32.
        crop_reference: Replicates DeepDraw's crop: keep time points ``crop <= t <
            crop_reference - crop`` of each trajectory's own samples, with ``crop_reference``
            the number of input samples (DeepDraw: 320). A strided layer then loses only its
            first ``crop`` steps, as in the paper. None: the symmetric crop above.
        models: ``"feature/model"`` names to fit, in output order. Default:
            :func:`default_models` of the feature names (DeepDraw's four models per feature,
            plus ``position/position_polar``).

    Returns:
        A :class:`TuningResult`. Models with no usable training (test) sample have NaN
        coefficients and R² (NaN test R²).

    Raises:
        ValueError: On inconsistent shapes, non-finite values, unknown models or features,
            a split leaving either set empty, or cropping that leaves no sample in a set.
        TypeError: On non-numeric activations.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> v = rng.normal(size=(50, 20, 2))
        >>> theta = np.arctan2(v[..., 1], v[..., 0])
        >>> y = np.cos(theta - 1.0)[..., None]          # one unit preferring 1 rad
        >>> result = fit_tuning(y, {"velocity": v}, models=["velocity/direction"])
        >>> round(float(result.r2_test[0, 0]), 6), round(float(preferred_direction(result)[0]), 6)
        (1.0, 1.0)
    """
    Y, feats, ids, traj, t, length, first = _samples(activations, features, trajectory)
    n_units = Y.shape[-1]
    n_traj = ids.shape[0]
    if n_traj < 2:
        raise ValueError(f"at least 2 trajectories are needed to split, got {n_traj}")
    if not (isinstance(crop, (int, np.integer)) and not isinstance(crop, bool) and crop >= 0):
        raise ValueError(f"crop must be an integer >= 0, got {crop!r}")
    parsed = _parse_models(models, list(feats))
    is_train = _split(n_traj, ids, train_trajectories, test_fraction, seed)

    if crop_reference is not None and not (
        isinstance(crop_reference, (int, np.integer)) and not isinstance(crop_reference, bool)
        and crop_reference > 0
    ):
        raise ValueError(f"crop_reference must be a positive integer or None, got {crop_reference!r}")
    stop = length - crop if crop_reference is None else np.full_like(length, crop_reference - crop)
    kept = (t >= crop) & (t < stop)
    sets = []
    for in_set, label in ((is_train[traj], "training"), (~is_train[traj], "test")):
        rows = np.flatnonzero(kept & in_set)
        if rows.size == 0:
            raise ValueError(
                f"no {label} samples are left after cropping {crop} time points at each end "
                f"(trajectory lengths {int(length.min())}..{int(length.max())})"
            )
        sets.append(rows)
    train_rows, test_rows = sets

    used = np.concatenate([train_rows, test_rows])
    columns = _model_columns(parsed, feats, used, first[traj[used]], train_rows.size)
    window = (crop, int(min(length.max(), stop.max()))) if Y.ndim == 3 else (0, 0)
    splits = [(train_rows, np.flatnonzero(is_train)), (test_rows, np.flatnonzero(~is_train))]
    mu, ((gram_tr, cross_tr, squares_tr), (gram_te, cross_te, squares_te)) = _split_statistics(
        Y, splits, columns, window
    )

    n_models = len(parsed)
    r2_test = np.full((n_units, n_models), np.nan)
    r2_train = np.full((n_units, n_models), np.nan)
    coefficients = np.full((n_units, n_models, 3), np.nan)
    n_train = np.zeros(n_models, dtype=np.int64)
    n_test = np.zeros(n_models, dtype=np.int64)

    for k in range(n_models):
        n_v, s_z, zz, s_zy, s_y, s_yy = _restricted(gram_tr, cross_tr, squares_tr, columns, k)
        n_t, s_z_te, zz_te, s_zy_te, s_y_te, s_yy_te = _restricted(
            gram_te, cross_te, squares_te, columns, k
        )
        n_v, n_t = int(round(n_v)), int(round(n_t))
        n_train[k], n_test[k] = n_v, n_t
        if n_v == 0:
            continue
        centre = columns.shift[columns.model_columns[k]]
        q = centre.size
        # Training statistics: regressors centred on the model's samples, activations on mu.
        gram = zz - np.outer(s_z, s_z) / n_v
        y_bar = s_y / n_v
        rhs = s_zy - np.outer(s_z, y_bar)
        # Trace of the unshifted Gram matrix [z, 1]' [z, 1], for the rank cut-off.
        scale = float(np.trace(zz) + 2 * centre @ s_z + n_v * centre @ centre + n_v)
        beta = _solve(gram, rhs, scale, n_v)  # (q, n_units): every unit at once
        gamma = y_bar - (s_z / n_v) @ beta  # prediction: gamma + (z - centre) @ beta
        coefficients[:, k, :q] = beta.T
        coefficients[:, k, q] = gamma + mu - centre @ beta
        coefficients[:, k, q + 1 :] = 0.0

        ss_tot = s_yy - s_y * y_bar
        explained = np.einsum("pu,pu->u", beta, 2 * rhs - gram @ beta)
        ss_res = np.maximum(ss_tot - explained, 0.0)
        const_train = ss_tot <= _CONSTANT_RTOL * s_yy
        r2_train[:, k] = np.where(
            const_train, 1.0, 1.0 - ss_res / np.where(const_train, 1.0, ss_tot)
        )
        if n_t == 0:
            continue

        # Test statistics: residual y - gamma - (z - centre) @ beta over the model's samples.
        y_bar_te = s_y_te / n_t
        ss_tot_te = s_yy_te - s_y_te * y_bar_te
        cross_res = s_zy_te - np.outer(s_z_te, gamma)
        ss_res_te = (
            ss_tot_te
            + n_t * (y_bar_te - gamma) ** 2
            - np.einsum("pu,pu->u", beta, 2 * cross_res - zz_te @ beta)
        )
        ss_res_te = np.maximum(ss_res_te, 0.0)
        const_test = ss_tot_te <= _CONSTANT_RTOL * s_yy_te
        spread = np.sqrt(np.maximum(s_yy / n_v, s_yy_te / n_t))
        exact = const_train & (np.abs(y_bar_te - y_bar) <= 1e-8 * spread)
        r2_test[:, k] = np.where(
            const_test,
            np.where(exact, 1.0, 0.0),
            1.0 - ss_res_te / np.where(const_test, 1.0, ss_tot_te),
        )

    return TuningResult(
        model_names=[name for name, _, _ in parsed],
        r2_test=r2_test,
        r2_train=r2_train,
        coefficients=coefficients,
        n_train=n_train,
        n_test=n_test,
        train_trajectories=ids[is_train],
        test_trajectories=ids[~is_train],
    )


def deepdraw_kept_steps(centres: ArrayLike, n_input: int, cutoff: float | None = None) -> np.ndarray:
    """The time steps of a layer DeepDraw's published tuning analysis keeps.

    DeepDraw (``rowwise_neuron_curves.tune``) counts ``tcoff``, the layer's steps centred at
    input sample <= 32 of its 320, and keeps steps ``tcoff <= j < 320 - tcoff`` in the layer's
    *own* indexing. An unstrided layer thus loses both ends; a strided (shorter) layer loses
    only its start, because ``320 - tcoff`` lies beyond its last step. ``fit_tuning(crop=tcoff,
    crop_reference=n_input)`` applies the same crop to an array of all the layer's steps.

    Args:
        centres: (n_steps,) time centres of the layer's steps, in input samples.
        n_input: number of input samples (DeepDraw: 320).
        cutoff: input sample up to which a step counts into ``tcoff``. Default:
            ``n_input / 10`` (DeepDraw's 32 of 320).

    Returns:
        (n_steps,) bool, True for the kept steps.

    Examples:
        >>> deepdraw_kept_steps(np.arange(0, 320, 4), 320).nonzero()[0][[0, -1]]  # 80 steps
        array([ 9, 79])
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1)
    if not (isinstance(n_input, (int, np.integer)) and n_input > 0):
        raise ValueError(f"n_input must be a positive integer, got {n_input!r}")
    tcoff = int(np.sum(centres <= (n_input / 10 if cutoff is None else cutoff)))
    steps = np.arange(centres.size)
    return (steps >= tcoff) & (steps < n_input - tcoff)


# ----------------------------------------------------------------------------------------
# preferred directions and their distribution
# ----------------------------------------------------------------------------------------


def preferred_direction(
    result_or_coefficients: TuningResult | ArrayLike, feature: str = "velocity"
) -> np.ndarray:
    """Preferred direction of every unit: ``atan2(b, a)`` of its direction model.

    The direction model ``a cos θ + b sin θ + c = c + sqrt(a² + b²) cos(θ - atan2(b, a))``
    peaks at ``atan2(b, a)`` (DeepDraw: ``angle_xaxis`` of the coefficients of model 1).

    Args:
        result_or_coefficients: A :class:`TuningResult` with a ``"<feature>/direction"``
            model, or direction-model coefficients of shape (n_units, 2) or (n_units, 3)
            holding ``(a, b[, c])``.
        feature: Which feature's direction model to use (ignored for coefficient arrays).

    Returns:
        Preferred direction per unit, shape (n_units,), radians in ``(-pi, pi]``; NaN where
        ``a = b = 0`` or the coefficients are NaN. Whether a unit is tuned at all is
        :func:`directionally_tuned`'s business.

    Raises:
        KeyError: If the result has no direction model for ``feature``.
        ValueError: On coefficient arrays of another shape.

    Examples:
        >>> preferred_direction(np.array([[0.0, 2.0, 5.0], [-1.0, 0.0, 0.0]])) / np.pi
        array([0.5, 1. ])
    """
    if isinstance(result_or_coefficients, TuningResult):
        result = result_or_coefficients
        coefficients = result.coefficients[:, result.index(f"{feature}/direction"), :2]
    else:
        coefficients = np.asarray(result_or_coefficients, dtype=np.float64)
        if coefficients.ndim != 2 or coefficients.shape[1] not in (2, 3):
            raise ValueError(
                "coefficients must have shape (n_units, 2) or (n_units, 3) holding (a, b[, c]) "
                f"of the direction model, got {coefficients.shape}"
            )
    a, b = coefficients[:, 0], coefficients[:, 1]
    angle = np.arctan2(b, a)
    angle = np.where(angle == -np.pi, np.pi, angle)
    return np.where((a == 0) & (b == 0), np.nan, angle)


def directionally_tuned(
    result: TuningResult, feature: str = "velocity", threshold: float = 0.2
) -> np.ndarray:
    """Units whose direction model explains held-out variance: ``threshold < R² != 1``.

    DeepDraw (``get_pds_sp``, ``'dirr2threshold': 0.2``) counts a unit as directionally
    tuned if the test R² of its direction model exceeds 0.2, excluding R² == 1 (constant
    units, e.g. dead ReLUs, see :func:`fit_tuning`).

    Args:
        result: A :class:`TuningResult` with a ``"<feature>/direction"`` model.
        feature: Which feature's direction model to use.
        threshold: R² a unit must exceed.

    Returns:
        Boolean mask, shape (n_units,). NaN R² counts as not tuned.

    Raises:
        KeyError: If the result has no direction model for ``feature``.
    """
    r2 = result.r2_test[:, result.index(f"{feature}/direction")]
    with np.errstate(invalid="ignore"):
        return (r2 > threshold) & (r2 != 1.0)


def direction_uniformity(preferred_directions: ArrayLike, n_bins: int = 18) -> float:
    """Total absolute deviation (TAD) of a preferred-direction histogram from uniformity.

    ``TAD = sum_b |h_b - mean(h)| / N`` with ``h`` the histogram of the ``N`` directions in
    ``n_bins`` equal bins over ``[-pi, pi]`` (numpy's bins: half-open except the last)
    (DeepDraw's ``pd_deviation``, 18 bins). 0 for a perfectly even histogram; the maximum,
    all directions in one bin, is ``2 (1 - 1/n_bins)`` (17/9 for 18 bins). For ``N``
    uniformly random directions it is about ``sqrt(2 n_bins (1 - 1/n_bins) / (pi N))``.

    Args:
        preferred_directions: Angles in radians within ``[-pi, pi]``, any shape (e.g. the
            :func:`preferred_direction` of the :func:`directionally_tuned` units). NaNs are
            ignored.
        n_bins: Number of histogram bins, >= 1.

    Returns:
        TAD, dimensionless, in ``[0, 2 (1 - 1/n_bins)]``; NaN if there is no direction.

    Raises:
        ValueError: On angles outside ``[-pi, pi]``, infinite values, or ``n_bins < 1``.

    Examples:
        >>> round(direction_uniformity(np.zeros(5)), 12)  # all in one bin: 2 * (1 - 1/18)
        1.888888888889
    """
    if not (isinstance(n_bins, (int, np.integer)) and not isinstance(n_bins, bool) and n_bins >= 1):
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    angles = np.asarray(preferred_directions, dtype=np.float64).reshape(-1)
    angles = angles[~np.isnan(angles)]
    if np.any(np.abs(angles) > np.pi):
        raise ValueError(
            f"preferred directions must lie in [-pi, pi] radians, got values from "
            f"{angles.min()} to {angles.max()}"
        )
    if angles.size == 0:
        return float("nan")
    hist, _ = np.histogram(angles, bins=n_bins, range=(-np.pi, np.pi))
    return float(np.abs(hist - hist.mean()).sum() / angles.size)


def tuning_summary(
    result: TuningResult, threshold: float = 0.2, *, feature: str = "velocity"
) -> dict[str, float | int]:
    """Per-layer scalars of a :class:`TuningResult`.

    Keys:

    * ``"n_units"``, ``"threshold"``;
    * ``"n_tuned"``, ``"fraction_tuned"``: units :func:`directionally_tuned` for
      ``feature`` (NaN fraction, 0 count, if there is no ``"<feature>/direction"`` model);
    * ``"uniformity"``: :func:`direction_uniformity` (18 bins) of the tuned units'
      preferred directions; NaN if no unit is tuned;
    * ``"mean_r2_test/<model>"``, ``"median_r2_test/<model>"`` for every model: over units,
      excluding R² == 1 (constant units) and NaN as DeepDraw's ``compile_comparisons_df``
      does; NaN if no unit is left.

    Args:
        result: Output of :func:`fit_tuning`.
        threshold: R² above which a unit counts as directionally tuned (DeepDraw: 0.2).
        feature: Feature whose direction model defines tuning and preferred directions.

    Returns:
        Dict of Python scalars (int or float).
    """
    summary: dict[str, float | int] = {"n_units": result.n_units, "threshold": float(threshold)}
    if f"{feature}/direction" in result.model_names:
        tuned = directionally_tuned(result, feature=feature, threshold=threshold)
        summary["n_tuned"] = int(tuned.sum())
        summary["fraction_tuned"] = float(tuned.mean()) if result.n_units else float("nan")
        summary["uniformity"] = direction_uniformity(preferred_direction(result, feature)[tuned])
    else:
        summary.update(n_tuned=0, fraction_tuned=float("nan"), uniformity=float("nan"))

    r2 = np.where(result.r2_test == 1.0, np.nan, result.r2_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        means = np.nanmean(r2, axis=0)
        medians = np.nanmedian(r2, axis=0)
    for name, mean, median in zip(result.model_names, means, medians):
        summary[f"mean_r2_test/{name}"] = float(mean)
        summary[f"median_r2_test/{name}"] = float(median)
    return summary


# ----------------------------------------------------------------------------------------
# label tuning and trained-vs-control comparisons
# ----------------------------------------------------------------------------------------


def _class_auc(ranks: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of every unit for every class from per-unit ranks (n, n_units)."""
    onehot = (labels[:, None] == classes[None]).astype(np.float64)  # (n, n_classes)
    n_pos = onehot.sum(axis=0)
    n_neg = len(labels) - n_pos
    rank_sums = onehot.T @ ranks  # (n_classes, n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sums - (n_pos * (n_pos + 1) / 2)[:, None]) / (n_pos * n_neg)[:, None]
    return auc.T  # (n_units, n_classes)


def label_tuning(
    activations: ArrayLike, labels: ArrayLike, train: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Label tuning of every unit: one-vs-rest ROC AUC of its trajectory-mean activation.

    DeepDraw (``tune_row_label``) fits a one-vs-rest linear classifier to each unit's activity
    and scores the macro ROC AUC on held-out trajectories, reported as ``2 (AUC - 0.5)``. With
    one regressor, a class's linear decision function is the activation times a sign, so the
    classifier reduces to that sign: it is chosen on the training trajectories (the direction
    with AUC >= 0.5) and the test AUC is read with it. All units at once, by ranks (ties
    count half).

    Args:
        activations: (n_trajectories, n_units), e.g. each unit's mean over time.
        labels: (n_trajectories,) class labels.
        train: (n_trajectories,) bool, the training trajectories (the rest are the test set).

    Returns:
        ``(score, auc)``: (n_units,) ``2 (macro test AUC - 0.5)`` in [-1, 1] (0 = chance), the
        macro mean over the classes the test set has (a class missing from the test set, or
        the only one there, has NaN AUC and is left out; NaN if none is left), and
        (n_units, n_classes) test AUC per class with the sign applied.

    Raises:
        ValueError: on mismatched shapes or a split without both sets.
    """
    from scipy.stats import rankdata

    y = _as_float(activations, "activations")
    labels = np.asarray(labels)
    train = np.asarray(train, dtype=bool)
    if y.ndim != 2 or labels.shape != (len(y),) or train.shape != (len(y),):
        raise ValueError(
            f"need activations (n, n_units), labels (n,) and train (n,); got {y.shape}, "
            f"{labels.shape}, {train.shape}"
        )
    if train.all() or not train.any():
        raise ValueError("label tuning needs both training and test trajectories")
    classes = np.unique(labels[train])
    sign = np.where(_class_auc(rankdata(y[train], axis=0), labels[train], classes) >= 0.5, 1.0, -1.0)
    auc = _class_auc(rankdata(y[~train], axis=0), labels[~train], classes)
    auc = np.where(sign > 0, auc, 1.0 - auc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a unit with no scorable class gives NaN
        return 2.0 * (np.nanmean(auc, axis=1) - 0.5), auc


def paired_test(trained: ArrayLike, control: ArrayLike) -> dict[str, float]:
    """Paired comparison of a metric across seeds: trained networks against their controls.

    The values of seed ``i`` of both arrays form a pair (e.g. a layer's fraction of tuned
    units, trained and untrained, for the same seed). Reports the paired t-test and the
    Wilcoxon signed-rank test (DeepDraw's comparisons of trained and control networks).

    Args:
        trained, control: (n_seeds,) values, finite, paired by position.

    Returns:
        ``n``, ``mean_trained``, ``mean_control``, ``mean_difference`` (trained - control),
        ``t``, ``p_t`` (two-sided paired t-test; NaN with fewer than 2 pairs or no spread of
        the differences), ``p_wilcoxon`` (two-sided exact signed-rank; NaN if every
        difference is 0). With 2 seeds the smallest possible Wilcoxon p is 0.5: the test
        cannot reject, and that is reported, not hidden.
    """
    from scipy import stats

    a = _as_float(trained, "trained").reshape(-1)
    b = _as_float(control, "control").reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"trained and control need one value per seed each, got {a.shape} and {b.shape}")
    d = a - b
    out = {"n": int(a.size), "mean_trained": float(a.mean()), "mean_control": float(b.mean()),
           "mean_difference": float(d.mean()), "t": float("nan"), "p_t": float("nan"),
           "p_wilcoxon": float("nan")}
    if a.size >= 2 and np.std(d) > 0:
        result = stats.ttest_rel(a, b)
        out.update(t=float(result.statistic), p_t=float(result.pvalue))
    if np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    return out

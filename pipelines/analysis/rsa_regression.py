"""Regression of a target RDM on model RDMs, and variance partitioning.

Pure numpy, arrays in and arrays out, float64. RDMs are condensed vectors of length
``n_pairs`` (see :mod:`neurofit.pipelines.analysis.rdm`); a set of predictor RDMs is a
column matrix ``(n_pairs, p)``, one column per RDM (e.g. one per network layer).

The ordinary least-squares fits use a single Householder QR factorisation of the
centred, column-scaled design ``[X y]`` (never the normal equations ``X'X b = X'y``,
whose condition number is the square of ``X``'s; layer RDMs are highly collinear, see
the project note ``metrics.md`` section 2c). Because ``[X y] = Q R`` with orthonormal
``Q``, the fit of ``y`` on any subset ``S`` of the columns has the same residual as the
small fit of ``R[:, y]`` on ``R[:, S]``; every subset model of a variance partitioning
therefore costs a ``(p+1) x |S|`` least-squares problem after one ``O(n_pairs p^2)``
factorisation.

References:
    Dwivedi, K., Bonner, M. F., Cichy, R. M. & Roig, G. (2021). Unveiling functions of
    the visual cortex using task-specific deep neural networks. PLoS Comput. Biol.
    17(8): e1009267.

    Legendre, P. & Legendre, L. (2012). Numerical Ecology, 3rd ed., section 10.3.5
    (variation partitioning). Elsevier.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = [
    "batched_regression",
    "batched_variance_partitioning",
    "condition_bootstrap",
    "condition_permutations",
    "fdr_correction",
    "group_subsets",
    "permutation_test",
    "r2_noise_ceiling",
    "rdm_regression",
    "subset_indices",
    "ttest_greater",
    "ttest_paired_greater",
    "variance_partitioning",
]

#: More groups than this would need more than 65535 subset regressions.
MAX_GROUPS = 16


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _as_target(target: ArrayLike) -> np.ndarray:
    """Validates a finite 1-D target RDM with at least 2 non-constant entries."""
    array = np.asarray(target)
    if array.ndim != 1:
        raise ValueError(f"target must be 1-D with shape (n_pairs,), got shape {array.shape}")
    try:
        array = numeric(array, "target")
    except ValueError:
        raise ValueError(
            "target contains non-finite values (NaN or inf); drop those pairs from the "
            "target and every predictor first"
        ) from None
    if array.shape[0] < 2 or np.ptp(array) == 0:
        raise ValueError(
            f"target must have at least 2 entries and not be constant (shape {array.shape})"
        )
    return array


def _as_predictors(predictors: ArrayLike, n_pairs: int, name: str) -> np.ndarray:
    """Validates finite predictors: (n_pairs,) or (n_pairs, p) -> float64 (n_pairs, p)."""
    array = np.asarray(predictors)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != n_pairs or array.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (n_pairs, p) = ({n_pairs}, p >= 1), one column per "
            f"RDM, or (n_pairs,); got shape {np.asarray(predictors).shape}"
        )
    return numeric(array, name)


# ----------------------------------------------------------------------------------------
# least squares through one QR factorisation
# ----------------------------------------------------------------------------------------


class _Factorised:
    """``R`` factor of the centred, column-scaled ``[X y]`` and what is needed to undo it.

    Attributes:
        r: Upper-triangular factor, shape (min(n, p + 1), p + 1); last column is y.
        scales: Column norms of the centred predictors (1 for all-constant columns).
        x_mean: Predictor means, (p,). ``y_mean``: target mean.
        ss_total: Total sum of squares of the target about its mean.
        n: Number of observations (RDM entries).
    """

    def __init__(self, target: np.ndarray, predictors: np.ndarray) -> None:
        self.n, p = predictors.shape
        self.x_mean = predictors.mean(axis=0)
        self.y_mean = float(target.mean())
        design = np.empty((self.n, p + 1), dtype=np.float64)
        np.subtract(predictors, self.x_mean, out=design[:, :p])
        np.subtract(target, self.y_mean, out=design[:, p])
        scales = np.sqrt(np.einsum("ij,ij->j", design[:, :p], design[:, :p]))
        constant = np.ptp(predictors, axis=0) == 0
        scales[constant] = 1.0
        design[:, :p][:, constant] = 0.0
        design[:, :p] /= scales
        self.scales = scales
        self.ss_total = float(design[:, p] @ design[:, p])
        self.r = np.linalg.qr(design, mode="r")

    def fit(self, columns: np.ndarray) -> tuple[float, np.ndarray]:
        """Residual sum of squares and coefficients (scaled back) of y on ``columns``."""
        r_x = self.r[:, columns]
        r_y = self.r[:, -1]
        # Rank threshold of an SVD least squares on the full (n_pairs x p) design:
        # singular values below eps * max(n, p) * s_max are rounding noise of exactly
        # collinear columns, and fitting them would add spurious explained variance.
        rcond = np.finfo(np.float64).eps * max(self.n, r_x.shape[1])
        beta, *_ = np.linalg.lstsq(r_x, r_y, rcond=rcond)
        residual = r_y - r_x @ beta
        ss_residual = float(residual @ residual)
        return ss_residual, beta / self.scales[columns]


def _r2(ss_residual: float, ss_total: float, n: int, p: int) -> tuple[float, float]:
    """R^2 = 1 - SS_res/SS_tot and adjusted R^2 = 1 - (1 - R^2)(n - 1)/(n - p - 1)."""
    r2 = 1.0 - ss_residual / ss_total
    adjusted = 1.0 - (1.0 - r2) * (n - 1) / (n - p - 1)
    return r2, adjusted


def rdm_regression(target: ArrayLike, predictors: ArrayLike) -> dict[str, Any]:
    """Ordinary least-squares regression of a target RDM on predictor RDMs.

    Model: ``target = b0 + sum_l b_l predictors[:, l] + error`` (intercept always
    included), fitted in float64 by Householder QR and an SVD-based least-squares
    solve (minimum-norm coefficients if predictors are exactly collinear). This is the
    "multiple regression RSA" of Dwivedi et al. (2021) without their float32 normal
    equations::

        R^2          = 1 - SS_res / SS_tot
        adjusted R^2 = 1 - (1 - R^2) (n - 1) / (n - p - 1)

    with ``n = n_pairs`` and ``p`` the number of predictor columns (collinear or
    constant columns still count). Adjusted R^2 can be negative.

    Args:
        target: Target RDM (e.g. a brain RDM), shape (n_pairs,), finite, not constant.
        predictors: Predictor RDMs, shape (n_pairs, p), one column per RDM, or
            (n_pairs,) for one RDM. Finite. ``n_pairs > p + 1``.

    Returns:
        A dict with ``"r2"`` (float), ``"adjusted_r2"`` (float), ``"coefficients"``
        (shape (p,), in target units per predictor unit) and ``"intercept"`` (float).

    Raises:
        ValueError: On wrong shapes, non-finite values, a constant target, or
            ``n_pairs <= p + 1``.

    Examples:
        >>> fit = rdm_regression([1.0, 3.0, 5.0, 8.0], [[0.0], [1.0], [2.0], [3.0]])
        >>> round(fit["r2"], 4), fit["coefficients"].round(2), round(fit["intercept"], 2)
        (0.9888, array([2.3]), 0.8)
    """
    y = _as_target(target)
    x = _as_predictors(predictors, y.shape[0], "predictors")
    n, p = x.shape
    if n <= p + 1:
        raise ValueError(
            f"adjusted R^2 needs n_pairs > p + 1, got n_pairs={n} and p={p} predictors"
        )
    factorised = _Factorised(y, x)
    ss_residual, coefficients = factorised.fit(np.arange(p))
    r2, adjusted = _r2(ss_residual, factorised.ss_total, n, p)
    intercept = factorised.y_mean - float(factorised.x_mean @ coefficients)
    return {
        "r2": r2,
        "adjusted_r2": adjusted,
        "coefficients": coefficients,
        "intercept": intercept,
    }


def variance_partitioning(
    target: ArrayLike,
    groups: Mapping[Hashable, ArrayLike],
    *,
    adjusted: bool = True,
) -> dict[str, Any]:
    """Variance partitioning of a target RDM among groups of predictor RDMs.

    Every non-empty subset ``S`` of the ``g`` groups is fitted with
    :func:`rdm_regression` (all RDMs of the groups in ``S`` as predictors, intercept
    included), giving ``R(S)`` (adjusted R^2 by default). A group may hold several RDMs
    (e.g. all layers of one network) and always enters or leaves a model *as a whole*.
    (Public code, ``dnn2brain-function`` ``vpart_general``, removes single RDMs from the
    flattened predictor list instead, which is only right for one RDM per group.)

    Each part of the explained variance is attributed to the set ``T`` of groups that
    share it. A model with groups ``S`` explains every part whose ``T`` meets ``S``,
    so ``g(A) = R(all) - R(all minus A) = sum over non-empty T within A of part(T)``,
    and Möbius inversion gives::

        part(A) = sum over T within A of (-1)^(|A| - |T|) g(T),   g(empty) = 0

    For 2 groups: ``part({1}) = R12 - R2`` (unique), ``part({1,2}) = R1 + R2 - R12``
    (shared); for 3 groups ``part({1,2,3}) = R1 + R2 + R3 - R12 - R13 - R23 + R123``
    and ``part({1}) = R123 - R23``: the formulas of Dwivedi et al. (2021). The parts
    sum to ``R(all)``. Parts can be negative (suppression, or adjusted R^2 noise).

    Args:
        target: Target RDM, shape (n_pairs,), finite, not constant.
        groups: Ordered mapping from group name to its predictor RDMs, each of shape
            (n_pairs, p_g) (one column per RDM) or (n_pairs,). 1 to 16 groups;
            ``n_pairs > sum p_g + 1``.
        adjusted: Partition the adjusted R^2 (default, as Dwivedi et al.) or plain R^2.

    Returns:
        A dict (subsets are tuples of group names in the order of ``groups``):

        * ``"groups"``: tuple of the group names.
        * ``"r2"``: ``{subset: R^2}`` for every non-empty subset.
        * ``"adjusted_r2"``: ``{subset: adjusted R^2}`` for every non-empty subset.
        * ``"partition"``: ``{subset: part}``, the variance shared by exactly the
          groups of ``subset`` (length-1 subsets are the unique parts).
        * ``"unique"``: ``{name: part((name,))}``, the variance unique to each group.
        * ``"total"``: ``R(all groups)``, the sum of the partition.

    Raises:
        ValueError: On no or more than 16 groups, a group with wrong shape or
            non-finite values, a constant target, or too few entries.

    Examples:
        >>> x1 = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
        >>> x2 = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
        >>> out = variance_partitioning(x1 + x2, {"a": x1, "b": x2}, adjusted=False)
        >>> {k: round(v, 3) for k, v in out["partition"].items()}
        {('a',): 0.273, ('b',): 0.727, ('a', 'b'): 0.0}
    """
    y = _as_target(target)
    if not isinstance(groups, Mapping) or len(groups) == 0:
        raise ValueError("groups must be a non-empty mapping {name: predictor RDMs}")
    if len(groups) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS} groups are supported, got {len(groups)}")
    names = tuple(groups)
    blocks = [_as_predictors(groups[name], y.shape[0], f"groups[{name!r}]") for name in names]
    x = np.concatenate(blocks, axis=1)
    n, p = x.shape
    if n <= p + 1:
        raise ValueError(
            f"adjusted R^2 needs n_pairs > p + 1, got n_pairs={n} and p={p} predictors "
            "over all groups"
        )
    bounds = np.cumsum([0] + [block.shape[1] for block in blocks])
    group_columns = [np.arange(bounds[k], bounds[k + 1]) for k in range(len(names))]

    factorised = _Factorised(y, x)
    n_groups = len(names)
    n_subsets = 1 << n_groups
    r2 = np.zeros(n_subsets)
    adj = np.zeros(n_subsets)
    for mask in range(1, n_subsets):  # loop over subsets of groups (2^g - 1 small fits)
        columns = np.concatenate([group_columns[k] for k in range(n_groups) if mask >> k & 1])
        ss_residual, _ = factorised.fit(columns)
        r2[mask], adj[mask] = _r2(ss_residual, factorised.ss_total, n, columns.size)

    explained = adj if adjusted else r2
    full = n_subsets - 1
    masks = np.arange(n_subsets)
    # g(A) = R(all) - R(all minus A), with R(empty) = 0, so g(empty) = 0.
    parts = explained[full] - explained[full ^ masks]
    # Möbius inversion over the subset lattice, one vectorised pass per group.
    for k in range(n_groups):
        has_k = (masks >> k & 1).astype(bool)
        parts[has_k] -= parts[masks[has_k] ^ (1 << k)]

    def subset(mask: int) -> tuple:
        return tuple(names[k] for k in range(n_groups) if mask >> k & 1)

    ordered = sorted(range(1, n_subsets), key=lambda m: (bin(m).count("1"), _subset_rank(m)))
    return {
        "groups": names,
        "r2": {subset(m): float(r2[m]) for m in ordered},
        "adjusted_r2": {subset(m): float(adj[m]) for m in ordered},
        "partition": {subset(m): float(parts[m]) for m in ordered},
        "unique": {names[k]: float(parts[1 << k]) for k in range(n_groups)},
        "total": float(explained[full]),
    }


def _subset_rank(mask: int) -> tuple[int, ...]:
    """Sort key of a subset bitmask: the positions of its groups (for readable dicts)."""
    return tuple(k for k in range(mask.bit_length()) if mask >> k & 1)


# ----------------------------------------------------------------------------------------
# batched fits: many target RDMs (subjects, searchlights, permutations) in one solve
# ----------------------------------------------------------------------------------------


def _as_targets(targets: ArrayLike) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validates target RDMs (..., n_pairs) -> float64 (m, n_pairs) rows and the leading shape."""
    array = np.asarray(targets)
    if array.ndim < 1 or array.shape[-1] < 2:
        raise ValueError(f"targets must have shape (..., n_pairs) with n_pairs >= 2, got {array.shape}")
    try:
        array = numeric(array, "targets")
    except ValueError:
        raise ValueError(
            "targets contain non-finite values (NaN or inf); drop those pairs from the targets "
            "and every predictor first"
        ) from None
    rows = array.reshape(-1, array.shape[-1])
    constant = np.flatnonzero(np.ptp(rows, axis=1) == 0)
    if constant.size:
        where = np.unravel_index(constant[0], array.shape[:-1]) if array.ndim > 1 else ()
        raise ValueError(
            f"target RDM at index {tuple(int(i) for i in where)} is constant; a regression needs "
            f"variance to explain ({constant.size} constant target(s) in all)"
        )
    return rows, array.shape[:-1]


class _Basis:
    """Rank-truncated orthonormal basis of the centred, column-scaled predictors (thin SVD).

    The rank threshold is the one `rdm_regression` applies (singular values below
    ``eps * max(n_pairs, p) * s_max`` are rounding noise of collinear columns), so both
    paths keep the same columns and agree to rounding.

    Attributes:
        u: (n_pairs, rank) orthonormal columns spanning the centred predictors.
        s, vt: the kept singular values (rank,) and right singular vectors (rank, p).
        scales: (p,) column norms of the centred predictors (1 for constant columns).
        x_mean: (p,) predictor means.
    """

    def __init__(self, predictors: np.ndarray) -> None:
        n, p = predictors.shape
        self.x_mean = predictors.mean(axis=0)
        centred = predictors - self.x_mean
        scales = np.sqrt(np.einsum("ij,ij->j", centred, centred))
        constant = np.ptp(predictors, axis=0) == 0
        scales[constant] = 1.0
        centred[:, constant] = 0.0
        self.scales = scales
        u, s, vt = np.linalg.svd(centred / scales, full_matrices=False)
        keep = s > np.finfo(np.float64).eps * max(n, p) * (s[0] if s.size else 0.0)
        self.u, self.s, self.vt = u[:, keep], s[keep], vt[keep]

    def coefficients(self, projection: np.ndarray) -> np.ndarray:
        """(m, rank) coordinates of the fits in ``u`` -> (m, p) slopes in predictor units."""
        return (projection / self.s) @ self.vt / self.scales


def batched_regression(targets: ArrayLike, predictors: ArrayLike) -> dict[str, Any]:
    """`rdm_regression` of many target RDMs on the same predictor RDMs, in one solve.

    One thin SVD of the centred predictors gives an orthonormal basis ``U`` of their span;
    every target's fit is its projection ``U' y`` (one GEMM for all targets), its explained
    sum of squares ``|U' y|^2`` and its residual ``SS_tot - |U' y|^2``. Used for the
    per-subject ROI fits, thousands of searchlights and permutation nulls.

    Args:
        targets: Target RDMs, shape (..., n_pairs) (e.g. (n_subjects, n_searchlights,
            n_pairs)), finite, none constant.
        predictors: Predictor RDMs, shape (n_pairs, p) or (n_pairs,); ``n_pairs > p + 1``.

    Returns:
        ``{"r2": (...), "adjusted_r2": (...), "coefficients": (..., p), "intercept": (...)}``,
        equal to `rdm_regression` of each target to rounding (about 1e-14).

    Raises:
        ValueError: On wrong shapes, non-finite values, a constant target (its index is
            named), or ``n_pairs <= p + 1``.

    Examples:
        >>> x = np.array([0.0, 1.0, 2.0, 3.0])
        >>> fit = batched_regression([[1.0, 3.0, 5.0, 8.0], [0.0, 1.0, 0.0, 1.0]], x)
        >>> fit["r2"].round(4), fit["coefficients"][:, 0].round(2)
        (array([0.9888, 0.2   ]), array([2.3, 0.2]))
    """
    y, leading = _as_targets(targets)
    x = _as_predictors(predictors, y.shape[1], "predictors")
    n, p = x.shape
    if n <= p + 1:
        raise ValueError(f"adjusted R^2 needs n_pairs > p + 1, got n_pairs={n} and p={p} predictors")
    basis = _Basis(x)
    y_mean = y.mean(axis=1)
    centred = y - y_mean[:, None]
    ss_total = np.einsum("ij,ij->i", centred, centred)
    projection = centred @ basis.u
    ss_residual = np.maximum(ss_total - np.einsum("ij,ij->i", projection, projection), 0.0)
    r2, adjusted = _r2(ss_residual, ss_total, n, p)
    coefficients = basis.coefficients(projection)
    intercept = y_mean - coefficients @ basis.x_mean
    return {
        "r2": r2.reshape(leading),
        "adjusted_r2": adjusted.reshape(leading),
        "coefficients": coefficients.reshape(*leading, p),
        "intercept": intercept.reshape(leading),
    }


def group_subsets(names: tuple) -> list[tuple]:
    """Non-empty subsets of ``names`` in `variance_partitioning`'s order (by size, then position).

    Examples:
        >>> group_subsets(("a", "b", "c"))
        [('a',), ('b',), ('c',), ('a', 'b'), ('a', 'c'), ('b', 'c'), ('a', 'b', 'c')]
    """
    masks = subset_indices(len(names))
    return [tuple(names[k] for k in range(len(names)) if mask >> k & 1) for mask in masks]


def subset_indices(n_groups: int) -> list[int]:
    """Bitmasks of the non-empty subsets of ``n_groups`` groups, in `group_subsets` order."""
    return sorted(range(1, 1 << n_groups), key=lambda m: (bin(m).count("1"), _subset_rank(m)))


def _checked_groups(groups: Mapping[Hashable, ArrayLike], n_pairs: int) -> tuple[tuple, list[np.ndarray]]:
    if not isinstance(groups, Mapping) or len(groups) == 0:
        raise ValueError("groups must be a non-empty mapping {name: predictor RDMs}")
    if len(groups) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS} groups are supported, got {len(groups)}")
    names = tuple(groups)
    blocks = [_as_predictors(groups[name], n_pairs, f"groups[{name!r}]") for name in names]
    p = sum(block.shape[1] for block in blocks)
    if n_pairs <= p + 1:
        raise ValueError(
            f"adjusted R^2 needs n_pairs > p + 1, got n_pairs={n_pairs} and p={p} predictors over all groups"
        )
    return names, blocks


def batched_variance_partitioning(
    targets: ArrayLike,
    groups: Mapping[Hashable, ArrayLike],
    *,
    adjusted: bool = True,
) -> dict[str, Any]:
    """`variance_partitioning` of many target RDMs among the same groups, in one solve per subset.

    Each of the ``2^g - 1`` subset models is one `batched_regression` over all targets (a
    group leaves a model as a whole, with all its RDMs); the Möbius inversion then runs on
    whole arrays.

    Args:
        targets: Target RDMs, shape (..., n_pairs), finite, none constant.
        groups: Ordered mapping group name -> (n_pairs, p_g) or (n_pairs,) predictor RDMs;
            1 to 16 groups, ``n_pairs > sum p_g + 1``.
        adjusted: Partition adjusted R^2 (default) or plain R^2.

    Returns:
        A dict; subsets are tuples of group names in `group_subsets` order:

        * ``"groups"``: the group names; ``"subsets"``: the list of subsets.
        * ``"r2"``, ``"adjusted_r2"``, ``"partition"``: arrays (n_subsets, ...), row ``i``
          for ``subsets[i]`` (the partition: variance shared by exactly those groups).
        * ``"unique"``: (n_groups, ...), the variance unique to each group.
        * ``"total"``: (...), ``R(all groups)``.

    Raises:
        ValueError: As `batched_regression` and `variance_partitioning`.

    Examples:
        >>> x1 = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
        >>> x2 = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
        >>> out = batched_variance_partitioning([x1 + x2, x2], {"a": x1, "b": x2}, adjusted=False)
        >>> out["unique"].round(3) + 0.0  # + 0.0: no negative zero
        array([[0.273, 0.   ],
               [0.727, 1.   ]])
    """
    y, leading = _as_targets(targets)
    names, blocks = _checked_groups(groups, y.shape[1])
    n_groups = len(names)
    n_subsets = 1 << n_groups
    r2 = np.zeros((n_subsets, y.shape[0]))
    adj = np.zeros((n_subsets, y.shape[0]))
    for mask in range(1, n_subsets):  # 2^g - 1 batched fits, each over all targets at once
        x = np.concatenate([blocks[k] for k in range(n_groups) if mask >> k & 1], axis=1)
        fit = batched_regression(y, x)
        r2[mask], adj[mask] = fit["r2"], fit["adjusted_r2"]
    explained = adj if adjusted else r2
    masks = np.arange(n_subsets)
    full = n_subsets - 1
    parts = explained[full] - explained[full ^ masks]  # g(A) = R(all) - R(all minus A)
    for k in range(n_groups):  # Möbius inversion over the subset lattice
        has_k = (masks >> k & 1).astype(bool)
        parts[has_k] -= parts[masks[has_k] ^ (1 << k)]
    order = subset_indices(n_groups)
    shape = (len(order), *leading)
    return {
        "groups": names,
        "subsets": group_subsets(names),
        "r2": r2[order].reshape(shape),
        "adjusted_r2": adj[order].reshape(shape),
        "partition": parts[order].reshape(shape),
        "unique": parts[[1 << k for k in range(n_groups)]].reshape(n_groups, *leading),
        "total": explained[full].reshape(leading),
    }


# ----------------------------------------------------------------------------------------
# noise ceiling and statistics
# ----------------------------------------------------------------------------------------


def r2_noise_ceiling(subject_rdms: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Noise ceiling of per-subject R^2: the R^2 of each subject's RDM from the group's.

    ``lower = mean_s corr(RDM_s, mean of the other subjects)^2`` and ``upper = mean_s
    corr(RDM_s, mean of all subjects)^2`` (Nili et al. 2014's leave-one-subject-out bounds,
    in the squared-Pearson units of a one-predictor regression R^2).

    Args:
        subject_rdms: (n_subjects, ..., n_pairs), n_subjects >= 2, finite.

    Returns:
        ``(lower, upper)``, each of shape (...) (floats for one region).

    Raises:
        ValueError: On fewer than 2 subjects, non-finite or constant RDMs.

    Examples:
        >>> lower, upper = r2_noise_ceiling([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
        >>> round(float(lower), 3), round(float(upper), 3)
        (0.25, 0.75)
    """
    rdms = numeric(np.asarray(subject_rdms), "subject_rdms")
    if rdms.ndim < 2 or rdms.shape[0] < 2:
        raise ValueError(f"subject_rdms must be (n_subjects >= 2, ..., n_pairs), got shape {rdms.shape}")
    n_subjects = rdms.shape[0]
    total = rdms.sum(axis=0)
    others = (total - rdms) / (n_subjects - 1)
    mean = total / n_subjects

    def r2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=-1, keepdims=True)
        b = b - b.mean(axis=-1, keepdims=True)
        denominator = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
        if np.any(denominator == 0):
            raise ValueError("a subject RDM (or the subjects' mean) is constant; its correlation is undefined")
        return (np.sum(a * b, axis=-1) / denominator) ** 2

    return r2(rdms, others).mean(axis=0), r2(rdms, mean).mean(axis=0)


def ttest_greater(values: ArrayLike, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-sample t-test across subjects that the mean is above 0 (one-sided).

    Args:
        values: e.g. unique variances, (n_subjects, ...); at least 2 along ``axis``.
        axis: the subject axis.

    Returns:
        ``(t, p)`` of the other axes' shape (scipy ``ttest_1samp``, ``alternative="greater"``).
    """
    from scipy import stats

    values = numeric(np.asarray(values), "values")
    if values.shape[axis] < 2:
        raise ValueError(f"a t-test needs at least 2 subjects along axis {axis}, got shape {values.shape}")
    result = stats.ttest_1samp(values, 0.0, axis=axis, alternative="greater")
    return np.asarray(result.statistic), np.asarray(result.pvalue)


def ttest_paired_greater(a: ArrayLike, b: ArrayLike, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paired t-test across subjects that ``a`` exceeds ``b`` (one-sided; scipy ``ttest_rel``)."""
    from scipy import stats

    a, b = numeric(np.asarray(a), "a"), numeric(np.asarray(b), "b")
    if a.shape != b.shape or a.shape[axis] < 2:
        raise ValueError(f"need two arrays of one shape with >= 2 subjects, got {a.shape} and {b.shape}")
    result = stats.ttest_rel(a, b, axis=axis, alternative="greater")
    return np.asarray(result.statistic), np.asarray(result.pvalue)


def fdr_correction(p_values: ArrayLike, axis: int = -1) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along ``axis`` (NaN entries are not tests).

    ``q_(i) = min_{j >= i} p_(j) m / j`` over the ``m`` finite p-values sorted ascending,
    capped at 1; reject where ``q <= alpha`` controls the false discovery rate at ``alpha``
    (as statsmodels' ``fdrcorrection`` and scipy's ``false_discovery_control``).

    Args:
        p_values: p-values in [0, 1], any shape; NaN where nothing was tested.
        axis: the axis of the family of tests (e.g. regions, searchlights).

    Returns:
        Adjusted p-values of the same shape (NaN kept).

    Examples:
        >>> fdr_correction([0.01, 0.04, 0.03, 0.5]).round(3)
        array([0.04 , 0.053, 0.053, 0.5  ])
    """
    p = np.asarray(p_values, dtype=np.float64)
    finite = p[np.isfinite(p)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        raise ValueError("p-values must lie in [0, 1]")
    moved = np.moveaxis(p, axis, -1)
    missing = np.isnan(moved)
    m = np.sum(~missing, axis=-1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, moved), axis=-1)
    ranked = np.take_along_axis(np.where(missing, np.inf, moved), order, axis=-1)
    ranks = np.arange(1, moved.shape[-1] + 1)
    scaled = ranked * m / ranks
    scaled = np.minimum.accumulate(scaled[..., ::-1], axis=-1)[..., ::-1]
    adjusted = np.empty_like(moved)
    np.put_along_axis(adjusted, order, np.minimum(scaled, 1.0), axis=-1)
    adjusted[missing] = np.nan
    return np.moveaxis(adjusted, -1, axis)


def _pair_positions(n: int) -> np.ndarray:
    """(n, n) int: the condensed index of pair (i, j), i != j (diagonal -1)."""
    rows, cols = np.triu_indices(n, 1)
    index = np.full((n, n), -1, dtype=np.int64)
    index[rows, cols] = np.arange(rows.size)
    index[cols, rows] = index[rows, cols]
    return index


def condition_permutations(n: int, n_permutations: int, seed: int) -> np.ndarray:
    """Condensed-RDM positions of ``n_permutations`` relabellings of the ``n`` conditions.

    Permuting condition labels (rows and columns of the square RDM together) is the null
    of RSA inference (Nili et al. 2014); shuffling the condensed entries independently, as
    the public dnn2brain code does, destroys the RDM's structure and gives a too-easy null.

    Returns:
        (n_permutations, n_pairs) int indices: ``target[..., positions[k]]`` is the target
        RDM of permutation ``k``.
    """
    rng = np.random.default_rng(seed)
    index = _pair_positions(n)
    rows, cols = np.triu_indices(n, 1)
    perms = np.argsort(rng.random((n_permutations, n)), axis=1)
    return index[perms[:, rows], perms[:, cols]]


def permutation_test(
    targets: ArrayLike,
    groups: Mapping[Hashable, ArrayLike],
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    adjusted: bool = True,
    chunk: int = 64,
) -> dict[str, Any]:
    """Condition-label permutation p-values of a variance partitioning (one-sided).

    The targets' conditions are relabelled ``n_permutations`` times (the predictors stay),
    every permuted target is partitioned in batched solves (``chunk`` permutations at a
    time), and ``p = (1 + #(null >= observed)) / (1 + n_permutations)``.

    Args:
        targets: (..., n_pairs) target RDMs (e.g. the subject mean per region or searchlight).
        groups: as `batched_variance_partitioning`.
        n_permutations, seed: the null's size and random seed.
        adjusted: partition adjusted R^2 (default) or plain R^2.
        chunk: permutations per batched solve (memory: chunk x targets x n_pairs floats).

    Returns:
        ``{"observed": batched_variance_partitioning(targets, groups),
        "total_p": (...), "partition_p": (n_subsets, ...), "unique_p": (n_groups, ...),
        "difference_p": (n_groups, n_groups, ...)}``; ``difference_p[i, j]`` tests
        ``unique_i - unique_j`` against its null (meaningful where it is positive).
    """
    y, leading = _as_targets(targets)
    observed = batched_variance_partitioning(y, groups, adjusted=adjusted)
    n = _n_conditions(y.shape[1])
    positions = condition_permutations(n, n_permutations, seed)
    unique = observed["unique"]
    difference = unique[:, None] - unique[None, :]
    counts = {"total": np.zeros_like(observed["total"]), "partition": np.zeros_like(observed["partition"]),
              "unique": np.zeros_like(unique), "difference": np.zeros_like(difference)}
    for start in range(0, n_permutations, chunk):
        block = positions[start:start + chunk]
        permuted = y[:, block].transpose(1, 0, 2)  # (chunk, m, n_pairs)
        null = batched_variance_partitioning(permuted, groups, adjusted=adjusted)
        counts["total"] += np.sum(null["total"] >= observed["total"], axis=0)
        counts["partition"] += np.sum(null["partition"] >= observed["partition"][:, None], axis=1)
        counts["unique"] += np.sum(null["unique"] >= unique[:, None], axis=1)
        null_difference = null["unique"][:, None] - null["unique"][None, :]
        counts["difference"] += np.sum(null_difference >= difference[:, :, None], axis=2)
    p = {name: (count + 1.0) / (n_permutations + 1.0) for name, count in counts.items()}
    reshape = lambda a, head: a.reshape((*head, *leading))  # noqa: E731
    g, s = len(observed["groups"]), len(observed["subsets"])
    observed = {**observed, **{k: reshape(observed[k], (s,)) for k in ("r2", "adjusted_r2", "partition")},
                "unique": reshape(unique, (g,)), "total": observed["total"].reshape(leading)}
    return {"observed": observed, "total_p": reshape(p["total"], ()), "partition_p": reshape(p["partition"], (s,)),
            "unique_p": reshape(p["unique"], (g,)), "difference_p": reshape(p["difference"], (g, g))}


def _n_conditions(n_pairs: int) -> int:
    n = int(round((1.0 + np.sqrt(1.0 + 8.0 * n_pairs)) / 2.0))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"a condensed RDM has n (n - 1) / 2 entries; {n_pairs} is not of that form")
    return n


def condition_bootstrap(
    targets: ArrayLike,
    groups: Mapping[Hashable, ArrayLike],
    *,
    n_bootstrap: int = 1000,
    ratio: float = 0.9,
    seed: int = 0,
    adjusted: bool = True,
) -> dict[str, Any]:
    """Bootstrap over conditions of a variance partitioning (Dwivedi et al. 2021's error bars).

    Each iteration keeps a random ``ratio`` of the conditions (without replacement, so no
    pair of identical conditions enters an RDM), takes the sub-RDMs of targets and
    predictors and partitions them in one batched solve over all targets.

    Args:
        targets: (..., n_pairs) target RDMs.
        groups: as `batched_variance_partitioning`.
        n_bootstrap: iterations.
        ratio: fraction of conditions kept per iteration, in (0, 1].
        seed: random seed.
        adjusted: partition adjusted R^2 (default) or plain R^2.

    Returns:
        ``{"unique": (n_bootstrap, n_groups, ...), "total": (n_bootstrap, ...),
        "unique_std": (n_groups, ...), "total_std": (...)}`` (std with ddof=1).
    """
    y, leading = _as_targets(targets)
    names, blocks = _checked_groups(groups, y.shape[1])
    n = _n_conditions(y.shape[1])
    keep = int(ratio * n)
    if not 0 < ratio <= 1 or keep < 3:
        raise ValueError(f"ratio must be in (0, 1] and keep >= 3 of the {n} conditions, got ratio={ratio}")
    rng = np.random.default_rng(seed)
    index = _pair_positions(n)
    unique, total = [], []
    for _ in range(n_bootstrap):  # each iteration has its own predictors: one batched solve each
        chosen = np.sort(rng.choice(n, keep, replace=False))
        rows, cols = np.triu_indices(keep, 1)
        pairs = index[chosen[rows], chosen[cols]]
        out = batched_variance_partitioning(
            y[:, pairs], {name: block[pairs] for name, block in zip(names, blocks)}, adjusted=adjusted
        )
        unique.append(out["unique"])
        total.append(out["total"])
    unique = np.stack(unique).reshape(n_bootstrap, len(names), *leading)
    total = np.stack(total).reshape(n_bootstrap, *leading)
    ddof = 1 if n_bootstrap > 1 else 0
    return {"unique": unique, "total": total, "unique_std": unique.std(axis=0, ddof=ddof),
            "total_std": total.std(axis=0, ddof=ddof)}

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

__all__ = ["rdm_regression", "variance_partitioning"]

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

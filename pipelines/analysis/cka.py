"""Centred kernel alignment (CKA) between representations (Kornblith et al., 2019).

Pure functions: arrays in, floats or arrays out, computed in float64. A representation is
a matrix ``x`` of shape ``(n_samples, n_features)``: one row per stimulus (the samples
must be the same stimuli, in the same order, in both representations), one column per
unit / channel. Activations of convolutional layers are flattened per stimulus first,
e.g. ``x.reshape(n_samples, -1)``. Inputs must be finite.

Definitions (project note ``metrics.md``, section 3). With the centring matrix
``H = I - 11ᵀ/n`` and Gram matrices ``K`` of ``x`` and ``L`` of ``y``::

    HSIC(K, L) = tr(K H L H) / (n - 1)²
    CKA(K, L)  = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L))

* Linear CKA uses ``K = x xᵀ``. With column-centred ``x`` and ``y`` this equals the
  feature-space form ``‖yᵀx‖_F² / (‖xᵀx‖_F ‖yᵀy‖_F)``, which costs O(n p²) instead of
  O(n² p) and is used when a representation has no more features than samples.
* RBF CKA uses ``K_ij = exp(-‖x_i - x_j‖² / (2 θ² m))`` where ``m`` is the median of all
  n² squared distances, the zeros of the diagonal included (Kornblith's ``gram_rbf``),
  and ``θ`` (``threshold``) is a fraction of that median distance.
* Debiased linear CKA replaces HSIC by its unbiased U-statistic estimator (Song et al.,
  2012; in the U-centred form of Székely & Rizzo, 2014), which removes the upward bias
  of linear CKA for finite n (e.g. CKA of independent random features is > 0).

Properties: linear CKA is invariant to orthogonal transforms and isotropic scaling of
either representation, but not to general invertible linear maps (unlike CCA). It lies
in [0, 1]; debiased CKA can be slightly negative.

Undefined values: a representation with no variance (all rows equal) makes every CKA
0/0, which is returned as NaN. See each function for its own cases.

:func:`cka_matrix` compares every layer of one network with every layer of another (or
of itself) and prepares each layer once; with ``device`` set it runs the same
computation in torch on that device (float64).

References:
    Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural network
    representations revisited. ICML 2019, PMLR 97: 3519-3529. arXiv:1905.00414.

    Gretton, A., Bousquet, O., Smola, A. & Schölkopf, B. (2005). Measuring statistical
    dependence with Hilbert-Schmidt norms. ALT 2005, LNCS 3734: 63-77.

    Song, L., Smola, A., Gretton, A., Bedo, J. & Borgwardt, K. (2012). Feature selection
    via dependence maximization. JMLR 13: 1393-1434.

    Székely, G. J. & Rizzo, M. L. (2014). Partial distance correlation with methods for
    dissimilarities. Ann. Statist. 42(6): 2382-2412.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = [
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "linear_cka",
    "rbf_cka",
    "debiased_linear_cka",
    "cka",
    "cka_matrix",
]

#: Every method understood by :func:`cka` and :func:`cka_matrix`, with its one-line definition:
#: the one list the ``CKAMethod`` lookup table is generated from.
METHOD_DESCRIPTIONS = {
    "linear": "linear CKA",
    "rbf": "RBF-kernel CKA, bandwidth 0.5 x median distance",
    "debiased": "debiased linear CKA (U-statistic HSIC)",
}
METHODS = tuple(METHOD_DESCRIPTIONS)


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------


def _as_features(values: ArrayLike, name: str) -> np.ndarray:
    """Converts ``values`` to a finite float64 array of shape (n_samples, n_features)."""
    if _is_tensor(values):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), got shape {array.shape}; "
            "flatten the unit axes first, e.g. x.reshape(n_samples, -1)"
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {array.shape})")
    return numeric(array, name)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold}")
    return threshold


def _min_samples(method: str) -> int:
    # The U-statistic needs n >= 4 (its normaliser is n (n - 3)); the others need 2.
    return 4 if method == "debiased" else 2


def _check_samples(shapes: Sequence[tuple[str, tuple[int, ...]]], method: str) -> int:
    """Checks that all representations have the same number of samples (rows)."""
    n = shapes[0][1][0]
    for name, shape in shapes[1:]:
        if shape[0] != n:
            raise ValueError(
                "all representations must have the same number of samples (rows), got "
                f"{shapes[0][0]} with shape {shapes[0][1]} and {name} with shape {shape}"
            )
    needed = _min_samples(method)
    if n < needed:
        raise ValueError(
            f"{method} CKA needs at least {needed} samples, got {n} "
            f"({shapes[0][0]} has shape {shapes[0][1]})"
        )
    return n


def _is_tensor(values: Any) -> bool:
    return type(values).__module__.split(".")[0] == "torch"


# ----------------------------------------------------------------------------------------
# array back-ends: the same algorithm in numpy (default) or torch (``device``)
# ----------------------------------------------------------------------------------------

#: Feature-form cross products are computed in blocks of at most this many columns per
#: side (a block is at most 4096² x 8 B = 128 MiB).
_BLOCK_COLUMNS = 4096


class _NumpyOps:
    """float64 numpy kernels used by the CKA core."""

    def asarray(self, values: ArrayLike, name: str) -> np.ndarray:
        return _as_features(values, name)

    @staticmethod
    def empty(n: int, p: int):
        return np.empty((n, p), dtype=np.float64)

    @staticmethod
    def centre_into(out, x) -> None:
        np.subtract(x, x.mean(axis=0), out=out)

    @staticmethod
    def centre(x):
        return x - x.mean(axis=0)

    @staticmethod
    def gram(xc):
        return xc @ xc.T  # symmetric rank-k update (BLAS syrk)

    @staticmethod
    def sq_norm(m) -> float:
        flat = m.reshape(-1)
        return float(np.dot(flat, flat))

    @staticmethod
    def dot(a, b) -> float:
        return float(np.dot(a.reshape(-1), b.reshape(-1)))

    @staticmethod
    def row_sq(x):
        return np.einsum("ij,ij->i", x, x)

    @staticmethod
    def diagonal(k):
        return np.diagonal(k).copy()

    @staticmethod
    def stack(vectors):
        return np.stack(vectors)

    @staticmethod
    def to_numpy(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    @staticmethod
    def block_sq_sums(m, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
        """Sums of squares of the blocks of ``m`` split at row / column starts."""
        squares = m * m
        return np.add.reduceat(np.add.reduceat(squares, rows, axis=0), cols, axis=1)

    @staticmethod
    def rbf_from_gram(g, s, threshold: float):
        """In place: squared distances from a Gram matrix and its diagonal, then the kernel."""
        d = g
        d *= -2.0
        d += s[:, None]
        d += s[None, :]
        np.maximum(d, 0.0, out=d)
        np.fill_diagonal(d, 0.0)
        median = float(np.median(d))
        if not median > 0:
            return None
        d *= -1.0 / (2.0 * threshold**2 * median)
        np.exp(d, out=d)
        return d

    @staticmethod
    def double_centre(k):
        """In place ``H K H`` (Kornblith's ``center_gram``)."""
        means = k.mean(axis=0)
        means -= means.mean() / 2.0
        k -= means[:, None]
        k -= means[None, :]
        return k


class _TorchOps(_NumpyOps):
    """The same kernels in torch, float64, on ``device``."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def asarray(self, values: ArrayLike, name: str):
        torch = self.torch
        if _is_tensor(values):
            if values.ndim != 2:
                raise ValueError(
                    f"{name} must be 2-D with shape (n_samples, n_features), got shape "
                    f"{tuple(values.shape)}; flatten the unit axes first, e.g. "
                    "x.reshape(n_samples, -1)"
                )
            if values.shape[1] == 0:
                raise ValueError(f"{name} has no features (shape {tuple(values.shape)})")
            tensor = values.detach().to(device=self.device, dtype=torch.float64)
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{name} contains non-finite values (NaN or inf)")
            return tensor
        return torch.from_numpy(_as_features(values, name)).to(self.device)

    def empty(self, n: int, p: int):
        return self.torch.empty((n, p), dtype=self.torch.float64, device=self.device)

    @staticmethod
    def centre_into(out, x) -> None:
        out.copy_(x - x.mean(dim=0, keepdim=True))

    @staticmethod
    def centre(x):
        return x - x.mean(dim=0, keepdim=True)

    def sq_norm(self, m) -> float:
        flat = m.reshape(-1)
        return float(self.torch.dot(flat, flat))

    def dot(self, a, b) -> float:
        return float(self.torch.dot(a.reshape(-1), b.reshape(-1)))

    @staticmethod
    def row_sq(x):
        return (x * x).sum(dim=1)

    @staticmethod
    def diagonal(k):
        return k.diagonal().clone()

    def stack(self, vectors):
        return self.torch.stack(vectors)

    @staticmethod
    def to_numpy(values) -> np.ndarray:
        return values.detach().cpu().numpy().astype(np.float64, copy=False)

    def block_sq_sums(self, m, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
        torch = self.torch

        def segments(starts: Sequence[int], size: int):
            bounds = list(starts) + [size]
            widths = torch.tensor([b - a for a, b in zip(bounds, bounds[1:])], device=m.device)
            return torch.repeat_interleave(torch.arange(len(starts), device=m.device), widths)

        squares = m * m
        by_row = torch.zeros((len(rows), m.shape[1]), dtype=m.dtype, device=m.device)
        by_row.index_add_(0, segments(rows, m.shape[0]), squares)
        blocks = torch.zeros((len(rows), len(cols)), dtype=m.dtype, device=m.device)
        blocks.index_add_(1, segments(cols, m.shape[1]), by_row)
        return self.to_numpy(blocks)

    def rbf_from_gram(self, g, s, threshold: float):
        d = g
        d.mul_(-2.0).add_(s[:, None]).add_(s[None, :]).clamp_(min=0.0)
        d.fill_diagonal_(0.0)
        flat = d.reshape(-1)
        size = flat.numel()
        # numpy's median: the mean of the two middle values for an even count.
        upper = flat.kthvalue(size // 2 + 1).values
        median = float(upper if size % 2 else (flat.kthvalue(size // 2).values + upper) / 2)
        if not median > 0:
            return None
        return d.mul_(-1.0 / (2.0 * threshold**2 * median)).exp_()

    @staticmethod
    def double_centre(k):
        means = k.mean(dim=0)
        means -= means.mean() / 2.0
        k -= means[:, None]
        k -= means[None, :]
        return k


def _ops(device: Any) -> _NumpyOps:
    return _NumpyOps() if device is None else _TorchOps(device)


# ----------------------------------------------------------------------------------------
# core: prepare each layer once, then all cross products
# ----------------------------------------------------------------------------------------


@dataclass
class _Side:
    """The layers of one side, each prepared once for all of its pairs.

    A linear-kernel layer with ``p <= n`` keeps its column-centred features as the
    column block ``starts[i]:starts[i] + widths[i]`` of ``z`` (all such layers side by
    side, so that their cross products are a few large matrix products); a wider layer,
    and every layer for ``"rbf"``, keeps its centred n x n Gram matrix in ``grams[i]``.
    ``self_sq[i]`` is ``<K_i, K_i>`` (= ‖xcᵀxc‖_F²; NaN until known), ``rows`` the squared
    row norms of xc, one row per layer (the diagonal of K; ``"debiased"`` only).
    """

    kinds: list  # "features", "gram" or "undefined" (RBF kernel with median distance 0)
    widths: list
    starts: list
    z: Any
    grams: list
    self_sq: np.ndarray
    rows: Any = None

    def features(self, i: int):
        return self.z[:, self.starts[i] : self.starts[i] + self.widths[i]]


def _prepare_side(
    ops: _NumpyOps, arrays: list, method: str, threshold: float, n: int, need_self: bool
) -> _Side:
    size = len(arrays)
    widths = [int(a.shape[1]) for a in arrays]
    kinds = ["gram" if method == "rbf" or p > n else "features" for p in widths]
    starts, total = [], 0
    for kind, p in zip(kinds, widths):
        starts.append(total if kind == "features" else -1)
        total += p if kind == "features" else 0
    side = _Side(
        kinds=kinds,
        widths=widths,
        starts=starts,
        z=ops.empty(n, total) if total else None,
        grams=[None] * size,
        self_sq=np.full(size, np.nan),
    )
    rows = []
    for i, x in enumerate(arrays):
        if kinds[i] == "features":
            xc = side.features(i)
            ops.centre_into(xc, x)
            if need_self:
                side.self_sq[i] = ops.sq_norm(xc.T @ xc)
            if method == "debiased":
                rows.append(ops.row_sq(xc))
            continue
        g = ops.gram(ops.centre(x))
        if method == "rbf":
            g = ops.rbf_from_gram(g, ops.diagonal(g), threshold)
            if g is None:  # median squared distance 0: more than half of the pairs coincide
                kinds[i] = "undefined"
                continue
            g = ops.double_centre(g)
        side.grams[i] = g
        side.self_sq[i] = ops.sq_norm(g)
        if method == "debiased":
            rows.append(ops.diagonal(g))
    if method == "debiased":
        side.rows = ops.stack(rows)
    return side


def _column_groups(side: _Side) -> list[list[int]]:
    """Consecutive feature-form layers, grouped into blocks of <= _BLOCK_COLUMNS columns."""
    groups: list[list[int]] = []
    width = 0
    for i, kind in enumerate(side.kinds):
        if kind != "features":
            continue
        if groups and width + side.widths[i] <= _BLOCK_COLUMNS:
            groups[-1].append(i)
            width += side.widths[i]
        else:
            groups.append([i])
            width = side.widths[i]
    return groups


def _columns(side: _Side, group: list[int]) -> tuple[slice, list[int]]:
    first = side.starts[group[0]]
    last = side.starts[group[-1]] + side.widths[group[-1]]
    return slice(first, last), [side.starts[i] - first for i in group]


def _cross_products(ops: _NumpyOps, a: _Side, b: _Side, symmetric: bool) -> np.ndarray:
    """``<K_i, L_j>`` for every pair; for ``symmetric`` only the upper triangle is computed."""
    size_a, size_b = len(a.kinds), len(b.kinds)
    xty = np.full((size_a, size_b), np.nan)
    # feature x feature: blocks of one large product each (syrk on diagonal blocks)
    groups_a, groups_b = _column_groups(a), _column_groups(b)
    for index_a, group_a in enumerate(groups_a):
        cols_a, starts_a = _columns(a, group_a)
        block_a = a.z[:, cols_a]
        for index_b, group_b in enumerate(groups_b):
            if symmetric and index_b < index_a:
                continue
            cols_b, starts_b = _columns(b, group_b)
            if symmetric and index_b == index_a:
                product = block_a.T @ block_a
            else:
                product = block_a.T @ b.z[:, cols_b]
            xty[np.ix_(group_a, group_b)] = ops.block_sq_sums(product, starts_a, starts_b)
    # pairs with a Gram-form layer
    for i, kind_a in enumerate(a.kinds):
        for j in range(i if symmetric else 0, size_b):
            kind_b = b.kinds[j]
            if "undefined" in (kind_a, kind_b) or kind_a == kind_b == "features":
                continue
            if symmetric and i == j:
                xty[i, j] = a.self_sq[i]
            elif kind_a == kind_b == "gram":
                xty[i, j] = ops.dot(a.grams[i], b.grams[j])
            else:
                gram, features = (
                    (a.grams[i], b.features(j)) if kind_a == "gram" else (b.grams[j], a.features(i))
                )
                xty[i, j] = ops.dot(gram @ features, features)  # <K, ffᵀ> = tr(fᵀ K f)
    return xty


def _mirror(values: np.ndarray) -> np.ndarray:
    lower = np.tril_indices(values.shape[0], -1)
    values[lower] = values.T[lower]
    return values


def _debias(xty: np.ndarray, rows_dot: np.ndarray, totals: np.ndarray, n: int) -> np.ndarray:
    """Kornblith's ``_debiased_dot_product_similarity_helper`` (U-statistic HSIC, scaled)."""
    return xty - n / (n - 2.0) * rows_dot + totals / ((n - 1.0) * (n - 2.0))


def _cka_core(
    ops: _NumpyOps, arrays_a: list, arrays_b: list | None, method: str, threshold: float, n: int
) -> np.ndarray:
    """CKA matrix between validated layer lists (``arrays_b=None``: a with itself)."""
    symmetric = arrays_b is None
    a = _prepare_side(ops, arrays_a, method, threshold, n, need_self=not symmetric)
    b = a if symmetric else _prepare_side(ops, arrays_b, method, threshold, n, need_self=True)
    xty = _cross_products(ops, a, b, symmetric)
    if symmetric:
        xty = _mirror(xty)
        diag = np.diag(xty).copy()
        a.self_sq = np.where(np.isnan(a.self_sq), diag, a.self_sq)
    self_a, self_b = a.self_sq, b.self_sq
    if method == "debiased":
        rows_dot = ops.to_numpy(a.rows @ b.rows.T)
        totals_a = ops.to_numpy(a.rows.sum(1))
        totals_b = totals_a if symmetric else ops.to_numpy(b.rows.sum(1))
        xty = _debias(xty, rows_dot, np.outer(totals_a, totals_b), n)
        self_a = _debias(self_a, ops.to_numpy((a.rows * a.rows).sum(1)), totals_a**2, n)
        self_b = self_a if symmetric else _debias(
            self_b, ops.to_numpy((b.rows * b.rows).sum(1)), totals_b**2, n
        )
    defined = (self_a[:, None] > 0) & (self_b[None, :] > 0)
    denominator = np.sqrt(np.where(defined, np.outer(self_a, self_b), 1.0))
    out = np.where(defined, xty / denominator, np.nan)
    if symmetric:
        out = _mirror(out)
        np.fill_diagonal(out, np.where(self_a > 0, 1.0, np.nan))
    return out


def _validated(ops: _NumpyOps, named: list, method: str) -> tuple[list, int]:
    arrays = [ops.asarray(values, name) for name, values in named]
    n = _check_samples([(name, tuple(x.shape)) for (name, _), x in zip(named, arrays)], method)
    return arrays, n


def _pair(x: ArrayLike, y: ArrayLike, method: str, threshold: float = 0.5) -> float:
    ops = _NumpyOps()
    (x, y), n = _validated(ops, [("x", x), ("y", y)], method)
    return float(_cka_core(ops, [x], [y], method, threshold, n)[0, 0])


# ----------------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------------


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA between two representations of the same samples (Kornblith et al., 2019).

    Both inputs are centred over samples, then::

        CKA = ‖yᵀx‖_F² / (‖xᵀx‖_F ‖yᵀy‖_F) = <HKH, HLH> / (‖HKH‖_F ‖HLH‖_F),  K = xxᵀ, L = yyᵀ

    A representation with no more features than samples enters in feature-space form
    (O(n p²) time, O(p²) memory); a wider one through its n x n Gram matrix (O(n² p) time,
    8 n² bytes). Both forms give the same value to rounding (about 1e-15).

    Args:
        x: First representation, shape (n_samples, p1), any units.
        y: Second representation, shape (n_samples, p2), any units; row ``i`` must be the
            same sample (stimulus) as row ``i`` of ``x``.

    Returns:
        Linear CKA, a float in [0, 1] (up to rounding); NaN if ``x`` or ``y`` has no
        variance (all rows equal).

    Raises:
        ValueError: If an input is not 2-D, has no columns or non-finite values, if the
            numbers of rows differ, or if there are fewer than 2 samples.
        TypeError: On non-numeric input.

    Examples:
        >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> round(linear_cka(x, 2.0 * x + 5.0), 12)
        1.0
    """
    return _pair(x, y, "linear")


def rbf_cka(x: ArrayLike, y: ArrayLike, threshold: float = 0.5) -> float:
    """CKA with Gaussian (RBF) kernels and the median heuristic (Kornblith et al., 2019).

    ::

        D_ij = ‖x_i - x_j‖²,   m = median of all n² entries of D (diagonal zeros included)
        K_ij = exp(-D_ij / (2 θ² m)),   θ = threshold
        CKA  = <HKH, HLH> / (‖HKH‖_F ‖HLH‖_F)

    This reproduces Kornblith's reference ``gram_rbf`` + ``center_gram`` + ``cka``
    (``θ = 0.5`` is the value of their demo). Squared distances are computed with one
    matrix product from the column-centred features (translation-invariant, but less
    cancellation than from raw features), clamped at 0, and the diagonal is set to exactly
    0; this only removes rounding error from the reference's values. Cost: O(n² (p + 1))
    time; 8 n² bytes per kernel (both are kept) plus a temporary n² copy for the median.

    Args:
        x: First representation, shape (n_samples, p1), any units.
        y: Second representation, shape (n_samples, p2); rows are the same samples as
            in ``x``.
        threshold: Bandwidth as a fraction ``θ`` of the median distance, > 0.

    Returns:
        RBF CKA, a float in [0, 1] (up to rounding). NaN if the median squared distance
        of ``x`` or ``y`` is 0 (more than half of the sample pairs coincide, e.g. constant
        input), where the kernel is undefined.

    Raises:
        ValueError: On inputs that are not 2-D, non-finite or with different numbers of
            rows, fewer than 2 samples, or a threshold that is not positive.
        TypeError: On non-numeric input.

    Examples:
        >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> rbf_cka(x, x @ np.array([[0.0, -1.0], [1.0, 0.0]]))  # rotation: same kernel
        1.0
    """
    return _pair(x, y, "rbf", _check_threshold(threshold))


def debiased_linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Debiased linear CKA: CKA built from unbiased HSIC estimates (Kornblith et al., 2019).

    HSIC is replaced by its U-statistic estimator (Song et al., 2012), computed as in
    Kornblith's ``feature_space_linear_cka(..., debiased=True)``: with centred features,
    row squared norms ``s_x`` and ``‖x‖² = Σ s_x``::

        h(x, y) = ‖yᵀx‖_F² - n/(n-2) · s_xᵀ s_y + ‖x‖² ‖y‖² / ((n-1)(n-2))
        CKA_u   = h(x, y) / sqrt(h(x, x) · h(y, y))

    which equals ``<K̃, L̃> / (‖K̃‖ ‖L̃‖)`` with U-centred Gram matrices (zero diagonal;
    Székely & Rizzo, 2014). Its terms nearly cancel, so everything is float64. For
    independent representations it is close to 0 where linear CKA is biased upwards; for
    large n it approaches linear CKA.

    Args:
        x: First representation, shape (n_samples, p1), any units.
        y: Second representation, shape (n_samples, p2); rows are the same samples as
            in ``x``.

    Returns:
        Debiased CKA, a float; it can be slightly negative. NaN when a denominator term
        ``h(x, x)`` or ``h(y, y)`` is <= 0: it is >= 0 in exact arithmetic, and 0 (or
        rounding noise) for degenerate inputs such as a representation without variance.

    Raises:
        ValueError: On inputs that are not 2-D, non-finite or with different numbers of
            rows, or fewer than 4 samples (the U-statistic is normalised by n (n - 3)).
        TypeError: On non-numeric input.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((2000, 5))
        >>> abs(debiased_linear_cka(x, rng.standard_normal((2000, 5)))) < 0.01
        True
    """
    return _pair(x, y, "debiased")


def cka(x: ArrayLike, y: ArrayLike, method: str = "linear", *, threshold: float = 0.5) -> float:
    """CKA between two representations with the named method.

    Args:
        x: First representation, shape (n_samples, p1).
        y: Second representation, shape (n_samples, p2), same samples as ``x``.
        method: ``"linear"`` (:func:`linear_cka`), ``"rbf"`` (:func:`rbf_cka`) or
            ``"debiased"`` (:func:`debiased_linear_cka`).
        threshold: RBF bandwidth as a fraction of the median distance (``"rbf"`` only).

    Returns:
        The CKA value as returned by the chosen function.

    Raises:
        ValueError: On an unknown method, or as raised by the chosen function.

    Examples:
        >>> x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
        >>> round(cka(x, x, method="linear"), 12)
        1.0
    """
    method = _check_method(method)
    if method == "linear":
        return linear_cka(x, y)
    if method == "rbf":
        return rbf_cka(x, y, threshold)
    return debiased_linear_cka(x, y)


def cka_matrix(
    layers_a: Sequence[ArrayLike],
    layers_b: Sequence[ArrayLike] | None = None,
    method: str = "linear",
    device: Any = None,
    *,
    threshold: float = 0.5,
) -> np.ndarray:
    """CKA between every layer of ``layers_a`` and every layer of ``layers_b``.

    Each layer is validated, centred and prepared once, not once per pair. Layers with no
    more units than samples are centred side by side into one matrix ``Z`` (n x Σp), and
    all their cross products ``‖x_iᵀy_j‖_F²`` are block sums of squares of a few large
    products ``Z_aᵀZ_b`` (``ZᵀZ``, a BLAS syrk, when comparing a side with itself; at most
    4096 columns per block). A wider layer, and every layer for ``"rbf"``, keeps its
    centred n x n Gram matrix and meets other layers through ``<K, L>`` or
    ``tr(yᵀ K y)``. With ``layers_b=None`` the layers of ``layers_a`` are compared with
    each other: only the upper triangle is computed and mirrored, so the result is exactly
    symmetric with a diagonal of exactly 1 (NaN for a layer without variance; see the
    single-pair functions for all undefined cases). Entry ``[i, j]`` equals
    ``cka(layers_a[i], layers_b[j], method)`` to rounding.

    Memory: one centred float64 copy of every layer, plus 8 n² bytes per Gram-form layer
    (128 MB per layer at n = 4000), plus one product block (at most 128 MiB).

    Args:
        layers_a: Representations, each of shape (n_samples, p_i); all layers (of both
            sequences) must have the same samples in the same order.
        layers_b: Second sequence of representations, or None to compare ``layers_a``
            with itself.
        method: ``"linear"``, ``"rbf"`` or ``"debiased"`` (see :func:`cka`).
        device: None for numpy, or a torch device (e.g. ``"cuda"``, ``"cuda:1"``): the
            same computation then runs in torch, float64, on that device; numpy arrays
            are copied there, torch tensors are moved.
        threshold: RBF bandwidth as a fraction of the median distance (``"rbf"`` only).

    Returns:
        CKA values, shape (len(layers_a), len(layers_b)) (or (len(layers_a),) * 2),
        float64 numpy array.

    Raises:
        ValueError: On an unknown method, an empty sequence, a layer that is not 2-D or
            has non-finite values, layers with different numbers of samples (the message
            names the layer and its shape), or too few samples for the method.
        TypeError: On non-numeric layers.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((50, 4))
        >>> cka_matrix([x, 3.0 * x, x[:, :2]]).round(3)
        array([[1.   , 1.   , 0.611],
               [1.   , 1.   , 0.611],
               [0.611, 0.611, 1.   ]])
    """
    method = _check_method(method)
    threshold = _check_threshold(threshold)
    ops = _ops(device)
    named_a = [(f"layers_a[{i}]", x) for i, x in enumerate(_as_sequence(layers_a, "layers_a"))]
    named_b = []
    if layers_b is not None:
        named_b = [(f"layers_b[{j}]", y) for j, y in enumerate(_as_sequence(layers_b, "layers_b"))]
    arrays, n = _validated(ops, named_a + named_b, method)
    arrays_a, arrays_b = arrays[: len(named_a)], arrays[len(named_a) :]
    if layers_b is None:
        return _cka_core(ops, arrays_a, None, method, threshold, n)
    return _cka_core(ops, arrays_a, arrays_b, method, threshold, n)


def _as_sequence(layers: Any, name: str) -> list:
    if isinstance(layers, np.ndarray) or _is_tensor(layers) or not isinstance(layers, Sequence):
        raise TypeError(
            f"{name} must be a sequence (list or tuple) of 2-D arrays, got {type(layers).__name__}"
        )
    if len(layers) == 0:
        raise ValueError(f"{name} is empty: at least one layer is needed")
    return list(layers)

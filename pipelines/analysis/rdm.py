"""Representational dissimilarity matrices (RDMs).

Pure functions, arrays in and arrays out. Computations run in float64 unless a caller
asks for float32, on numpy (BLAS GEMM) or, when a CUDA ``device`` is given, on torch.
No Python loop runs over stimuli pairs or channels; the only loops are over the rows of
an RDM when its upper triangle is copied out (one vectorised slice per row) and over
cross-validation folds.

Conventions shared by every function:

* ``patterns`` has shape ``(n_stimuli, n_channels)`` (``K x P`` in the note): one row
  per stimulus (condition), one column per channel (unit, voxel, neuron).
* An RDM is stored *condensed*: the strict upper triangle (``k=1``) of the symmetric
  ``(n, n)`` matrix read row by row, a vector of length ``n_pairs = n (n - 1) / 2``.
  This is the order of :func:`scipy.spatial.distance.squareform` and of rsatoolbox's
  ``RDMs.dissimilarities``. Entry ``(i, j)``, ``i < j``, sits at index
  ``n i - i (i + 1) / 2 + j - i - 1``.
* Distances follow rsatoolbox 0.3.2 (``rsatoolbox.rdm.calc``) exactly, see :func:`rdm`.

References:
    Kriegeskorte, N., Mur, M. & Bandettini, P. (2008). Representational similarity
    analysis - connecting the branches of systems neuroscience. Front. Syst. Neurosci.
    2: 4.

    Walther, A., Nili, H., Ejaz, N., Alink, A., Kriegeskorte, N. & Diedrichsen, J.
    (2016). Reliability of dissimilarity measures for multi-voxel pattern analysis.
    NeuroImage 137: 188-200.

    Nili, H., Wingfield, C., Walther, A., Su, L., Marslen-Wilson, W. & Kriegeskorte, N.
    (2014). A toolbox for representational similarity analysis. PLoS Comput. Biol.
    10(4): e1003553.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = ["METHODS", "METHOD_DESCRIPTIONS", "METHOD_REQUIREMENTS", "square", "condensed", "n_from_pairs", "rdm"]

#: Every dissimilarity measure understood by :func:`rdm`, with its one-line definition: the one
#: list the ``RDMMethod`` lookup table is generated from.
METHOD_DESCRIPTIONS = {
    "euclidean": "squared euclidean distance divided by the number of units",
    "correlation": "1 - Pearson r between the two activation patterns",
    "mahalanobis": "squared Mahalanobis distance per unit under a noise precision",
    "crossnobis": "cross-validated Mahalanobis distance over folds (Walther et al. 2016)",
}
METHODS = tuple(METHOD_DESCRIPTIONS)
#: Inputs a method needs besides one pattern per stimulus (see :func:`rdm`).
METHOD_REQUIREMENTS = {"mahalanobis": ("noise_precision",), "crossnobis": ("conditions", "folds")}


# ----------------------------------------------------------------------------------------
# condensed <-> square
# ----------------------------------------------------------------------------------------


def n_from_pairs(n_pairs: int) -> int:
    """Number of stimuli ``n`` of a condensed RDM with ``n_pairs = n (n - 1) / 2`` entries.

    Args:
        n_pairs: Length of a condensed RDM vector.

    Returns:
        The number of stimuli ``n >= 2``.

    Raises:
        ValueError: If ``n_pairs`` is not ``n (n - 1) / 2`` for an integer ``n >= 2``.

    Examples:
        >>> n_from_pairs(6)
        4
    """
    n_pairs = int(n_pairs)
    n = int(round((1.0 + np.sqrt(1.0 + 8.0 * n_pairs)) / 2.0))
    if n < 2 or n * (n - 1) // 2 != n_pairs:
        raise ValueError(
            f"a condensed RDM has n (n - 1) / 2 entries for some n >= 2; length {n_pairs} "
            "is not of that form"
        )
    return n


def _triu_rows(matrix: np.ndarray) -> np.ndarray:
    """Upper triangle (k=1) of a square numpy matrix, row by row, as a new 1-D array.

    One contiguous slice copy per row (``n`` vectorised copies); faster than a boolean
    mask (which needs an ``n x n`` mask) and than ``triu_indices`` fancy indexing.
    """
    n = matrix.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=matrix.dtype)
    start = 0
    for i in range(n - 1):
        stop = start + n - i - 1
        out[start:stop] = matrix[i, i + 1 :]
        start = stop
    return out


def condensed(matrix: ArrayLike) -> np.ndarray:
    """Condensed vector of a square RDM: its strict upper triangle, row by row.

    Only the upper triangle is read; symmetry and the diagonal are not checked (as in
    rsatoolbox's ``_extract_triu_``). NaN entries are kept.

    Args:
        matrix: Square RDM, shape (n, n), n >= 2.

    Returns:
        The condensed RDM, shape (n (n - 1) / 2,), in
        :func:`scipy.spatial.distance.squareform` order, float64 unless ``matrix`` is
        float32.

    Raises:
        ValueError: If ``matrix`` is not a square 2-D array with n >= 2.

    Examples:
        >>> condensed(np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]]))
        array([1., 2., 3.])
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"matrix must be square with shape (n, n), n >= 2, got {matrix.shape}")
    if matrix.dtype != np.float32:
        matrix = matrix.astype(np.float64, copy=False)
    return _triu_rows(matrix)


def square(rdm: ArrayLike) -> np.ndarray:
    """Square symmetric RDM with a zero diagonal from its condensed vector.

    Args:
        rdm: Condensed RDM, shape (n (n - 1) / 2,). NaN entries are kept (mirrored).

    Returns:
        The RDM as a matrix, shape (n, n), symmetric, zero diagonal, float64 unless
        ``rdm`` is float32.

    Raises:
        ValueError: If ``rdm`` is not 1-D or its length is not n (n - 1) / 2.

    Examples:
        >>> square(np.array([1.0, 2.0, 3.0]))
        array([[0., 1., 2.],
               [1., 0., 3.],
               [2., 3., 0.]])
    """
    vector = np.asarray(rdm)
    if vector.ndim != 1:
        raise ValueError(f"rdm must be 1-D with shape (n_pairs,), got shape {vector.shape}")
    if vector.dtype != np.float32:
        vector = vector.astype(np.float64, copy=False)
    n = n_from_pairs(vector.shape[0])
    upper = np.zeros((n, n), dtype=vector.dtype)
    start = 0
    for i in range(n - 1):
        stop = start + n - i - 1
        upper[i, i + 1 :] = vector[start:stop]
        start = stop
    return upper + upper.T


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _as_patterns(patterns: ArrayLike, dtype: np.dtype) -> np.ndarray:
    """Validates a finite numeric (n_rows, n_channels) array and casts it to ``dtype``."""
    array = np.asarray(patterns)
    if array.ndim != 2:
        raise ValueError(
            "patterns must be 2-D with shape (n_stimuli, n_channels), got shape "
            f"{array.shape}"
        )
    if array.shape[1] < 1:
        raise ValueError(f"patterns has no channels (shape {array.shape})")
    return numeric(array, "patterns", dtype=dtype)


def _as_labels(labels: ArrayLike, name: str, n_rows: int) -> np.ndarray:
    """Validates a 1-D label vector with one entry per row of ``patterns``."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n_rows:
        raise ValueError(
            f"{name} must be 1-D with one entry per row of patterns ({n_rows}), got "
            f"shape {array.shape}"
        )
    return array


def _check_precision(noise_precision: ArrayLike, n_channels: int, dtype: np.dtype) -> np.ndarray:
    """Validates a finite symmetric (P, P) noise precision matrix."""
    precision = np.asarray(noise_precision)
    if precision.shape != (n_channels, n_channels):
        raise ValueError(
            f"noise_precision must have shape (n_channels, n_channels) = "
            f"({n_channels}, {n_channels}), got {precision.shape}"
        )
    precision = precision.astype(dtype, copy=False)
    if not np.all(np.isfinite(precision)):
        raise ValueError("noise_precision contains non-finite values (NaN or inf)")
    scale = float(np.max(np.abs(precision))) if precision.size else 0.0
    if not np.allclose(precision, precision.T, rtol=0.0, atol=1e-10 * max(scale, 1e-300)):
        raise ValueError("noise_precision must be symmetric (a precision = inverse covariance)")
    return precision


def _group_means(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of the rows of ``values`` per label, rows in sorted-label order.

    Returns:
        ``(means, counts)`` with shapes (n_labels, P) and (n_labels,).
    """
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse.reshape(-1), kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sums = np.add.reduceat(values[order], starts, axis=0)
    return sums / counts[:, None].astype(values.dtype), counts


# ----------------------------------------------------------------------------------------
# device handling
# ----------------------------------------------------------------------------------------


def _is_cuda(device: Any) -> bool:
    """True if ``device`` names a CUDA device (``"cuda"``, ``"cuda:1"``, torch.device)."""
    return device is not None and str(device).startswith("cuda")


def _to_backend(array: np.ndarray, device: Any):
    """``array`` as a torch tensor on ``device`` (torch path) or unchanged (numpy path)."""
    if device is None:
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _triu(matrix, device: Any) -> np.ndarray:
    """Condensed upper triangle of a numpy matrix or torch tensor, as numpy."""
    if device is None:
        return _triu_rows(matrix)
    import torch

    n = matrix.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1, device=matrix.device)
    return matrix[rows, cols].cpu().numpy()


# ----------------------------------------------------------------------------------------
# kernels: written with operations numpy arrays and torch tensors share (@, .T,
# .diagonal(), .mean(0), .sum(1), indexing), so one code path serves both backends
# ----------------------------------------------------------------------------------------


def _squared_distances(kernel_ab, diag_a, diag_b):
    """Distances ``K_ii + K_jj - K_ij - K_ji`` from a kernel, as a new full matrix.

    With ``K = kernel_ab = A M B^T`` and ``diag_a = diag_b = diag(K)`` this is
    rsatoolbox's crossnobis ``(a_i - a_j)' M (b_i - b_j)``.
    """
    distances = kernel_ab + kernel_ab.T
    distances *= -1.0
    distances += diag_a[:, None]
    distances += diag_b[None, :]
    return distances


def _euclidean_gram(x, precision):
    """Gram matrix ``X M X'`` of column-centred patterns and its diagonal (squared norms).

    The columns are centred over stimuli first: distances are invariant to a common
    shift of all patterns, and centring removes the catastrophic cancellation of the
    GEMM form ``|x_i|^2 + |x_j|^2 - 2 x_i'x_j`` when the patterns share a large offset.
    """
    x = x - x.mean(0)[None, :]
    gram = x @ x.T if precision is None else (x @ precision) @ x.T
    norms = gram.diagonal().clone() if hasattr(gram, "clone") else gram.diagonal().copy()
    return gram, norms


def _correlation_gram(x):
    """Correlation matrix ``r_ij`` of the patterns, constant patterns at correlation 0.

    Each pattern is centred over channels and scaled to unit length; a constant pattern
    (all channels equal, decided on the input values) is left as the zero vector, so its
    correlation with everything is 0. Returns ``(r, constant)``; the constant-constant
    pairs are set to distance 0 by the caller.
    """
    constant = (x == x[:, :1]).all(1)
    x = x - x.mean(1)[:, None]
    norms = (x * x).sum(1) ** 0.5
    norms[constant] = 1.0
    x = x / norms[:, None]
    x[constant] = 0.0
    return x @ x.T, constant


def _triu_affine(gram, scale: float, shift: float, terms, lower: float, upper: float | None):
    """Condensed ``clip(scale * gram_ij + shift + t_i + t_j, lower, upper)``, ``i < j``.

    numpy: fused row by row (each row slice stays in cache: one pass over half of the
    ``n x n`` matrix instead of several passes over all of it). torch: whole-matrix
    operations on the device, then the triangle is copied back. ``terms`` may be None.
    """
    if isinstance(gram, np.ndarray):
        n = gram.shape[0]
        out = np.empty(n * (n - 1) // 2, dtype=gram.dtype)
        start = 0
        for i in range(n - 1):
            stop = start + n - i - 1
            row = out[start:stop]
            np.multiply(gram[i, i + 1 :], scale, out=row)
            if terms is not None:
                row += terms[i + 1 :]
                row += terms[i] + shift
            elif shift:
                row += shift
            np.clip(row, lower, upper, out=row)
            start = stop
        return out
    matrix = gram * scale + shift
    if terms is not None:
        matrix += terms[:, None]
        matrix += terms[None, :]
    return np.clip(_triu(matrix, matrix.device), lower, upper)


def _crossnobis_fold_kernels(train, test, precision):
    """Crossnobis distances of one fold, ``(a_i - a_j)' M (b_i - b_j)``, full matrix.

    ``train`` (A) and ``test`` (B) are (n_conditions, P). Both are column-centred
    separately, which leaves every ``a_i - a_j`` and ``b_i - b_j`` unchanged.
    """
    train = train - train.mean(0)[None, :]
    test = test - test.mean(0)[None, :]
    kernel = (train @ precision) @ test.T if precision is not None else train @ test.T
    diagonal = kernel.diagonal()
    return _squared_distances(kernel, diagonal, diagonal)


# ----------------------------------------------------------------------------------------
# public dispatcher
# ----------------------------------------------------------------------------------------


def _crossnobis(
    x: np.ndarray,
    conditions: np.ndarray,
    folds: np.ndarray | None,
    precision: np.ndarray | None,
    device: Any,
) -> np.ndarray:
    """Leave-one-fold-out crossnobis RDM, see :func:`rdm`."""
    cond_values, cond_index = np.unique(conditions, return_inverse=True)
    cond_index = cond_index.reshape(-1)
    n_cond = cond_values.shape[0]
    if n_cond < 2:
        raise ValueError(f"crossnobis needs at least 2 distinct conditions, got {n_cond}")
    if folds is None:
        # rsatoolbox's default: the k-th observation of every condition forms fold k,
        # which needs equal observation counts per condition.
        counts = np.bincount(cond_index, minlength=n_cond)
        if np.any(counts != counts[0]):
            raise ValueError(
                "folds=None assigns the k-th observation of each condition to fold k, "
                "which needs the same number of observations per condition; got counts "
                f"from {counts.min()} to {counts.max()}. Pass folds explicitly."
            )
        order = np.argsort(cond_index, kind="stable")
        fold_index = np.empty_like(cond_index)
        fold_index[order] = np.arange(cond_index.shape[0]) % counts[0]
        n_folds = int(counts[0])
    else:
        _, fold_index = np.unique(folds, return_inverse=True)
        fold_index = fold_index.reshape(-1)
        n_folds = int(fold_index.max()) + 1
    if n_folds < 2:
        raise ValueError(f"crossnobis needs at least 2 folds, got {n_folds}")

    # Sums and counts per (fold, condition) cell, in one sort + reduceat.
    cell = fold_index * n_cond + cond_index
    cell_counts = np.bincount(cell, minlength=n_folds * n_cond).reshape(n_folds, n_cond)
    if np.any(cell_counts == 0):
        fold_id, cond_id = np.argwhere(cell_counts == 0)[0]
        raise ValueError(
            "crossnobis needs every condition in every fold; e.g. condition "
            f"{cond_values[cond_id]!r} has no observation in fold number {fold_id} "
            f"({int((cell_counts == 0).sum())} empty (fold, condition) cells)"
        )
    order = np.argsort(cell, kind="stable")
    starts = np.concatenate(([0], np.cumsum(cell_counts.ravel())[:-1]))
    sums = np.add.reduceat(x[order], starts, axis=0).reshape(n_folds, n_cond, -1)
    total_sums = sums.sum(0)
    cell_counts = cell_counts.astype(x.dtype)
    total_counts = cell_counts.sum(0)

    precision_b = None if precision is None else _to_backend(precision, device)
    accumulated = None
    for fold in range(n_folds):
        # Train = mean over all observations outside the fold (as rsatoolbox's
        # average_dataset_by on the pooled training folds), test = mean inside it.
        train = (total_sums - sums[fold]) / (total_counts - cell_counts[fold])[:, None]
        test = sums[fold] / cell_counts[fold][:, None]
        fold_rdm = _crossnobis_fold_kernels(
            _to_backend(train, device), _to_backend(test, device), precision_b
        )
        accumulated = fold_rdm if accumulated is None else accumulated + fold_rdm
    accumulated /= float(n_folds * x.shape[1])
    return _triu(accumulated, device)


def rdm(
    patterns: ArrayLike,
    method: str = "correlation",
    *,
    conditions: ArrayLike | None = None,
    folds: ArrayLike | None = None,
    noise_precision: ArrayLike | None = None,
    device: Any = None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Representational dissimilarity matrix of a set of patterns (condensed).

    Definitions (rsatoolbox 0.3.2 ``calc_rdm``; ``x_i`` is row ``i``, ``P`` channels):

    * ``"euclidean"``: *squared* Euclidean distance per channel,
      ``d_ij = |x_i - x_j|^2 / P`` (rsatoolbox labels it "squared euclidean").
    * ``"correlation"``: ``d_ij = 1 - r_ij``, Pearson r of the two patterns across
      channels, in ``[0, 2]``.
    * ``"mahalanobis"``: ``d_ij = (x_i - x_j)' L (x_i - x_j) / P`` with ``L`` the noise
      *precision* ``noise_precision``; without it identical to ``"euclidean"``.
    * ``"crossnobis"`` (Walther et al., 2016): leave-one-fold-out cross-validated
      Mahalanobis distance. For each fold ``f``, ``A`` = per-condition mean of all
      observations outside ``f`` and ``B`` = per-condition mean inside ``f``;
      ``d_ij^(f) = (a_i - a_j)' L (b_i - b_j) / P``; the RDM is the mean over folds
      (rsatoolbox ``calc_rdm_crossnobis`` with one precision matrix or none, which
      means ``L = I``). Unbiased, so it can be negative; it is *not* clamped.

    Numerics: everything is a single GEMM on centred data. For the Euclidean and
    Mahalanobis distances the columns are centred over stimuli first (distances are
    translation invariant), which keeps float64 distances accurate to ~1e-15 relative
    even for patterns with a large common offset (e.g. +1e4), where the uncentred GEMM
    loses ~8 digits. Rounding can still make an exact-zero distance slightly negative,
    so euclidean/mahalanobis distances are clamped at 0 and correlation distances to
    ``[0, 2]``.

    Policy for constant patterns under ``"correlation"`` (r undefined, rsatoolbox
    returns NaN): a pattern whose channels are all equal has correlation 0 with every
    non-constant pattern (distance 1) and distance 0 to any other constant pattern.
    The output never contains NaN.

    Repeated observations: if ``conditions`` is given, rows with the same label are
    averaged first (rsatoolbox's ``descriptor``) and the RDM rows follow the sorted
    unique labels (``np.unique(conditions)``). ``"crossnobis"`` requires
    ``conditions``.

    Args:
        patterns: Activity patterns, shape (n_observations, n_channels); one row per
            stimulus, or per observation when ``conditions`` is given. Finite.
        method: One of :data:`METHODS`.
        conditions: Optional condition label per row, shape (n_observations,);
            required for ``"crossnobis"``.
        folds: Crossnobis only: cross-validation fold (e.g. run) of each row, shape
            (n_observations,). Every condition must occur in every fold. If ``None``,
            the k-th observation of each condition is put in fold k (rsatoolbox's
            default), which needs equal observation counts per condition.
        noise_precision: ``"mahalanobis"``/``"crossnobis"`` only: symmetric noise
            precision matrix (inverse noise covariance), shape (n_channels,
            n_channels). ``None`` means the identity.
        device: ``None`` or a non-CUDA device: numpy. A CUDA device (``"cuda"``,
            ``"cuda:1"`` or a ``torch.device``): the GEMMs run in torch on that device
            (in ``dtype``), and the result is copied back to numpy.
        dtype: Computation and output dtype, ``np.float64`` (default) or
            ``np.float32`` (faster, ~1e-7 relative error; keep float64 for RDMs you
            store).

    Returns:
        The condensed RDM, shape (n (n - 1) / 2,) with ``n`` the number of stimuli
        (or conditions), in :func:`scipy.spatial.distance.squareform` order.

    Raises:
        ValueError: On an unknown method, non-2-D or non-finite patterns, fewer than 2
            stimuli, wrong label/precision shapes, a non-symmetric precision, or folds
            missing a condition.
        RuntimeError: If a CUDA device is requested but torch or CUDA is unavailable.

    Examples:
        >>> rdm(np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 3.0]]), "euclidean")
        array([0.5, 4. , 2.5])
    """
    if method not in METHODS:
        raise ValueError(f"unknown RDM method {method!r}; choose one of {METHODS}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    x = _as_patterns(patterns, dtype)
    precision = None
    if noise_precision is not None:
        if method not in ("mahalanobis", "crossnobis"):
            raise ValueError(
                f"noise_precision is only used by mahalanobis/crossnobis, not {method!r}"
            )
        precision = _check_precision(noise_precision, x.shape[1], dtype)
    if folds is not None and method != "crossnobis":
        raise ValueError(f"folds are only used by crossnobis, not {method!r}")

    backend_device = None
    if _is_cuda(device):
        try:
            import torch
        except ImportError as error:  # pragma: no cover - torch is a dependency
            raise RuntimeError("device is CUDA but torch is not installed") from error
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        backend_device = device
    return _compute(x, method, conditions, folds, precision, backend_device)


def _compute(
    x: np.ndarray,
    method: str,
    conditions: ArrayLike | None,
    folds: ArrayLike | None,
    precision: np.ndarray | None,
    device: Any,
) -> np.ndarray:
    """Validated core of :func:`rdm`; ``device`` is None (numpy) or a torch device."""
    if method == "crossnobis":
        if conditions is None:
            raise ValueError("crossnobis needs conditions (one label per observation row)")
        labels = _as_labels(conditions, "conditions", x.shape[0])
        fold_labels = None if folds is None else _as_labels(folds, "folds", x.shape[0])
        return _crossnobis(x, labels, fold_labels, precision, device)

    if conditions is not None:
        x, _ = _group_means(x, _as_labels(conditions, "conditions", x.shape[0]))
    if x.shape[0] < 2:
        raise ValueError(f"an RDM needs at least 2 stimuli, got {x.shape[0]}")
    n_channels = x.shape[1]
    xb = _to_backend(x, device)

    if method == "correlation":
        correlations, constant = _correlation_gram(xb)
        distances = _triu_affine(correlations, -1.0, 1.0, None, 0.0, 2.0)
        constant = np.flatnonzero(constant.cpu().numpy() if device is not None else constant)
        if constant.size > 1:  # distance 0 between two constant patterns
            i, j = (constant[k] for k in np.triu_indices(constant.size, 1))
            n = x.shape[0]
            distances[n * i - i * (i + 1) // 2 + j - i - 1] = 0.0
        return distances

    # euclidean, or mahalanobis (= euclidean without a precision, as in rsatoolbox)
    precision_b = None if precision is None else _to_backend(precision, device)
    gram, norms = _euclidean_gram(xb, precision_b)
    return _triu_affine(gram, -2.0 / n_channels, 0.0, norms / n_channels, 0.0, None)

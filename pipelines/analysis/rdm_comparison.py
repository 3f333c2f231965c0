"""Comparison of representational dissimilarity matrices and the RSA noise ceiling.

Pure numpy/scipy, arrays in and arrays out, float64. RDMs are condensed upper-triangle
vectors (see :mod:`neurofit.pipelines.analysis.rdm`); a *set* of RDMs is a 2-D array
``(n_rdms, n_pairs)``, and a single 1-D RDM ``(n_pairs,)`` is accepted as a set of one.

Every method except Kendall's tau-a is computed by embedding each RDM once as a unit
vector (ranked, centred, whitened ... as the method requires) and taking all
similarities with one matrix product, so comparing ``n_a`` with ``n_b`` RDMs costs
``n_a + n_b`` embeddings, not ``n_a n_b`` comparisons. Definitions follow rsatoolbox
0.3.2 ``rsatoolbox.rdm.compare`` (method names in parentheses) to ~1e-15:

* ``"cosine"`` (``cosine``): ``<a, b> / (|a| |b|)``, no centring.
* ``"pearson"`` (``corr``): Pearson correlation of the entries.
* ``"spearman"`` (``spearman``): Pearson correlation of tie-aware average ranks.
* ``"rho-a"`` (``rho-a``): ``12 sum((r_a - rbar)(r_b - rbar)) / (m^3 - m)`` on average
  ranks, ``m`` the number of entries: Spearman's rho without the tie correction of the
  denominator (the expected rho under random tie breaking; Nili et al., 2014).
* ``"kendall-tau-a"`` (``tau-a``): ``(n_concordant - n_discordant) / (m (m - 1) / 2)``,
  recommended over tau-b when model RDMs predict ties (Nili et al., 2014).
* ``"whitened-cosine"`` (``cosine_cov`` with ``sigma_k=None``; Diedrichsen et al.,
  2021): cosine between RDM vectors after whitening with the covariance ``V`` of the
  distance estimates for i.i.d. patterns. It equals the cosine (Frobenius) between the
  double-centred matrices ``G = -H D H / 2``, diagonal included (= linear CKA of the
  implied kernels).
* ``"whitened-pearson"`` (``corr_cov``): the same after subtracting the mean of each
  RDM vector.

Missing entries: NaN marks a dissimilarity that was not measured. A NaN at some
position in *any* RDM of a set excludes that position from every comparison, and both
sets must have their NaNs at the same positions (as in rsatoolbox); a
``ValueError`` is raised otherwise. For the whitened methods, missing entries turn the
double centring into rsatoolbox's least-squares removal of additive row/column effects.

Policy for undefined values: an RDM with zero norm after its embedding (all zero for
``cosine``; constant for ``pearson``, ``spearman``, ``rho-a`` ...) has similarity 0 with
everything, as in rsatoolbox; never NaN.

References:
    Nili, H., Wingfield, C., Walther, A., Su, L., Marslen-Wilson, W. & Kriegeskorte, N.
    (2014). A toolbox for representational similarity analysis. PLoS Comput. Biol.
    10(4): e1003553.

    Diedrichsen, J., Berlot, E., Mur, M., Schütt, H. H., Shahbazi, M. &
    Kriegeskorte, N. (2021). Comparing representational geometries using whitened
    unbiased-distance-matrix similarity. Neurons, Behavior, Data and Theory 5(3).

    Schütt, H. H., Kipnis, A. D., Diedrichsen, J. & Kriegeskorte, N. (2023). Statistical
    inference on representational geometries. eLife 12: e82566.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._validation import numeric
from .rdm import n_from_pairs

__all__ = ["COMPARISON_METHODS", "COMPARISON_DESCRIPTIONS", "compare_rdms", "noise_ceiling"]

#: Every comparison method understood by :func:`compare_rdms` and :func:`noise_ceiling`, with its
#: one-line definition: the one list the ``ComparisonMethod`` lookup table is generated from.
COMPARISON_DESCRIPTIONS = {
    "cosine": "cosine similarity of the two RDM vectors",
    "pearson": "Pearson correlation",
    "spearman": "Spearman rank correlation (tie-aware)",
    "rho-a": "Spearman's rho-a, without the tie correction",
    "kendall-tau-a": "Kendall's tau-a, recommended when model RDMs have ties (Nili et al. 2014)",
    "whitened-cosine": "cosine after whitening (Diedrichsen et al. 2021)",
    "whitened-pearson": "Pearson correlation after whitening (Diedrichsen et al. 2021)",
}
COMPARISON_METHODS = tuple(COMPARISON_DESCRIPTIONS)

# rsatoolbox's names, accepted as aliases
_ALIASES = {
    "corr": "pearson",
    "tau-a": "kendall-tau-a",
    "cosine_cov": "whitened-cosine",
    "corr_cov": "whitened-pearson",
}

_RANK_METHODS = ("spearman", "rho-a", "kendall-tau-a")


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _method(method: str) -> str:
    """Canonical method name (rsatoolbox aliases accepted)."""
    canonical = _ALIASES.get(method, method)
    if canonical not in COMPARISON_METHODS:
        raise ValueError(
            f"unknown comparison method {method!r}; choose one of {COMPARISON_METHODS} "
            f"(or the rsatoolbox names {tuple(_ALIASES)})"
        )
    return canonical


def _as_rdm_set(rdms: ArrayLike, name: str) -> np.ndarray:
    """Validates RDM vectors: (n_pairs,) or (n_rdms, n_pairs) -> float64 (n_rdms, n_pairs)."""
    array = np.asarray(rdms)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n_pairs,) or (n_rdms, n_pairs), got {array.shape}"
        )
    if array.shape[0] < 1:
        raise ValueError(f"{name} holds no RDM (shape {array.shape})")
    return numeric(array, name, allow_nan=True)  # NaN marks entries to drop (rsatoolbox)


def _valid_positions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask of the positions that are finite in every RDM of both sets."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"RDMs must have the same length: rdms_a has shape {a.shape} and rdms_b "
            f"{b.shape}"
        )
    missing_a = np.isnan(a).any(axis=0)
    missing_b = np.isnan(b).any(axis=0)
    if not np.array_equal(missing_a, missing_b):
        differ = np.flatnonzero(missing_a != missing_b)
        raise ValueError(
            "rdms_a and rdms_b must have NaN entries at the same positions; they differ "
            f"at {differ.size} positions, e.g. index {differ[0]} (NaN in "
            f"{'rdms_a' if missing_a[differ[0]] else 'rdms_b'} only)"
        )
    keep = ~missing_a
    if keep.sum() < 2:
        raise ValueError(
            f"at least 2 non-NaN entries are needed, got {int(keep.sum())} of {keep.size}"
        )
    return keep


# ----------------------------------------------------------------------------------------
# ranks and ties
# ----------------------------------------------------------------------------------------


def _average_ranks(vector: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Tie-aware 1-based average ranks of a finite 1-D vector (scipy ``rankdata``).

    Ties get the mean of the positions they occupy, so any (unstable, SIMD) sort
    works: one ``argsort``, then one scatter (plus a cumulative sum if there are ties).

    Args:
        vector: Values, shape (m,).
        out: Optional float64 output array of shape (m,).
    """
    m = vector.shape[0]
    ranks = np.empty(m, dtype=np.float64) if out is None else out
    order = np.argsort(vector)
    ordered = vector[order]
    new_value = np.empty(m, dtype=bool)
    new_value[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_value[1:])
    del ordered
    if new_value.all():  # no ties: the ranks are the sorted positions
        ranks[order] = np.arange(1.0, m + 1.0)
        return ranks
    group = np.cumsum(new_value) - 1
    starts = np.flatnonzero(new_value)
    stops = np.append(starts[1:], m)
    average = (starts + stops + 1) / 2.0  # mean of the 1-based positions start+1..stop
    ranks[order] = average[group]
    return ranks


def _tied_pairs(vector: np.ndarray, presorted: bool = False) -> int:
    """Number of pairs of entries with equal values, ``sum_t t (t - 1) / 2``."""
    ordered = vector if presorted else np.sort(vector)
    boundaries = np.flatnonzero(
        np.concatenate(([True], ordered[1:] != ordered[:-1], [True]))
    )
    counts = np.diff(boundaries).astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


# ----------------------------------------------------------------------------------------
# embeddings: similarity(a, b) = <e(a), e(b)>
# ----------------------------------------------------------------------------------------


def _unit_rows(
    vectors: np.ndarray, degenerate: np.ndarray | None = None, inplace: bool = False
) -> np.ndarray:
    """Rows scaled to unit length; zero rows (and rows flagged ``degenerate``) -> 0.

    With ``inplace`` the (caller-owned, temporary) ``vectors`` are overwritten.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    zero = norms == 0
    if degenerate is not None:
        zero |= degenerate
    scale = 1.0 / np.where(zero, 1.0, norms)[:, None]
    out = np.multiply(vectors, scale, out=vectors if inplace else None)
    out[zero] = 0.0
    return out


def _double_centred(vectors: np.ndarray) -> np.ndarray:
    """Whitened embedding of complete RDMs: ``[sqrt(2) triu(C), diag(C)]``, C = H D H.

    ``C = -2 G`` with ``G = -H D H / 2`` the double-centred matrix (``D`` square, zero
    diagonal, ``H`` the centring matrix), so ``<e(a), e(b)> = 4 <G_a, G_b>_F`` (every
    off-diagonal entry counted twice): after normalisation this is rsatoolbox's
    ``_cov_weighting`` with ``sigma_k=None``. Computed on the condensed vectors (row
    by row, no ``n x n`` matrix): ``C_ij = d_ij - m_i - m_j + mbar`` with ``m`` the row
    means of ``D``. Loops over RDMs and rows only.
    """
    n_rdms, n_pairs = vectors.shape
    n = n_from_pairs(n_pairs)
    lengths = np.arange(n - 1, 0, -1)
    stops = np.cumsum(lengths)
    starts = stops - lengths
    root2 = np.sqrt(2.0)
    out = np.empty((n_rdms, n_pairs + n), dtype=np.float64)
    for k in range(n_rdms):
        vector = vectors[k]
        # row sums of the square matrix: the row part (j > i) by reduceat, the column
        # part (j < i) accumulated row by row
        sums = np.zeros(n, dtype=np.float64)
        sums[:-1] = np.add.reduceat(vector, starts)
        for i in range(n - 1):
            sums[i + 1 :] += vector[starts[i] : stops[i]]
        means = sums / n
        grand_mean = means.mean()
        row = out[k]
        for i in range(n - 1):
            part = row[starts[i] : stops[i]]
            np.subtract(vector[starts[i] : stops[i]], means[i + 1 :], out=part)
            part -= means[i] - grand_mean
            part *= root2
        row[n_pairs:] = grand_mean - 2.0 * means
    return out


def _double_centred_missing(vectors: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Whitened embedding of RDMs with missing entries (rsatoolbox's NaN branch).

    The matrix ``W = -D/2`` (diagonal 0, missing entries absent) loses its additive
    row/column effects ``c_i + c_j`` by weighted least squares (weight 1/2 per
    off-diagonal entry, 1 per diagonal entry): with ``q_k`` the sum of the entries of
    row/column ``k`` and ``M = (Deg + Adj)/2 + I`` over the observed pairs,
    ``c = M^-1 q``; off-diagonal entries become ``w_ij - (c_i + c_j)/2`` (times sqrt 2)
    and diagonal entries ``-c_k``. Without missing entries this is exactly the double
    centring of :func:`_double_centred` (times -1/2).

    Args:
        vectors: RDMs restricted to the observed positions, (n_rdms, n_observed).
        keep: Observed positions in the full condensed vector, (n_pairs,) bool.
    """
    n = n_from_pairs(keep.shape[0])
    rows, cols = np.triu_indices(n, k=1)
    rows, cols = rows[keep], cols[keep]
    w = -0.5 * vectors  # (n_rdms, n_observed)
    q = np.empty((n, vectors.shape[0]), dtype=np.float64)
    for k in range(vectors.shape[0]):
        q[:, k] = np.bincount(rows, w[k], minlength=n) + np.bincount(cols, w[k], minlength=n)
    system = np.zeros((n, n), dtype=np.float64)
    system[rows, cols] = 0.5
    system[cols, rows] = 0.5
    degree = np.bincount(rows, minlength=n) + np.bincount(cols, minlength=n)
    system[np.diag_indices(n)] = 0.5 * degree + 1.0
    effects = np.linalg.solve(system, q).T  # (n_rdms, n)
    off_diagonal = (w - 0.5 * (effects[:, rows] + effects[:, cols])) * np.sqrt(2.0)
    return np.concatenate((off_diagonal, -effects), axis=1)


def _embed(vectors: np.ndarray, method: str, keep: np.ndarray) -> np.ndarray:
    """Unit-norm (or scaled) embedding such that similarities are inner products.

    Args:
        vectors: RDMs restricted to the valid positions, (n_rdms, m).
        method: Canonical method name other than ``"kendall-tau-a"``.
        keep: Valid positions in the full condensed vector, (n_pairs,) bool.

    Returns:
        Embedded RDMs, (n_rdms, m') float64.
    """
    m = vectors.shape[1]
    if method == "cosine":
        return _unit_rows(vectors)
    if method in ("pearson", "whitened-pearson"):
        constant = np.ptp(vectors, axis=1) == 0
        centred = vectors - vectors.mean(axis=1, keepdims=True)
        if method == "pearson":
            return _unit_rows(centred, constant, inplace=True)
        centred[constant] = 0.0
        vectors = centred
    if method in ("whitened-cosine", "whitened-pearson"):
        if keep.all():
            return _unit_rows(_double_centred(vectors), inplace=True)
        return _unit_rows(_double_centred_missing(vectors, keep), inplace=True)
    # spearman / rho-a: centred average ranks (their mean is exactly (m + 1) / 2)
    ranks = np.empty_like(vectors)
    for k in range(vectors.shape[0]):
        _average_ranks(vectors[k], out=ranks[k])
    ranks -= (m + 1) / 2.0
    if method == "spearman":
        return _unit_rows(ranks, inplace=True)
    ranks *= np.sqrt(12.0 / (float(m) ** 3 - m))  # rho-a
    return ranks


def _tau_a_matrix(a: np.ndarray, b: np.ndarray, paired: bool) -> np.ndarray:
    """Kendall's tau-a for all pairs of rows (or row-wise pairs if ``paired``).

    scipy's O(m log m) ``kendalltau`` gives tau-b = S / sqrt((T - t_a)(T - t_b)) with
    ``S = n_concordant - n_discordant``, ``T = m (m - 1) / 2`` and ``t`` the tied pairs
    of each vector; tau-a = S / T. Since S is an integer it is recovered exactly by
    rounding (while T < 2**50), so tau-a is exact. Loops over pairs of RDMs only.
    """
    m = a.shape[1]
    total = m * (m - 1) // 2
    ties_a = [_tied_pairs(v) for v in a]
    # Presorting each b by its own order makes scipy's first sort (on y) cheap.
    orders_b = [np.argsort(v) for v in b]
    sorted_b = [v[o] for v, o in zip(b, orders_b)]
    ties_b = [_tied_pairs(v, presorted=True) for v in sorted_b]
    pairs = [(i, i) for i in range(a.shape[0])] if paired else [
        (i, j) for i in range(a.shape[0]) for j in range(b.shape[0])
    ]
    out = np.zeros(a.shape[0] if paired else (a.shape[0], b.shape[0]), dtype=np.float64)
    for i, j in pairs:
        if ties_a[i] == total or ties_b[j] == total:
            value = 0.0  # a constant RDM: no concordant or discordant pair
        else:
            tau_b = stats.kendalltau(a[i][orders_b[j]], sorted_b[j]).statistic
            s = tau_b * np.sqrt(float(total - ties_a[i])) * np.sqrt(float(total - ties_b[j]))
            if total < 2**50:
                s = float(np.rint(s))
            value = min(1.0, max(-1.0, s / total))
        out[(i if paired else (i, j))] = value
    return out


def _similarities(a: np.ndarray, b: np.ndarray, method: str, paired: bool) -> np.ndarray:
    """Similarities of validated sets (NaN positions already checked)."""
    keep = _valid_positions(a, b)
    if method in ("whitened-cosine", "whitened-pearson"):
        n_from_pairs(keep.shape[0])  # whitening needs a true condensed RDM
    if not keep.all():
        a, b = a[:, keep], b[:, keep]
    if method == "kendall-tau-a":
        return _tau_a_matrix(a, b, paired)
    ea = _embed(a, method, keep)
    eb = _embed(b, method, keep)
    out = np.einsum("ij,ij->i", ea, eb) if paired else ea @ eb.T
    return np.clip(out, -1.0, 1.0)


# ----------------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------------


def compare_rdms(rdms_a: ArrayLike, rdms_b: ArrayLike, method: str = "spearman") -> np.ndarray:
    """Similarity of every RDM in ``rdms_a`` with every RDM in ``rdms_b``.

    See the module docstring for the definitions; they match rsatoolbox 0.3.2
    ``compare(rdm1, rdm2, method)`` (names ``cosine``, ``corr``, ``spearman``,
    ``rho-a``, ``tau-a``, ``cosine_cov``, ``corr_cov`` with ``sigma_k=None``, also
    accepted here as aliases). Spearman uses tie-aware average ranks, so it equals
    :func:`scipy.stats.spearmanr` with ties.

    Args:
        rdms_a: Condensed RDMs, shape (n_a, n_pairs), or one RDM (n_pairs,).
        rdms_b: Condensed RDMs, shape (n_b, n_pairs), or one RDM (n_pairs,).
        method: One of :data:`COMPARISON_METHODS`. Default ``"spearman"``.

    Returns:
        Similarities, shape (n_a, n_b), dimensionless, in [-1, 1]; entry ``[i, j]``
        compares ``rdms_a[i]`` with ``rdms_b[j]``.

    Raises:
        ValueError: On an unknown method, different lengths, infinite values, NaNs at
            different positions in the two sets, fewer than 2 valid entries, or (for
            the whitened methods) a length that is not n (n - 1) / 2.

    Examples:
        >>> compare_rdms([1.0, 2.0, 3.0], [[10.0, 20.0, 40.0], [3.0, 2.0, 1.0]])
        array([[ 1., -1.]])
    """
    method = _method(method)
    a = _as_rdm_set(rdms_a, "rdms_a")
    b = _as_rdm_set(rdms_b, "rdms_b")
    return _similarities(a, b, method, paired=False)


def _pool_transform(rdms: np.ndarray, method: str) -> np.ndarray:
    """Per-subject transform applied before averaging subjects (rsatoolbox ``pool_rdm``).

    The average of the transformed RDMs is the pooled RDM that maximises the mean
    similarity under ``method``: ranks for the rank methods, z-scores (ddof 0) for the
    correlation methods, division by the root mean square for the cosine methods.
    """
    if method in _RANK_METHODS:
        return np.stack([_average_ranks(v) for v in rdms])
    if method in ("pearson", "whitened-pearson"):
        std = rdms.std(axis=1, keepdims=True)
        if np.any(std == 0):
            raise ValueError(
                f"subject RDM(s) {np.flatnonzero(std[:, 0] == 0).tolist()} are constant: a "
                f"{method} noise ceiling is undefined"
            )
        return (rdms - rdms.mean(axis=1, keepdims=True)) / std
    rms = np.sqrt(np.mean(rdms * rdms, axis=1, keepdims=True))
    if np.any(rms == 0):
        raise ValueError(
            f"subject RDM(s) {np.flatnonzero(rms[:, 0] == 0).tolist()} are all zero: a "
            f"{method} noise ceiling is undefined"
        )
    return rdms / rms


def noise_ceiling(subject_rdms: ArrayLike, method: str = "spearman") -> tuple[float, float]:
    """Leave-one-subject-out noise ceiling of an RSA analysis (Nili et al., 2014).

    The ceiling brackets the best similarity any model RDM can reach with the subjects'
    RDMs given their inter-subject variability::

        upper = mean_s compare(pool(all subjects), RDM_s)
        lower = mean_s compare(pool(all subjects except s), RDM_s)

    ``pool`` averages the subjects' RDMs after the transform that makes the average the
    best-fitting RDM under ``method``: average ranks for ``spearman``/``rho-a``/
    ``kendall-tau-a``, z-scores for ``pearson``/``whitened-pearson`` and division by the
    root mean square for ``cosine``/``whitened-cosine``. This is exactly rsatoolbox
    0.3.2 ``rsatoolbox.inference.boot_noise_ceiling`` (= ``cv_noise_ceiling`` on
    leave-one-RDM-out sets with all conditions) with ``pool_rdm`` from
    ``rsatoolbox.util.inference_util``; rsatoolbox's extra constant shift of pooled
    correlation RDMs does not change any similarity and is omitted.

    Args:
        subject_rdms: One condensed RDM per subject, shape (n_subjects, n_pairs),
            n_subjects >= 2. NaN entries (unmeasured pairs) must sit at the same
            positions in every subject and are dropped.
        method: One of :data:`COMPARISON_METHODS`. Default ``"spearman"``.

    Returns:
        ``(lower, upper)``: the lower and upper bound, dimensionless floats.

    Raises:
        ValueError: On fewer than 2 subjects, subjects with NaNs at different
            positions, a constant (pearson-type) or all-zero (cosine-type) subject RDM,
            or the errors of :func:`compare_rdms`.

    Examples:
        >>> lower, upper = noise_ceiling([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]], "pearson")
        >>> round(lower, 3), round(upper, 3)
        (0.5, 0.866)
    """
    method = _method(method)
    rdms = _as_rdm_set(subject_rdms, "subject_rdms")
    n_subjects = rdms.shape[0]
    if n_subjects < 2:
        raise ValueError(f"a noise ceiling needs at least 2 subject RDMs, got {n_subjects}")
    missing = np.isnan(rdms)
    if np.any(missing) and not np.all(missing == missing[0]):
        raise ValueError("all subject RDMs must have their NaN entries at the same positions")
    keep = ~missing[0]
    transformed = _pool_transform(rdms[:, keep], method)
    total = transformed.sum(axis=0)
    pooled_all = np.full((1, rdms.shape[1]), np.nan)
    pooled_all[0, keep] = total / n_subjects
    pooled_others = np.full_like(rdms, np.nan)
    pooled_others[:, keep] = (total[None, :] - transformed) / (n_subjects - 1)
    upper = _similarities(pooled_all, rdms, method, paired=False)
    lower = _similarities(pooled_others, rdms, method, paired=True)
    return float(lower.mean()), float(upper.mean())

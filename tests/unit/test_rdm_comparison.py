"""Tests for neurofit.pipelines.analysis.rdm_comparison (no database, fast).

The library is checked against (a) rsatoolbox 0.3.2 ``compare`` and
``boot_noise_ceiling``/``cv_noise_ceiling`` for every method, to 1e-10, with and without
NaN entries and with tied values, (b) scipy.stats and brute-force O(m^2) references
written here, and (c) structural properties (symmetry, ranges, policies).
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from rsatoolbox.inference import boot_noise_ceiling, cv_noise_ceiling  # noqa: E402
from rsatoolbox.inference.crossvalsets import sets_leave_one_out_rdm  # noqa: E402
from rsatoolbox.rdm import RDMs, compare  # noqa: E402
from scipy import stats
from scipy.spatial.distance import squareform

from neurofit.pipelines.analysis import rdm_comparison
from neurofit.pipelines.analysis.rdm_comparison import (
    COMPARISON_METHODS,
    compare_rdms,
    noise_ceiling,
)

TOL = 1e-10
RSATOOLBOX_NAME = {
    "cosine": "cosine",
    "pearson": "corr",
    "spearman": "spearman",
    "rho-a": "rho-a",
    "kendall-tau-a": "tau-a",
    "whitened-cosine": "cosine_cov",
    "whitened-pearson": "corr_cov",
}
N_COND = 14
N_PAIRS = N_COND * (N_COND - 1) // 2


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(77)


def _sets(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated sets of RDM vectors; some rows heavily tied (model-like RDMs)."""
    a = rng.standard_normal((3, N_PAIRS)) + 2.0
    b = a[[0, 1]] + rng.standard_normal((2, N_PAIRS))
    a[2] = np.round(a[2])  # ~6 distinct values
    b[1] = np.round(b[1] * 2) / 2
    return a, b


# ----------------------------------------------------------------------------------------
# agreement with rsatoolbox
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_compare_matches_rsatoolbox(rng, method):
    a, b = _sets(rng)
    ours = compare_rdms(a, b, method)
    reference = compare(RDMs(a), RDMs(b), method=RSATOOLBOX_NAME[method])
    assert ours.shape == (3, 2)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)
    # rsatoolbox's name is accepted as an alias
    np.testing.assert_array_equal(compare_rdms(a, b, RSATOOLBOX_NAME[method]), ours)


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_compare_with_nan_entries_matches_rsatoolbox(rng, method):
    a, b = _sets(rng)
    missing = [2, 30, 31, 77]
    a[1, missing] = np.nan  # a NaN in one RDM of a set excludes the entry everywhere
    b[:, missing] = np.nan
    ours = compare_rdms(a, b, method)
    reference = compare(RDMs(a), RDMs(b), method=RSATOOLBOX_NAME[method])
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_noise_ceiling_matches_rsatoolbox(rng, method):
    shared = rng.standard_normal(N_PAIRS)
    subjects = shared + 0.8 * rng.standard_normal((5, N_PAIRS))
    subjects[3] = np.round(subjects[3])
    ours = noise_ceiling(subjects, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = boot_noise_ceiling(RDMs(subjects), method=RSATOOLBOX_NAME[method])
    np.testing.assert_allclose(ours, np.asarray(reference, dtype=float), rtol=0, atol=TOL)
    lower, upper = ours
    assert 0.2 < lower < upper < 1.0


def test_noise_ceiling_matches_rsatoolbox_cv_noise_ceiling(rng):
    subjects = rng.standard_normal(N_PAIRS) + rng.standard_normal((4, N_PAIRS))
    subjects[:, [5, 6]] = np.nan
    rdms = RDMs(subjects)
    _, test_set, ceil_set = sets_leave_one_out_rdm(rdms)
    reference = cv_noise_ceiling(rdms, ceil_set, test_set, method="spearman")
    np.testing.assert_allclose(noise_ceiling(subjects), reference, rtol=0, atol=TOL)


# ----------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------


def test_spearman_equals_scipy_spearmanr_with_ties(rng):
    a = rng.integers(0, 5, N_PAIRS).astype(float)  # heavy ties on both sides
    b = a + rng.integers(0, 3, N_PAIRS)
    expected = stats.spearmanr(a, b).statistic
    assert compare_rdms(a, b, "spearman")[0, 0] == pytest.approx(expected, abs=1e-12)
    # rho-a drops the tie correction, so it is smaller in magnitude with ties ...
    assert abs(compare_rdms(a, b, "rho-a")[0, 0]) < abs(expected) - 1e-3
    # ... and equal to spearman without ties
    c, d = rng.standard_normal((2, N_PAIRS))
    assert compare_rdms(c, d, "rho-a")[0, 0] == pytest.approx(
        compare_rdms(c, d, "spearman")[0, 0], abs=1e-12
    )


def test_kendall_tau_a_against_brute_force(rng):
    """tau-a = (concordant - discordant) / (m (m - 1) / 2), counted pair by pair."""
    a = rng.integers(0, 6, 60).astype(float)
    b = np.where(rng.random(60) < 0.7, a, rng.integers(0, 6, 60))
    i, j = np.triu_indices(60, 1)
    signs = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    expected = signs.sum() / i.size
    assert compare_rdms(a, b, "kendall-tau-a")[0, 0] == pytest.approx(expected, abs=1e-15)
    # tau-a is not tau-b when there are ties
    assert abs(expected - stats.kendalltau(a, b).statistic) > 1e-3


def test_pearson_and_cosine_against_numpy(rng):
    a, b = rng.standard_normal((2, N_PAIRS)) + 1.0
    assert compare_rdms(a, b, "pearson")[0, 0] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-14)
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert compare_rdms(a, b, "cosine")[0, 0] == pytest.approx(cosine, abs=1e-14)


def test_whitened_cosine_is_cosine_of_double_centred_matrices(rng):
    """Diedrichsen et al. (2021): cosine of G = -H D H / 2 over the full matrices."""
    a, b = rng.standard_normal((2, N_PAIRS)) + 3.0
    h = np.eye(N_COND) - 1.0 / N_COND
    ga = -h @ squareform(a) @ h / 2
    gb = -h @ squareform(b) @ h / 2
    expected = np.sum(ga * gb) / np.linalg.norm(ga) / np.linalg.norm(gb)
    assert compare_rdms(a, b, "whitened-cosine")[0, 0] == pytest.approx(expected, abs=1e-14)
    # it differs from the plain cosine and from pearson
    assert abs(compare_rdms(a, b, "cosine")[0, 0] - expected) > 1e-3
    assert abs(compare_rdms(a, b, "pearson")[0, 0] - expected) > 1e-3


def test_missing_entry_path_equals_double_centring_without_missing(rng):
    a = rng.standard_normal((2, N_PAIRS))
    keep = np.ones(N_PAIRS, dtype=bool)
    np.testing.assert_allclose(
        -2.0 * rdm_comparison._double_centred_missing(a, keep),
        rdm_comparison._double_centred(a),
        rtol=0,
        atol=1e-13,
    )


# ----------------------------------------------------------------------------------------
# structure and policies
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_compare_is_symmetric_and_self_similarity_is_one(rng, method):
    a, b = _sets(rng)
    np.testing.assert_allclose(compare_rdms(a, b, method), compare_rdms(b, a, method).T, atol=1e-14)
    self_similarity = np.diag(compare_rdms(a, a, method))
    np.testing.assert_allclose(self_similarity[:2], 1.0, atol=1e-12)  # rows without ties
    if method in ("rho-a", "kendall-tau-a"):  # no tie correction: a tied RDM scores < 1
        assert self_similarity[2] < 0.95
    else:
        assert self_similarity[2] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.abs(compare_rdms(a, b, method)) <= 1.0)


@pytest.mark.parametrize("method", COMPARISON_METHODS)
def test_constant_rdm_gives_zero_not_nan(rng, method):
    a = rng.standard_normal(N_PAIRS)
    zero_norm = method in ("cosine", "whitened-cosine")
    constant = np.zeros(N_PAIRS) if zero_norm else np.full(N_PAIRS, 0.7)
    assert compare_rdms(constant, a, method)[0, 0] == 0.0


def test_one_dimensional_inputs_and_shapes(rng):
    a, b = _sets(rng)
    assert compare_rdms(a[0], b[1]).shape == (1, 1)
    assert compare_rdms(a[0], b).shape == (1, 2)
    assert compare_rdms(a, b[0]).shape == (3, 1)


def test_identical_subjects_have_ceiling_one(rng):
    subject = rng.standard_normal(N_PAIRS)
    lower, upper = noise_ceiling(np.stack([subject] * 3), "pearson")
    assert lower == pytest.approx(1.0, abs=1e-12) and upper == pytest.approx(1.0, abs=1e-12)


def test_errors(rng):
    a, b = _sets(rng)
    with pytest.raises(ValueError, match="unknown comparison method"):
        compare_rdms(a, b, "tau-b")
    with pytest.raises(ValueError, match="same length"):
        compare_rdms(a, b[:, :-1])
    a_nan = a.copy()
    a_nan[0, 4] = np.nan
    with pytest.raises(ValueError, match="same positions"):
        compare_rdms(a_nan, b)
    with pytest.raises(ValueError, match="infinite"):
        compare_rdms(np.full(N_PAIRS, np.inf), b)
    with pytest.raises(ValueError, match="n \\(n - 1\\) / 2"):
        compare_rdms(a[:, :-1], b[:, :-1], "whitened-cosine")
    with pytest.raises(ValueError, match="at least 2 subject"):
        noise_ceiling(a[0])
    b_nan = b.copy()
    b_nan[0, 3] = np.nan
    with pytest.raises(ValueError, match="same positions"):
        noise_ceiling(b_nan)
    with pytest.raises(ValueError, match="constant"):
        noise_ceiling(np.stack([a[0], np.ones(N_PAIRS)]), "pearson")


def test_doctests():
    result = doctest.testmod(rdm_comparison, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

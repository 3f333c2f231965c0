"""Tests for neurofit.pipelines.analysis.rdm (no database, fast).

The library is checked against (a) rsatoolbox 0.3.2 ``calc_rdm`` for every method, to
1e-10 in float64, (b) scipy ``pdist`` and long-double references written here, (c)
invariances (stimulus permutation, symmetry, affine scaling), and (d) the numerical
pitfall of the project note ``metrics.md`` section 6 (patterns with a +1e4 offset).
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import calc_rdm  # noqa: E402
from scipy.spatial.distance import pdist, squareform

from neurofit.pipelines.analysis import rdm as rdm_module
from neurofit.pipelines.analysis.rdm import condensed, n_from_pairs, rdm, square

TOL = 1e-10


def _rsa(dataset, method, **kwargs) -> np.ndarray:
    """rsatoolbox RDM vector (silencing its descriptor-casting warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return calc_rdm(dataset, method=method, **kwargs).get_vectors()[0]


def _precision(rng: np.random.Generator, p: int) -> np.ndarray:
    a = rng.standard_normal((p, p))
    return a @ a.T / p + np.eye(p)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


# ----------------------------------------------------------------------------------------
# agreement with rsatoolbox
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["euclidean", "correlation", "mahalanobis"])
def test_matches_rsatoolbox_single_patterns(rng, method):
    x = rng.standard_normal((25, 17)) * rng.uniform(0.5, 3.0, 17) + rng.standard_normal(17)
    ours = rdm(x, method)
    reference = _rsa(Dataset(x), method)
    assert ours.shape == (25 * 24 // 2,)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)


def test_mahalanobis_with_precision_matches_rsatoolbox(rng):
    x = rng.standard_normal((20, 12))
    precision = _precision(rng, 12)
    ours = rdm(x, "mahalanobis", noise_precision=precision)
    reference = _rsa(Dataset(x), "mahalanobis", noise=precision)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)
    # and it differs from plain euclidean, so the precision is really used
    assert np.abs(ours - rdm(x, "euclidean")).max() > 1e-2


@pytest.mark.parametrize("method", ["euclidean", "correlation", "mahalanobis"])
def test_condition_averaging_matches_rsatoolbox_descriptor(rng, method):
    conditions = rng.permutation(np.repeat(np.arange(9), 3))
    x = rng.standard_normal((27, 8))
    ours = rdm(x, method, conditions=conditions)
    reference = _rsa(Dataset(x, obs_descriptors={"c": conditions}), method, descriptor="c")
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)


@pytest.mark.parametrize("with_precision", [False, True])
def test_crossnobis_matches_rsatoolbox(rng, with_precision):
    n_cond, n_runs, p = 7, 4, 10
    conditions = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    # unbalanced: add a second observation of some conditions in run 0
    conditions = np.concatenate([conditions, [1, 4]])
    runs = np.concatenate([runs, [0, 0]])
    order = rng.permutation(conditions.size)
    conditions, runs = conditions[order], runs[order]
    x = rng.standard_normal((conditions.size, p)) + 3.0
    precision = _precision(rng, p) if with_precision else None
    ours = rdm(x, "crossnobis", conditions=conditions, folds=runs, noise_precision=precision)
    dataset = Dataset(x, obs_descriptors={"c": conditions, "run": runs})
    reference = _rsa(dataset, "crossnobis", descriptor="c", cv_descriptor="run", noise=precision)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)
    assert np.any(ours < 0)  # unbiased: pure-noise distances go negative, no clamping


def test_crossnobis_default_folds_match_rsatoolbox(rng):
    conditions = rng.permutation(np.repeat(np.arange(6), 3))
    x = rng.standard_normal((18, 9))
    ours = rdm(x, "crossnobis", conditions=conditions)
    reference = _rsa(Dataset(x, obs_descriptors={"c": conditions}), "crossnobis", descriptor="c")
    np.testing.assert_allclose(ours, reference, rtol=0, atol=TOL)


def test_crossnobis_is_unbiased_unlike_euclidean(rng):
    """Simulation: crossnobis recovers the true squared distance / P; euclidean is biased.

    True patterns U (8 x 2000), 5 runs with noise sd 1: the Euclidean distance of the
    5-run averages is inflated by 2 * 1 / 5 = 0.4 per channel, while crossnobis has
    expectation |u_i - u_j|^2 / P. Each crossnobis entry has a standard error of about
    0.04 here (0.008 for the mean over the 28 pairs); tolerances are >= 4 of them.
    """
    n_cond, n_runs, p = 8, 5, 2000
    true = rng.standard_normal((n_cond, p)) * 0.7
    truth = pdist(true, "sqeuclidean") / p
    conditions = np.tile(np.arange(n_cond), n_runs)
    runs = np.repeat(np.arange(n_runs), n_cond)
    x = true[conditions] + rng.standard_normal((conditions.size, p))
    cross = rdm(x, "crossnobis", conditions=conditions, folds=runs)
    naive = rdm(x, "euclidean", conditions=conditions)
    assert abs(np.mean(cross - truth)) < 0.03
    assert np.abs(cross - truth).max() < 0.2
    assert np.mean(naive - truth) == pytest.approx(2.0 / n_runs, abs=0.03)


# ----------------------------------------------------------------------------------------
# definitions against independent references
# ----------------------------------------------------------------------------------------


def test_definitions_against_scipy_pdist(rng):
    x = rng.standard_normal((30, 11))
    np.testing.assert_allclose(rdm(x, "euclidean"), pdist(x, "sqeuclidean") / 11, atol=1e-12)
    np.testing.assert_allclose(rdm(x, "correlation"), pdist(x, "correlation"), atol=1e-12)
    precision = _precision(rng, 11)
    np.testing.assert_allclose(
        rdm(x, "mahalanobis", noise_precision=precision),
        pdist(x, "mahalanobis", VI=precision) ** 2 / 11,
        rtol=1e-10,
    )


def test_square_and_condensed_match_scipy_squareform(rng):
    vector = rng.standard_normal(10 * 9 // 2)
    matrix = square(vector)
    np.testing.assert_array_equal(matrix, squareform(vector))
    np.testing.assert_array_equal(condensed(matrix), vector)
    np.testing.assert_array_equal(condensed(squareform(vector)), squareform(squareform(vector)))
    assert n_from_pairs(45) == 10
    with pytest.raises(ValueError, match="n \\(n - 1\\) / 2"):
        square(np.ones(44))
    with pytest.raises(ValueError, match="square"):
        condensed(np.ones((3, 4)))


# ----------------------------------------------------------------------------------------
# invariances and structure
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["euclidean", "correlation", "mahalanobis"])
def test_permuting_stimuli_permutes_the_square_rdm(rng, method):
    x = rng.standard_normal((15, 6))
    perm = rng.permutation(15)
    precision = _precision(rng, 6) if method == "mahalanobis" else None
    base = square(rdm(x, method, noise_precision=precision))
    permuted = square(rdm(x[perm], method, noise_precision=precision))
    np.testing.assert_allclose(permuted, base[np.ix_(perm, perm)], rtol=0, atol=1e-12)
    assert np.abs(base - base.T).max() == 0 and np.all(np.diag(base) == 0)
    assert np.all(base >= 0)


def test_crossnobis_ignores_observation_order(rng):
    conditions = np.tile(np.arange(5), 3)
    runs = np.repeat(np.arange(3), 5)
    x = rng.standard_normal((15, 7))
    perm = rng.permutation(15)
    a = rdm(x, "crossnobis", conditions=conditions, folds=runs)
    b = rdm(x[perm], "crossnobis", conditions=conditions[perm], folds=runs[perm])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_correlation_distance_is_invariant_to_affine_scaling_per_pattern(rng):
    x = rng.standard_normal((20, 9))
    scales = rng.uniform(0.01, 100.0, (20, 1))
    offsets = rng.uniform(-1e3, 1e3, (20, 1))
    np.testing.assert_allclose(rdm(x * scales + offsets), rdm(x), rtol=0, atol=1e-12)
    flipped = rdm(-x)  # a sign flip of *all* patterns changes nothing either
    np.testing.assert_allclose(flipped, rdm(x), atol=1e-12)
    one_flipped = x.copy()
    one_flipped[0] *= -1  # ... but flipping one pattern maps its r to -r
    np.testing.assert_allclose(rdm(one_flipped)[:19], 2.0 - rdm(x)[:19], atol=1e-12)


def test_constant_patterns_follow_the_documented_policy(rng):
    x = rng.standard_normal((6, 5))
    x[1] = 3.0
    x[4] = -2.0
    ours = square(rdm(x, "correlation"))
    assert np.all(np.isfinite(ours))
    assert ours[1, 4] == 0.0
    np.testing.assert_array_equal(ours[1, [0, 2, 3, 5]], 1.0)
    np.testing.assert_array_equal(ours[4, [0, 2, 3, 5]], 1.0)
    # the other distances are untouched, and rsatoolbox gives NaN where we chose a value
    keep = [0, 2, 3, 5]
    np.testing.assert_allclose(ours[np.ix_(keep, keep)], squareform(rdm(x[keep])), atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(_rsa(Dataset(x), "correlation")).sum() > 0


# ----------------------------------------------------------------------------------------
# numerical pitfall: a large common offset
# ----------------------------------------------------------------------------------------


def test_large_offset_keeps_euclidean_distances_accurate(rng):
    """Patterns at +1e4 (post-ReLU activations, raw BOLD): relative error < 1e-10.

    The reference differences are exact (Sterbenz: two doubles within a factor 2 of
    each other subtract exactly) and are squared and summed in long double. The
    uncentred GEMM form loses ~8 digits here (rsatoolbox: ~1e-8), which this tolerance
    would catch.
    """
    x = rng.standard_normal((120, 40)) + 1e4
    ours = rdm(x, "euclidean")
    i, j = np.triu_indices(120, 1)
    diff = (x[i] - x[j]).astype(np.longdouble)
    reference = (diff * diff).sum(axis=1) / 40
    relative = np.abs(ours.astype(np.longdouble) - reference) / reference
    assert float(relative.max()) < 1e-10
    assert np.all(ours > 0)
    naive = _rsa(Dataset(x), "euclidean")  # uncentred GEMM: the test can fail
    assert float((np.abs(naive - reference) / reference).max()) > 1e-10


def test_float32_is_close_and_never_negative(rng):
    x = (rng.standard_normal((100, 30)) + 1e3).astype(np.float32)
    ours = rdm(x, "euclidean", dtype=np.float32)
    assert ours.dtype == np.float32 and np.all(ours >= 0)
    np.testing.assert_allclose(ours, rdm(x, "euclidean"), rtol=1e-3)
    corr = rdm(x, "correlation", dtype=np.float32)
    np.testing.assert_allclose(corr, rdm(x, "correlation"), atol=1e-5)


# ----------------------------------------------------------------------------------------
# torch backend (run on CPU here; the public function uses it for CUDA devices)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["euclidean", "correlation", "mahalanobis", "crossnobis"])
def test_torch_backend_matches_numpy(rng, method):
    pytest.importorskip("torch")
    x = rng.standard_normal((24, 8))
    x[3] = 1.0
    x[7] = 2.0
    kwargs = {}
    precision = None
    if method in ("mahalanobis", "crossnobis"):
        precision = _precision(rng, 8)
    if method == "crossnobis":
        kwargs = {"conditions": np.tile(np.arange(8), 3), "folds": np.repeat(np.arange(3), 8)}
    expected = rdm(x, method, noise_precision=precision, **kwargs)
    got = rdm_module._compute(
        x, method, kwargs.get("conditions"), kwargs.get("folds"), precision, "cpu"
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_cuda_device(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            rdm(np.ones((3, 2)), device="cuda")
        pytest.skip("no CUDA device")
    x = rng.standard_normal((50, 20))
    np.testing.assert_allclose(rdm(x, device="cuda"), rdm(x), atol=1e-12)


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def test_validation_errors(rng):
    x = rng.standard_normal((6, 4))
    with pytest.raises(ValueError, match="unknown RDM method"):
        rdm(x, "cityblock")
    with pytest.raises(ValueError, match="2-D"):
        rdm(x[0])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        rdm(bad)
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        rdm(x[:1])
    with pytest.raises(ValueError, match="symmetric"):
        rdm(x, "mahalanobis", noise_precision=np.triu(np.ones((4, 4))))
    with pytest.raises(ValueError, match="shape"):
        rdm(x, "mahalanobis", noise_precision=np.eye(3))
    with pytest.raises(ValueError, match="needs conditions"):
        rdm(x, "crossnobis")
    with pytest.raises(ValueError, match="every condition in every fold"):
        rdm(x, "crossnobis", conditions=[0, 1, 0, 1, 0, 0], folds=[0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="same number of observations"):
        rdm(x, "crossnobis", conditions=[0, 1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="only used by crossnobis"):
        rdm(x, "euclidean", folds=np.zeros(6))


def test_doctests():
    result = doctest.testmod(rdm_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

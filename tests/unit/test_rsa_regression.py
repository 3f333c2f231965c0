"""Tests for neurofit.pipelines.analysis.rsa_regression (no database, fast).

The library is checked against (a) a direct least-squares reference (design with an
intercept column, ``np.linalg.lstsq``), (b) the 2- and 3-group inclusion-exclusion
formulas of the project note ``metrics.md`` section 2c written out by hand and a
brute-force Möbius sum over subsets, (c) simulations with planted unique and shared
variance, and (d) the multi-RDM-group case that public code (``vpart_general`` of
dnn2brain-function) gets wrong.
"""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest

from neurofit.pipelines.analysis import rsa_regression
from neurofit.pipelines.analysis.rsa_regression import rdm_regression, variance_partitioning

N_PAIRS = 66 * 65 // 2  # the condensed RDM of 66 stimuli


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(4242)


def _reference_fit(y: np.ndarray, x: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """R^2, adjusted R^2, slopes and intercept with an explicit intercept column."""
    design = np.column_stack([np.ones(y.size), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    r2 = 1.0 - residual @ residual / np.sum((y - y.mean()) ** 2)
    n, p = x.shape
    return r2, 1.0 - (1.0 - r2) * (n - 1) / (n - p - 1), beta[1:], beta[0]


def _adj(y, *blocks) -> float:
    return rdm_regression(y, np.column_stack(blocks))["adjusted_r2"]


# ----------------------------------------------------------------------------------------
# rdm_regression
# ----------------------------------------------------------------------------------------


def test_regression_matches_reference(rng):
    x = rng.standard_normal((N_PAIRS, 4)) * [1.0, 10.0, 0.1, 3.0] + [5.0, -2.0, 0.0, 100.0]
    y = x @ [0.5, -0.1, 3.0, 0.02] + 7.0 + rng.standard_normal(N_PAIRS)
    fit = rdm_regression(y, x)
    r2, adjusted, slopes, intercept = _reference_fit(y, x)
    assert fit["r2"] == pytest.approx(r2, abs=1e-12)
    assert fit["adjusted_r2"] == pytest.approx(adjusted, abs=1e-12)
    np.testing.assert_allclose(fit["coefficients"], slopes, rtol=1e-10)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-10)
    assert fit["adjusted_r2"] == pytest.approx(
        1 - (1 - fit["r2"]) * (N_PAIRS - 1) / (N_PAIRS - 4 - 1), abs=1e-15
    )


def test_regression_with_collinear_layer_rdms(rng):
    """Layer RDMs nearly collinear: float64 QR agrees with an SVD reference to 1e-10,
    while float32 normal equations (the public code's solver) are far off."""
    base = rng.standard_normal(N_PAIRS) + 3.0
    x = np.column_stack([base + 1e-4 * rng.standard_normal(N_PAIRS) for _ in range(5)])
    y = base + 0.02 * x[:, 2] + 0.5 * rng.standard_normal(N_PAIRS)
    fit = rdm_regression(y, x)
    r2, _, _, _ = _reference_fit(y, x)
    assert fit["r2"] == pytest.approx(r2, abs=1e-10)
    design = np.column_stack([np.ones(N_PAIRS), x]).astype(np.float32)
    with np.errstate(all="ignore"):
        beta32 = np.linalg.solve(design.T @ design, design.T @ y.astype(np.float32))
    residual = y - design.astype(np.float64) @ beta32
    r2_32 = 1.0 - residual @ residual / np.sum((y - y.mean()) ** 2)
    assert not abs(r2_32 - r2) < 1e-6


def test_regression_with_duplicate_and_constant_predictors(rng):
    a = rng.standard_normal(N_PAIRS)
    y = 2.0 * a + rng.standard_normal(N_PAIRS)
    single = rdm_regression(y, a)
    doubled = rdm_regression(y, np.column_stack([a, a, np.full(N_PAIRS, 3.0)]))
    assert doubled["r2"] == pytest.approx(single["r2"], abs=1e-12)
    assert np.all(np.isfinite(doubled["coefficients"]))
    assert doubled["coefficients"][:2].sum() == pytest.approx(single["coefficients"][0], rel=1e-10)
    assert doubled["coefficients"][2] == 0.0
    assert doubled["adjusted_r2"] < single["adjusted_r2"]  # p = 3 columns still count


def test_regression_errors(rng):
    y = rng.standard_normal(10)
    with pytest.raises(ValueError, match="n_pairs > p \\+ 1"):
        rdm_regression(y, rng.standard_normal((10, 9)))
    with pytest.raises(ValueError, match="shape"):
        rdm_regression(y, rng.standard_normal((9, 2)))
    with pytest.raises(ValueError, match="constant"):
        rdm_regression(np.ones(10), rng.standard_normal(10))
    bad = y.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        rdm_regression(bad, rng.standard_normal(10))


# ----------------------------------------------------------------------------------------
# variance partitioning: formulas
# ----------------------------------------------------------------------------------------


def test_two_groups_match_the_note_formulas(rng):
    x1, x2 = rng.standard_normal((2, N_PAIRS))
    y = x1 + x2 + 0.5 * (x1 + x2) ** 2 + rng.standard_normal(N_PAIRS)
    out = variance_partitioning(y, {"one": x1, "two": x2})
    r1, r2, r12 = _adj(y, x1), _adj(y, x2), _adj(y, x1, x2)
    shared = r1 + r2 - r12
    assert out["partition"][("one", "two")] == pytest.approx(shared, abs=1e-12)
    assert out["unique"]["one"] == pytest.approx(r1 - shared, abs=1e-12)
    assert out["unique"]["two"] == pytest.approx(r2 - shared, abs=1e-12)
    assert out["adjusted_r2"][("one",)] == pytest.approx(r1, abs=1e-12)
    assert out["total"] == pytest.approx(r12, abs=1e-12)


def test_three_groups_match_the_note_formulas(rng):
    latent = rng.standard_normal((4, N_PAIRS))
    g1 = np.column_stack([latent[0] + latent[3], latent[0] - 0.5 * latent[1]])
    g2 = latent[1] + 0.7 * latent[3]
    g3 = np.column_stack([latent[2], latent[2] * latent[0], latent[3]])
    y = latent.sum(axis=0) + rng.standard_normal(N_PAIRS)
    out = variance_partitioning(y, {"g1": g1, "g2": g2, "g3": g3})
    r = {
        (1,): _adj(y, g1), (2,): _adj(y, g2), (3,): _adj(y, g3),
        (1, 2): _adj(y, g1, g2), (1, 3): _adj(y, g1, g3), (2, 3): _adj(y, g2, g3),
        (1, 2, 3): _adj(y, g1, g2, g3),
    }  # fmt: skip
    y123 = r[1,] + r[2,] + r[3,] - r[1, 2] - r[1, 3] - r[2, 3] + r[1, 2, 3]
    y12 = r[1,] + r[2,] - r[1, 2] - y123
    y13 = r[1,] + r[3,] - r[1, 3] - y123
    y23 = r[2,] + r[3,] - r[2, 3] - y123
    y1 = r[1,] - y12 - y13 - y123
    part = out["partition"]
    assert part[("g1", "g2", "g3")] == pytest.approx(y123, abs=1e-12)
    assert part[("g1", "g2")] == pytest.approx(y12, abs=1e-12)
    assert part[("g1", "g3")] == pytest.approx(y13, abs=1e-12)
    assert part[("g2", "g3")] == pytest.approx(y23, abs=1e-12)
    assert part[("g1",)] == pytest.approx(y1, abs=1e-12)
    assert part[("g1",)] == pytest.approx(r[1, 2, 3] - r[2, 3], abs=1e-12)
    assert sum(part.values()) == pytest.approx(r[1, 2, 3], abs=1e-12)


def test_four_groups_against_brute_force_moebius_sum(rng):
    latent = rng.standard_normal((5, N_PAIRS))
    groups = {
        "a": np.column_stack([latent[0], latent[0] + latent[4]]),
        "b": latent[1] + 0.5 * latent[4],
        "c": np.column_stack([latent[2], latent[4], latent[1] - latent[2]]),
        "d": latent[3],
    }
    y = np.array([1.0, 0.8, 0.6, 0.4, 1.2]) @ latent + rng.standard_normal(N_PAIRS)
    out = variance_partitioning(y, groups)
    names = tuple(groups)
    assert out["groups"] == names and len(out["partition"]) == 15

    def adj(subset):
        return _adj(y, *(groups[g] for g in subset)) if subset else 0.0

    full = adj(names)
    for size in range(1, 5):
        for subset in itertools.combinations(names, size):
            assert out["adjusted_r2"][subset] == pytest.approx(adj(subset), abs=1e-12)
            expected = 0.0
            for k in range(1, size + 1):
                for sub in itertools.combinations(subset, k):
                    rest = tuple(g for g in names if g not in sub)
                    expected += (-1) ** (size - k) * (full - adj(rest))
            assert out["partition"][subset] == pytest.approx(expected, abs=1e-11)
    for name in names:
        rest = tuple(g for g in names if g != name)
        assert out["unique"][name] == pytest.approx(full - adj(rest), abs=1e-12)
    assert sum(out["partition"].values()) == pytest.approx(out["total"], abs=1e-12)


# ----------------------------------------------------------------------------------------
# variance partitioning: simulations with planted variance
# ----------------------------------------------------------------------------------------


def _orthonormal_components(rng, k: int) -> np.ndarray:
    """k centred, mutually orthogonal unit vectors of length N_PAIRS, shape (k, N_PAIRS)."""
    raw = np.column_stack([np.ones(N_PAIRS), rng.standard_normal((N_PAIRS, k))])
    q, _ = np.linalg.qr(raw)
    return q[:, 1:].T


def test_planted_unique_and_shared_variance_exact(rng):
    """target = a q_A + b q_B + c q_AB + s q_noise with orthonormal centred q's.

    Group A spans {q_A, q_AB} with two RDMs and group B spans {q_B, q_AB} with two RDMs,
    so R^2_A = (a^2 + c^2)/T, R^2_B = (b^2 + c^2)/T, R^2_AB = (a^2 + b^2 + c^2)/T with
    T = a^2 + b^2 + c^2 + s^2 exactly: unique_A = a^2/T, unique_B = b^2/T,
    shared = c^2/T.
    """
    q_a, q_b, q_ab, q_noise = _orthonormal_components(rng, 4)
    a, b, c, s = 2.0, 1.0, 1.5, 1.5
    target = 4.0 + a * q_a + b * q_b + c * q_ab + s * q_noise
    groups = {
        "A": np.column_stack([q_a + 0.5 * q_ab + 3.0, -0.3 * q_a + q_ab]),
        "B": np.column_stack([q_b + q_ab, 2.0 * (q_b - q_ab) + 1.0]),
    }
    total = a**2 + b**2 + c**2 + s**2
    raw = variance_partitioning(target, groups, adjusted=False)
    assert raw["unique"]["A"] == pytest.approx(a**2 / total, abs=1e-10)
    assert raw["unique"]["B"] == pytest.approx(b**2 / total, abs=1e-10)
    assert raw["partition"][("A", "B")] == pytest.approx(c**2 / total, abs=1e-10)
    assert raw["total"] == pytest.approx(1 - s**2 / total, abs=1e-10)
    adjusted = variance_partitioning(target, groups)  # adjusted R^2: tiny p/n shrinkage
    assert adjusted["unique"]["A"] == pytest.approx(a**2 / total, abs=2e-3)
    assert adjusted["partition"][("A", "B")] == pytest.approx(c**2 / total, abs=2e-3)


def test_planted_variance_recovered_from_random_rdms(rng):
    """Same design with independent Gaussian latents: recovery within sampling error.

    Each fraction has a standard error of roughly 2/sqrt(N_PAIRS) ~ 0.04 at most here;
    the tolerance is 0.05.
    """
    i, j = np.triu_indices(66, 1)
    positions = rng.standard_normal((66, 5))
    latent = np.stack([np.abs(positions[i, k] - positions[j, k]) for k in range(4)])
    latent = (latent - latent.mean(axis=1, keepdims=True)) / latent.std(axis=1, keepdims=True)
    l_a, l_b, l_ab, noise = latent
    target = 2.0 * l_a + 1.0 * l_b + 1.5 * l_ab + 1.5 * noise
    groups = {
        "A": np.column_stack([l_a + 0.5 * l_ab, l_ab - 0.3 * l_a]),
        "B": np.column_stack([l_b + l_ab, l_b - l_ab]),
    }
    out = variance_partitioning(target, groups)
    total = 4.0 + 1.0 + 2.25 + 2.25
    assert out["unique"]["A"] == pytest.approx(4.0 / total, abs=0.05)
    assert out["unique"]["B"] == pytest.approx(1.0 / total, abs=0.05)
    assert out["partition"][("A", "B")] == pytest.approx(2.25 / total, abs=0.05)


def test_multi_rdm_group_is_removed_as_a_whole(rng):
    """Group A holds two noisy copies of one signal. Removing the whole group loses that
    signal (unique_A ~ 4/9.x); removing only its first RDM (the public-code bug) keeps
    it through the second copy and reports almost no unique variance."""
    q_a, q_b, e1, e2, q_noise = _orthonormal_components(rng, 5)
    group_a = np.column_stack([q_a + 0.3 * e1, q_a + 0.3 * e2])
    group_b = q_b
    target = 2.0 * q_a + 1.0 * q_b + 2.0 * q_noise
    out = variance_partitioning(target, {"A": group_a, "B": group_b}, adjusted=False)

    full = rdm_regression(target, np.column_stack([group_a, group_b]))["r2"]
    without_group = rdm_regression(target, group_b)["r2"]
    buggy = full - rdm_regression(target, np.column_stack([group_a[:, 1], group_b]))["r2"]

    assert out["unique"]["A"] == pytest.approx(full - without_group, abs=1e-12)
    # planted: the best fit from group A is 2 q_A (the mean of the copies cancels most
    # of e1, e2), i.e. close to 4 / 9 of the variance
    assert out["unique"]["A"] == pytest.approx(4.0 / 9.0, abs=0.05)
    assert out["unique"]["A"] > 0.3
    assert buggy < 0.1


def test_partition_errors(rng):
    y = rng.standard_normal(20)
    with pytest.raises(ValueError, match="non-empty mapping"):
        variance_partitioning(y, {})
    with pytest.raises(ValueError, match=r"groups\['b'\]"):
        variance_partitioning(y, {"a": rng.standard_normal(20), "b": rng.standard_normal(19)})
    with pytest.raises(ValueError, match="at most 16"):
        variance_partitioning(y, {k: rng.standard_normal(20) for k in range(17)})
    with pytest.raises(ValueError, match="n_pairs > p \\+ 1"):
        variance_partitioning(
            y, {"a": rng.standard_normal((20, 10)), "b": rng.standard_normal((20, 9))}
        )


def test_doctests():
    result = doctest.testmod(rsa_regression, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

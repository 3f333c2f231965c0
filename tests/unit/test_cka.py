"""Tests for neurofit.pipelines.analysis.cka (no database, fast).

The library is checked against references written here independently and literally from
the definitions (HSIC with an explicit centring matrix H; Kornblith et al.'s ``gram_rbf``
and ``center_gram``, biased and unbiased, as described in the project note ``metrics.md``
section 3), against the known invariances of CKA, and against its known non-invariance
under general linear maps.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from neurofit.pipelines.analysis import cka as cka_module
from neurofit.pipelines.analysis.cka import (
    cka,
    cka_matrix,
    debiased_linear_cka,
    linear_cka,
    rbf_cka,
)

# ----------------------------------------------------------------------------------------
# independent references (dense n x n matrices, written from the definitions)
# ----------------------------------------------------------------------------------------


def ref_hsic(k, m):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ m @ h) / (n - 1) ** 2


def ref_cka_from_grams(k, m):
    return ref_hsic(k, m) / np.sqrt(ref_hsic(k, k) * ref_hsic(m, m))


def ref_linear_cka(x, y):
    return ref_cka_from_grams(x @ x.T, y @ y.T)


def ref_gram_rbf(x, threshold):
    """Kornblith's gram_rbf, literally: distances from raw dot products, full-matrix median."""
    dot = x @ x.T
    sq_norms = np.diag(dot)
    sq_dist = -2 * dot + sq_norms[:, None] + sq_norms[None, :]
    return np.exp(-sq_dist / (2 * threshold**2 * np.median(sq_dist)))


def ref_center_gram(k, unbiased=False):
    """Kornblith's center_gram, literally."""
    k = k.copy()
    n = k.shape[0]
    if unbiased:
        np.fill_diagonal(k, 0)
        means = np.sum(k, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        k -= means[:, None]
        k -= means[None, :]
        np.fill_diagonal(k, 0)
    else:
        means = np.mean(k, 0)
        means -= np.mean(means) / 2
        k -= means[:, None]
        k -= means[None, :]
    return k


def ref_kornblith_cka(k, m, debiased=False):
    k = ref_center_gram(k, debiased)
    m = ref_center_gram(m, debiased)
    return k.ravel() @ m.ravel() / (np.linalg.norm(k) * np.linalg.norm(m))


def related(rng, n, p1, p2, noise=1.0):
    x = rng.standard_normal((n, p1))
    y = x @ rng.standard_normal((p1, p2)) + noise * rng.standard_normal((n, p2))
    return x, y


# ----------------------------------------------------------------------------------------
# linear CKA
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, p1, p2",
    [(60, 5, 8), (40, 70, 90), (40, 7, 90), (30, 30, 31)],
    ids=["features", "gram", "mixed", "boundary"],
)
def test_linear_cka_equals_hsic_reference(n, p1, p2):
    rng = np.random.default_rng(n + p1 + p2)
    x, y = related(rng, n, p1, p2)
    x += 5.0  # uncentred input: the function must centre
    assert linear_cka(x, y) == pytest.approx(ref_linear_cka(x, y), abs=1e-10)
    assert linear_cka(x, y) == pytest.approx(ref_kornblith_cka(x @ x.T, y @ y.T), abs=1e-10)


def test_linear_cka_invariances():
    rng = np.random.default_rng(1)
    x, y = related(rng, 80, 6, 9)
    base = linear_cka(x, y)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert not np.allclose(q, np.eye(6))
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, 0.01 * y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(7.0 * x @ q + 3.0, y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(y, x) == pytest.approx(base, abs=1e-12)


def test_linear_cka_identical_is_one_and_range():
    rng = np.random.default_rng(2)
    x, y = related(rng, 50, 4, 60)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-14)
    assert linear_cka(y, y) == pytest.approx(1.0, abs=1e-14)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_linear_cka_not_invariant_to_general_linear_maps():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 4))
    a = np.diag([10.0, 1.0, 0.1, 0.1]) @ np.linalg.qr(rng.standard_normal((4, 4)))[0]
    assert abs(np.linalg.det(a)) > 0  # invertible
    changed = linear_cka(x, x @ a)
    assert changed < 0.8  # an invertible map loses similarity (CCA would give 1)
    assert linear_cka(x @ a, x @ a) == pytest.approx(1.0)


def test_constant_input_gives_nan():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 3))
    constant = np.ones((20, 2))
    assert np.isnan(linear_cka(x, constant))
    assert np.isnan(rbf_cka(x, constant))
    assert np.isnan(debiased_linear_cka(x, constant))


# ----------------------------------------------------------------------------------------
# RBF CKA
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_cka_matches_kornblith_reference(threshold):
    rng = np.random.default_rng(5)
    x, y = related(rng, 70, 5, 12, noise=2.0)
    x += 100.0  # offset: the reference's raw dot products lose digits, ours do not
    expected = ref_kornblith_cka(ref_gram_rbf(x, threshold), ref_gram_rbf(y, threshold))
    assert rbf_cka(x, y, threshold) == pytest.approx(expected, abs=1e-9)
    assert cka(x, y, "rbf", threshold=threshold) == rbf_cka(x, y, threshold)


def test_rbf_median_includes_diagonal_zeros():
    # Odd n: the median over n² entries with n diagonal zeros differs from the median of
    # the off-diagonal distances only; the reference (zeros included) must be matched.
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.standard_normal((9, 2)), 10 + rng.standard_normal((2, 2))])
    y = rng.standard_normal((11, 3))
    expected = ref_kornblith_cka(ref_gram_rbf(x, 0.5), ref_gram_rbf(y, 0.5))
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    off = d[~np.eye(11, dtype=bool)]
    assert np.median(d) != np.median(off)
    wrong = ref_kornblith_cka(
        np.exp(-d / (2 * 0.25 * np.median(off))), ref_gram_rbf(y, 0.5)
    )
    assert abs(wrong - expected) > 1e-4
    assert rbf_cka(x, y) == pytest.approx(expected, abs=1e-12)


def test_rbf_cka_identical_and_rotation():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 5))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=1e-14)
    assert rbf_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------------------
# debiased CKA
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, p1, p2", [(30, 4, 6), (25, 40, 3), (8, 2, 2)])
def test_debiased_equals_u_centred_gram_reference(n, p1, p2):
    rng = np.random.default_rng(n * p1)
    x, y = related(rng, n, p1, p2)
    expected = ref_kornblith_cka(x @ x.T, y @ y.T, debiased=True)
    assert debiased_linear_cka(x + 3.0, y) == pytest.approx(expected, abs=1e-10)


def test_debiased_close_to_linear_for_large_n_and_near_zero_for_independent():
    rng = np.random.default_rng(8)
    x, y = related(rng, 3000, 5, 5, noise=1.0)
    lin, deb = linear_cka(x, y), debiased_linear_cka(x, y)
    assert lin > 0.5
    assert deb == pytest.approx(lin, abs=0.01)

    a = rng.standard_normal((300, 40))
    b = rng.standard_normal((300, 40))
    assert linear_cka(a, b) > 0.08  # biased upwards for independent data
    assert abs(debiased_linear_cka(a, b)) < 0.02


def test_debiased_needs_four_samples():
    x = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match="at least 4 samples"):
        debiased_linear_cka(x, x)


# ----------------------------------------------------------------------------------------
# cka_matrix
# ----------------------------------------------------------------------------------------


def make_layers(rng, n, widths):
    base = rng.standard_normal((n, 6))
    return [
        np.tanh(base @ rng.standard_normal((6, w))) + 0.3 * rng.standard_normal((n, w))
        for w in widths
    ]


@pytest.mark.parametrize("method", ["linear", "rbf", "debiased"])
def test_cka_matrix_equals_pairwise_calls(method):
    rng = np.random.default_rng(9)
    layers_a = make_layers(rng, 40, [3, 50, 12])  # 50 > n: a Gram-form layer
    layers_b = make_layers(rng, 40, [7, 45])
    sym = cka_matrix(layers_a, method=method)
    expected_sym = np.array([[cka(a, b, method) for b in layers_a] for a in layers_a])
    np.testing.assert_allclose(sym, expected_sym, rtol=0, atol=1e-12)
    assert np.array_equal(sym, sym.T)
    assert np.array_equal(np.diag(sym), np.ones(3))

    cross = cka_matrix(layers_a, layers_b, method=method)
    expected = np.array([[cka(a, b, method) for b in layers_b] for a in layers_a])
    assert cross.shape == (3, 2)
    np.testing.assert_allclose(cross, expected, rtol=0, atol=1e-12)
    # an actual comparison, not a constant: layers differ in similarity
    assert np.ptp(cross) > 0.01


@pytest.mark.parametrize("method", ["linear", "rbf", "debiased"])
def test_cka_matrix_torch_path_matches_numpy(method):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    layers = make_layers(rng, 30, [4, 40])
    expected = cka_matrix(layers, [layers[0][:, :2]], method=method)
    got = cka_matrix(
        [torch.from_numpy(layers[0]).float(), layers[1]],
        [layers[0][:, :2]],
        method=method,
        device="cpu",
    )
    # the first layer went through float32: agreement to float32 precision
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    got64 = cka_matrix(layers, [layers[0][:, :2]], method=method, device="cpu")
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-12)


def test_cka_matrix_validation_names_the_layer():
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError, match=r"layers_b\[1\] with shape \(9, 3\)"):
        cka_matrix([rng.standard_normal((10, 2))], [rng.standard_normal((10, 2)),
                                                   rng.standard_normal((9, 3))])
    with pytest.raises(ValueError, match=r"2-D.*\(10, 2, 2\)"):
        cka_matrix([rng.standard_normal((10, 2, 2))])
    with pytest.raises(ValueError, match="empty"):
        cka_matrix([])
    with pytest.raises(ValueError, match="method"):
        cka_matrix([rng.standard_normal((10, 2))], method="cca")
    with pytest.raises(ValueError, match="non-finite"):
        linear_cka(np.array([[0.0], [np.nan]]), np.array([[0.0], [1.0]]))


def test_doctests():
    result = doctest.testmod(cka_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5
    assert result.failed == 0


@pytest.mark.parametrize("method", ["linear", "debiased"])
def test_cka_matrix_blocked_products(method, monkeypatch):
    # Force several column blocks (and a layer wider than a block) in the feature form.
    rng = np.random.default_rng(12)
    layers_a = make_layers(rng, 60, [5, 4, 3, 20, 9])  # groups [5, 4, 3], [20], [9]
    layers_b = make_layers(rng, 60, [8, 2, 30])
    expected_sym = cka_matrix(layers_a, method=method)
    expected = cka_matrix(layers_a, layers_b, method=method)
    monkeypatch.setattr(cka_module, "_BLOCK_COLUMNS", 12)
    assert len(cka_module._column_groups(
        cka_module._prepare_side(cka_module._NumpyOps(), layers_a, method, 0.5, 60, False)
    )) == 3
    np.testing.assert_allclose(cka_matrix(layers_a, method=method), expected_sym, atol=1e-13)
    np.testing.assert_allclose(cka_matrix(layers_a, layers_b, method=method), expected, atol=1e-13)

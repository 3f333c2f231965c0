"""Batched fixed-point finding on maps with known fixed points."""

import numpy as np
import torch

from neurofit.pipelines.analysis import fixed_points as fp


def _linear_map(a: np.ndarray, b: np.ndarray):
    A, B = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    return lambda h, u: h @ A.T + B  # h* = (I - A)^-1 b


def test_linear_map_fixed_point_and_stability():
    a = np.diag([0.5, 1.5])
    b = np.array([1.0, -1.0])
    step = _linear_map(a, b)
    found = fp.find_fixed_points(step, np.random.default_rng(0).normal(size=(8, 2)), np.zeros(0), lr=0.1,
                                 n_iters=300)
    assert found["converged"].all()
    np.testing.assert_allclose(found["points"], np.tile(np.linalg.solve(np.eye(2) - a, b), (8, 1)), atol=1e-3)
    eig = fp.jacobian_eigenvalues(step, found["points"][:1])
    np.testing.assert_allclose(np.sort(np.abs(eig[0])), [0.5, 1.5], atol=1e-5)
    assert not fp.classify(eig)[0]  # 1.5 lies outside the unit circle


def test_bistable_map_finds_both_attractors_and_the_saddle():
    step = lambda h, u: h + 0.1 * (h - h**3)  # noqa: E731 (fixed points -1, 0, 1 per dimension)
    initial = np.linspace(-1.5, 1.5, 31)[:, None]
    found = fp.find_fixed_points(step, initial, lr=0.02, n_iters=4000, q_threshold=1e-8)
    points = found["points"][found["converged"]]
    unique = points[fp.unique_points(points, 0.1)]
    assert sorted(np.round(unique[:, 0], 2)) == [-1.0, 0.0, 1.0]
    stable = fp.classify(fp.jacobian_eigenvalues(step, unique))
    # dF/dh = 1 + 0.1 (1 - 3h²): 1.1 at 0 (unstable), 0.8 at ±1 (stable)
    assert {int(round(p)): bool(s) for p, s in zip(unique[:, 0], stable)} == {-1: True, 0: False, 1: True}


def test_batched_equals_one_by_one():
    step = lambda h, u: torch.tanh(1.5 * h) + u  # noqa: E731
    initial = np.random.default_rng(1).normal(size=(4, 3))
    a = fp.find_fixed_points(step, initial, np.zeros(3), n_iters=150, tolerance=0.0)
    b = fp.find_fixed_points_one_by_one(step, initial, np.zeros(3), n_iters=150, tolerance=0.0)
    np.testing.assert_allclose(a["points"], b["points"], atol=1e-5)  # Adam is elementwise: each state's problem is independent

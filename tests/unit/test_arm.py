"""DeepDraw's 4-DoF arm: forward kinematics against the rotation-matrix definition, batched IK."""

import numpy as np
import pytest

from neurofit.datasets import arm


def _rot(angle, axis):
    a = np.deg2rad(angle)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_forward_kinematics_is_deepdraws_chain_of_rotations():
    rng = np.random.default_rng(0)
    q = rng.uniform(arm.MIN_ANGLES, arm.MAX_ANGLES, (50, 4))
    expected = []
    for e, s, r, f in q:
        shoulder = _rot(e, "y") @ _rot(s, "z") @ _rot(-e, "y") @ _rot(r, "y")
        expected.append(shoulder @ (_rot(f, "x") @ [0, -26, 0] + [0, -33, 0]))
    np.testing.assert_allclose(arm.forward_kinematics(q), expected, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(arm.forward_kinematics(q, elbow=True), axis=1), 33.0)
    # a straight arm reaches humerus + forearm
    np.testing.assert_allclose(np.linalg.norm(arm.forward_kinematics(np.zeros(4))), 59.0)


def test_jacobian_matches_central_differences():
    q = np.array([[30.0, 60.0, -20.0, 80.0]])
    h = 1e-4
    numeric = np.stack([(arm.forward_kinematics(q + h * e) - arm.forward_kinematics(q - h * e))[0] / (2 * h)
                        for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(arm.jacobian(q)[0], numeric, atol=1e-4)


def test_batched_ik_traces_reachable_paths_within_limits():
    rng = np.random.default_rng(1)
    q_path = np.linspace([20, 50, -30, 60], [40, 70, -10, 90], 30)[None] + rng.normal(0, 2, (8, 1, 4))
    hand = arm.forward_kinematics(q_path)
    q = arm.inverse_kinematics(hand, start=q_path[:, 0] + 5)
    assert q.shape == (8, 30, 4)
    assert np.all(q >= arm.MIN_ANGLES) and np.all(q <= arm.MAX_ANGLES)
    assert np.all(arm.tracing_error(q, hand) < 1e-2)


def test_out_of_reach_points_leave_a_large_tracing_error():
    hand = np.array([[[0.0, -80.0, 0.0]] * 5])  # 80 cm away: the arm is 59 cm long
    error = arm.tracing_error(arm.inverse_kinematics(hand), hand)
    assert error[0] > 5 * 20.0  # at least 21 cm short at each of 5 points


def test_ik_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="n_trajectories, n_time, 3"):
        arm.inverse_kinematics(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="trailing axis of 4"):
        arm.forward_kinematics(np.zeros((2, 3)))

"""DeepDraw's 4-DoF arm: forward kinematics and batched inverse kinematics (numpy only).

The arm of Sandbrink, Mamidanna et al. (eLife 2023; ``amathislab/DeepDraw``,
``dataset/pcr_data_utils.py``): a ball-and-socket shoulder with three angles (elevation plane
``elv_angle``, ``shoulder_elv``, ``shoulder_rot``) and a hinge elbow (``elbow_flexion``); humerus
33 cm, forearm 26 cm; angles in degrees. In the shoulder frame {S} the arm hangs along -y:

    R_shoulder = Ry(elv) Rz(shoulder_elv) Ry(-elv) Ry(shoulder_rot)
    hand       = R_shoulder (Rx(elbow_flexion) (0, -26, 0) + (0, -33, 0))

World coordinates {W} (x forward, y lateral, z up) relate to {S} by ``world = SHOULDER_TO_WORLD
@ shoulder``.

Inverse kinematics. DeepDraw solves every point with SLSQP, minimising the distance of the
joint angles to the previous point's solution subject to reaching the point (82 ms per point
here). `inverse_kinematics` instead follows the whole trajectory batch at once by damped least
squares from the previous posture (resolved-rate control): at each time step a few Gauss-Newton
steps ``dq = J' (J J' + λ² I)⁻¹ e`` move every trajectory's posture to its next point. The
minimum-norm step is the first-order solution of DeepDraw's "closest posture that reaches the
point", so both stay near the previous posture; they need not pick the identical posture of
the redundant arm. Joint limits are enforced by clipping; a point the arm cannot reach within
them leaves a residual, and the trajectory is rejected (`tracing_error`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FOREARM_CM",
    "HUMERUS_CM",
    "JOINT_NAMES",
    "MAX_ANGLES",
    "MIN_ANGLES",
    "REST_POSTURE",
    "SHOULDER_TO_WORLD",
    "forward_kinematics",
    "inverse_kinematics",
    "jacobian",
    "tracing_error",
]

JOINT_NAMES = ("elv_angle", "shoulder_elv", "shoulder_rot", "elbow_flexion")
HUMERUS_CM = 33.0
FOREARM_CM = 26.0
#: Joint limits (degrees), DeepDraw's ``Arm.min_angles`` / ``max_angles`` (the MoBL model's).
MIN_ANGLES = np.array([-90.0, 0.0, -90.0, 0.0])
MAX_ANGLES = np.array([130.0, 180.0, 20.0, 130.0])
#: DeepDraw's default posture ``q0`` (degrees): the first point's IK starts here.
REST_POSTURE = np.array([50.0, 40.0, 20.0, 75.0])
#: world = SHOULDER_TO_WORLD @ shoulder (DeepDraw's ``shoulder_to_world``).
SHOULDER_TO_WORLD = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def forward_kinematics(q: np.ndarray, *, elbow: bool = False) -> np.ndarray:
    """Hand (or elbow) position in the shoulder frame for joint angles ``q``.

    ``Ry(e) Rz(s) Ry(-e)`` is a rotation by ``s`` about the axis ``Ry(e) z = (sin e, 0, cos e)``,
    so the position is computed elementwise with Rodrigues' formula (no 3x3 products: the IK
    calls this for every trajectory at every iteration).

    Args:
        q: (..., 4) joint angles in degrees, in `JOINT_NAMES` order.
        elbow: return the elbow's position instead of the hand's.

    Returns:
        (..., 3) position in cm, shoulder frame {S}.
    """
    q = np.deg2rad(np.asarray(q, dtype=np.float64))
    if q.shape[-1] != 4:
        raise ValueError(f"joint angles must have a trailing axis of 4 {JOINT_NAMES}, got {q.shape}")
    elv, sh_elv, sh_rot, flex = np.moveaxis(q, -1, 0)
    # v = Rx(flex) (0, -forearm, 0) + (0, -humerus, 0)  (the elbow alone: flex-independent)
    vy = -HUMERUS_CM - (0.0 if elbow else FOREARM_CM) * np.cos(flex)
    vz = np.zeros_like(flex) if elbow else -FOREARM_CM * np.sin(flex)
    # w = Ry(rot) v
    w = (np.sin(sh_rot) * vz, vy, np.cos(sh_rot) * vz)
    ux, uz = np.sin(elv), np.cos(elv)  # rotation axis (ux, 0, uz)
    c, s = np.cos(sh_elv), np.sin(sh_elv)
    dot = ux * w[0] + uz * w[2]
    cross = (-uz * w[1], uz * w[0] - ux * w[2], ux * w[1])
    return np.stack([w[i] * c + cross[i] * s + u * dot * (1 - c)
                     for i, u in enumerate((ux, 0.0, uz))], axis=-1)


def jacobian(q: np.ndarray, step: float = 1e-6, *, at: np.ndarray | None = None) -> np.ndarray:
    """d hand / d q by forward differences: (..., 3, 4) in cm per degree.

    ``at`` is ``forward_kinematics(q)`` when the caller has it already.
    """
    q = np.asarray(q, dtype=np.float64)
    base = forward_kinematics(q) if at is None else at
    plus = forward_kinematics(q[..., None, :] + np.eye(4) * step)  # (..., 4, 3)
    return np.swapaxes((plus - base[..., None, :]) / step, -1, -2)


def _dls_steps(q, target, n_steps, damping):
    """Damped least-squares iterations from ``q`` (n, 4) towards ``target`` (n, 3)."""
    eye = np.eye(3) * damping**2
    for _ in range(n_steps):
        at = forward_kinematics(q)
        error = target - at
        if np.max(np.abs(error)) < 1e-9:
            break
        j = jacobian(q, at=at)
        step = np.linalg.solve(j @ np.swapaxes(j, -1, -2) + eye, error[..., None])
        q = np.clip(q + (np.swapaxes(j, -1, -2) @ step)[..., 0], MIN_ANGLES, MAX_ANGLES)
    return q


def inverse_kinematics(
    hand: np.ndarray,
    *,
    start: np.ndarray | None = None,
    steps_per_point: int = 6,
    first_point_steps: int = 60,
    damping: float = 1e-3,
) -> np.ndarray:
    """Joint angles tracing every hand trajectory of a batch, from the previous posture.

    Args:
        hand: (n, T, 3) hand positions in cm, shoulder frame {S}.
        start: (4,) or (n, 4) posture the first point's solve starts from (default DeepDraw's
            `REST_POSTURE`).
        steps_per_point: damped least-squares iterations per time step (each point starts from
            the previous point's posture, a small move).
        first_point_steps: iterations for the first point (a large move from ``start``).
        damping: λ of the damped pseudo-inverse, cm (keeps steps bounded near singularities).

    Returns:
        (n, T, 4) joint angles in degrees within the joint limits. Points out of reach are
        left with a residual: check `tracing_error`.
    """
    hand = np.asarray(hand, dtype=np.float64)
    if hand.ndim != 3 or hand.shape[-1] != 3:
        raise ValueError(f"hand must be (n_trajectories, n_time, 3) in cm, got shape {hand.shape}")
    n, n_time, _ = hand.shape
    q = np.broadcast_to(REST_POSTURE if start is None else np.asarray(start, float), (n, 4)).copy()
    out = np.empty((n, n_time, 4))
    for t in range(n_time):
        q = _dls_steps(q, hand[:, t], first_point_steps if t == 0 else steps_per_point, damping)
        out[:, t] = q
    return out


def tracing_error(q: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """DeepDraw's tracing error: Σ_t |FK(q_t) - hand_t| per trajectory, cm.

    Args:
        q: (n, T, 4) joint angles (degrees); hand: (n, T, 3) target positions (cm, {S}).

    Returns:
        (n,) summed Euclidean distance in cm (DeepDraw rejects a trajectory above 1e-2).
    """
    return np.linalg.norm(forward_kinematics(q) - np.asarray(hand, float), axis=-1).sum(axis=-1)

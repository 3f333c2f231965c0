"""motornet's planar arm as the PCR dataset's alternative muscle model (``muscle_model="motornet"``).

`generate_pcr(..., muscle_model="motornet")` (`neurofit.datasets.pcr`) replaces DeepDraw's 4-DoF
arm and its 25 OpenSim muscles by ``motornet.effector.RigidTendonArm26`` (motornet 0.3.0): a
planar two-joint arm (shoulder, elbow; upper arm 30.9 cm, forearm 33.3 cm; joint limits shoulder
0-135 degrees, elbow 0-155 degrees) with the six lumped muscles of Nijhof & Kouwenhoven (2000)
(`MUSCLE_NAMES`), rigid tendons. Segment lengths, limits, tendon lengths and the geometry are
read from motornet itself; motornet is imported lazily (``pip install neurofit[motornet]``).

Frame. motornet's arm frame {M} has the shoulder at the origin, x along the upper arm at shoulder
angle 0 and y at 90 degrees (motornet works in metres; this module in cm). The arm moves in the
horizontal plane at shoulder height, whose axes are {M}'s: ``world = ARM_TO_WORLD @ (x, y, z)``
with ``ARM_TO_WORLD[:, :2]`` the columns of the PCR horizontal plane (``pcr.PLANE_TO_WORLD``),
x lateral and y forward. Only the horizontal plane makes sense for a planar arm.

Inverse kinematics is analytic (`inverse_kinematics`): with the elbow limited to [0, 155]
degrees only the elbow-positive solution of the two-link arm is admissible, so every reachable
point has exactly one posture and no posture history is needed. Angles are clipped to the joint
limits; a point out of reach then leaves a residual and the trajectory is rejected on its
tracing error exactly as the 4-DoF path rejects (Σ_t |FK(q_t) - x_t| above 1e-2 cm, the
out-of-plane distance included; `tracing_error`).

Muscles (`muscle_state`). ``RigidTendonArm26.get_geometry(joint_state)`` maps a batch of joint
states (angles, angular velocities; rad, rad/s) to musculotendon lengths, their velocities and
the moment arms, without stepping any dynamics (its polynomial moment-arm model: the length is
quadratic in the angles, the velocity ``Σ_j moment_arm_j q̇_j``). The fibre length is the
musculotendon length less the tendon length (``muscle.l0_se``; rigid tendon, clipped at 0, as
``RigidTendonHillMuscle`` computes its ``muscle length`` state), in mm.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "ARM_TO_WORLD",
    "INSTALL_HINT",
    "JOINT_NAMES",
    "MUSCLE_NAMES",
    "arm_geometry",
    "effector",
    "forward_kinematics",
    "inverse_kinematics",
    "muscle_lengths",
    "muscle_state",
    "start_point_pool",
    "trace",
    "tracing_error",
]

#: RigidTendonArm26's muscles, in its order (checked against motornet when it is loaded).
MUSCLE_NAMES = ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")
JOINT_NAMES = ("shoulder", "elbow")
INSTALL_HINT = "pip install neurofit[motornet]"
#: world = ARM_TO_WORLD @ arm ({M}: x lateral, y forward, z up; world: x forward, y lateral, z up).
ARM_TO_WORLD = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# Start-point candidates ({M}, cm): the box around the arm's reachable half-annulus.
_START_BOX = ([-45.0, 0.0], [45.0, 65.0])


@lru_cache(maxsize=1)
def effector():
    """The ``motornet.effector.RigidTendonArm26`` (rigid-tendon Hill muscles) this module reads.

    Raises:
        ImportError: motornet is not installed (the message names ``pip install neurofit[motornet]``).
        RuntimeError: motornet's muscles are not `MUSCLE_NAMES` (another motornet version).
    """
    try:
        import motornet
    except ImportError as error:
        raise ImportError(f"muscle_model='motornet' needs motornet 0.3.0 ({error}); install it with "
                          f"`{INSTALL_HINT}`, or use muscle_model='opensim_surrogate'") from error
    arm = motornet.effector.RigidTendonArm26(muscle=motornet.muscle.RigidTendonHillMuscle())
    if tuple(arm.muscle_name) != MUSCLE_NAMES:
        raise RuntimeError(f"motornet's RigidTendonArm26 has the muscles {arm.muscle_name}, expected "
                           f"{list(MUSCLE_NAMES)}: neurofit supports motornet 0.3.0 ({INSTALL_HINT})")
    return arm


@lru_cache(maxsize=1)
def arm_geometry() -> dict[str, np.ndarray | float]:
    """motornet's segment lengths and joint limits.

    Returns:
        ``{"upper_arm_cm", "forearm_cm": float, "min_angles", "max_angles": (2,) degrees,
        "tendon_mm": (6,) mm}``.
    """
    arm = effector()
    return {"upper_arm_cm": 100.0 * float(arm.skeleton.L1), "forearm_cm": 100.0 * float(arm.skeleton.L2),
            "min_angles": np.rad2deg(arm.pos_lower_bound.double().numpy()),
            "max_angles": np.rad2deg(arm.pos_upper_bound.double().numpy()),
            "tendon_mm": 1000.0 * arm.muscle.l0_se.double().numpy().reshape(-1)}


def forward_kinematics(q: np.ndarray) -> np.ndarray:
    """Hand position of the planar arm.

    Args:
        q: (..., 2) joint angles (shoulder, elbow) in degrees.

    Returns:
        (..., 2) hand position in cm, arm frame {M}.
    """
    g = arm_geometry()
    q = np.deg2rad(np.asarray(q, dtype=np.float64))
    shoulder, total = q[..., 0], q[..., 0] + q[..., 1]
    return np.stack([g["upper_arm_cm"] * np.cos(shoulder) + g["forearm_cm"] * np.cos(total),
                     g["upper_arm_cm"] * np.sin(shoulder) + g["forearm_cm"] * np.sin(total)], axis=-1)


def inverse_kinematics(xy: np.ndarray) -> np.ndarray:
    """Analytic two-link inverse kinematics (the elbow-positive solution), clipped to the limits.

    Args:
        xy: (..., 2) hand positions in cm, arm frame {M}.

    Returns:
        (..., 2) joint angles (shoulder, elbow) in degrees within the joint limits. A point out
        of reach (too far, too near, or needing a shoulder angle outside its limits) gets the
        clipped posture: check `tracing_error`.
    """
    g = arm_geometry()
    l1, l2 = g["upper_arm_cm"], g["forearm_cm"]
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    cos_elbow = np.clip((x**2 + y**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    elbow = np.arccos(cos_elbow)
    shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * cos_elbow)
    shoulder = (shoulder + np.pi) % (2 * np.pi) - np.pi  # (-180, 180] degrees before clipping
    q = np.rad2deg(np.stack([shoulder, elbow], axis=-1))
    return np.clip(q, g["min_angles"], g["max_angles"])


def tracing_error(q: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """Σ_t |FK(q_t) - hand_t| per trajectory, cm (the 4-DoF path's criterion, `arm.tracing_error`).

    Args:
        q: (n, T, 2) joint angles (degrees); hand: (n, T, 2) or (n, T, 3) targets in cm, {M}
            (a third coordinate is the height above the arm's plane, counted in the error).

    Returns:
        (n,) summed Euclidean distance in cm.
    """
    hand = np.asarray(hand, dtype=np.float64)
    reached = forward_kinematics(q)
    if hand.shape[-1] == 3:
        reached = np.concatenate([reached, np.zeros_like(reached[..., :1])], axis=-1)
    return np.linalg.norm(reached - hand, axis=-1).sum(axis=-1)


def trace(world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles tracing world trajectories, and their tracing errors.

    Args:
        world: (n, T, 3) hand positions in world cm relative to the shoulder (the PCR generator's
            ``endeffector``); the arm reaches only the horizontal plane z = 0.

    Returns:
        ``(q, error)``: (n, T, 2) joint angles in degrees (`inverse_kinematics`) and (n,) tracing
        error in cm (`tracing_error`, out-of-plane distance included).
    """
    hand = np.asarray(world, dtype=np.float64) @ ARM_TO_WORLD  # row vectors: {M} = world @ ARM_TO_WORLD
    q = inverse_kinematics(hand[..., :2])
    return q, tracing_error(q, hand)


@lru_cache(maxsize=8)
def start_point_pool(n_candidates: int = 600, seed: int = 0, half_size_cm: float = 10.0,
                     grid: int = 11) -> np.ndarray:
    """Reachable start points of the planar arm in the horizontal plane: (n, 3) world cm (z = 0).

    Candidates are uniform in a box around the arm's workspace ({M} x in [-45, 45], y in [0, 65]
    cm); one is kept if a ``grid`` x ``grid`` lattice over the square of side 2 ``half_size_cm``
    around it is reachable (IK error < 1e-4 cm). DeepDraw's ``generate_startpoints`` checks the
    centre and four corners; the planar workspace is an annulus sector whose inner edge can cut a
    square between its corners, hence the lattice (cheap with analytic IK).
    """
    rng = np.random.default_rng([seed, 2])
    lo, hi = _START_BOX
    centres = rng.uniform(lo, hi, (n_candidates, 2))
    ticks = np.linspace(-half_size_cm, half_size_cm, grid)
    offsets = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    points = centres[:, None] + offsets  # (n_candidates, grid², 2)
    error = np.linalg.norm(forward_kinematics(inverse_kinematics(points)) - points, axis=-1)
    kept = centres[(error < 1e-4).all(axis=1)]
    return np.c_[kept, np.zeros(len(kept))] @ ARM_TO_WORLD.T


def muscle_state(q: np.ndarray, q_velocity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fibre lengths and velocities of the six muscles, from motornet's ``get_geometry``.

    Args:
        q: (..., 2) joint angles (shoulder, elbow) in degrees.
        q_velocity: (..., 2) angular velocities in degrees/s (None: zero).

    Returns:
        ``(lengths, velocities)``: (..., 6) fibre lengths in mm (musculotendon length less the
        rigid tendon, clipped at 0) and (..., 6) fibre velocities in mm/s, `MUSCLE_NAMES` order.
    """
    import torch

    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 2:
        raise ValueError(f"joint angles must have a trailing axis of 2 {JOINT_NAMES}, got {q.shape}")
    dq = np.zeros_like(q) if q_velocity is None else np.broadcast_to(np.asarray(q_velocity, np.float64), q.shape)
    arm = effector()
    state = torch.as_tensor(np.deg2rad(np.concatenate([q, dq], axis=-1)).reshape(-1, 4))  # float64
    with torch.no_grad():
        geometry = arm.get_geometry(state).numpy()  # (B, 2 + dof, 6): length m, velocity m/s, moments
    tendon = arm.muscle.l0_se.double().numpy().reshape(1, -1)
    lengths = 1000.0 * np.clip(geometry[:, 0] - tendon, 0.0, None)
    velocities = 1000.0 * geometry[:, 1]
    shape = (*q.shape[:-1], len(MUSCLE_NAMES))
    return lengths.reshape(shape), velocities.reshape(shape)


def muscle_lengths(q: np.ndarray) -> np.ndarray:
    """Fibre lengths of the six muscles: (..., 6) mm for joint angles (..., 2) degrees."""
    return muscle_state(q)[0]

"""The proprioceptive character-recognition dataset (PCR), generated the DeepDraw way.

Pipeline (Sandbrink, Mamidanna et al., eLife 2023; ``amathislab/DeepDraw``, ``dataset/``):

1. **Characters.** 20 classes of pen-tip trajectories in a plane (cm). DeepDraw uses the UCI
   character trajectories, which cannot be downloaded here: `draw_characters` makes smooth
   synthetic ones (a fixed random Catmull-Rom prototype per class, its control points jittered
   and its time warped per sample), and `load_trajectory_file` reads UCI-style files
   (DeepDraw's ``pcr_trajectories.hdf5`` layout: ``trajectories`` (N, 2 or 3, L) NaN-padded, cm,
   ``labels`` (N,) 1-20).
2. **Augmentation** (`sample_latents`, DeepDraw's ``sample_latent_vars``): size {0.7, 1, 1.3}
   (the trajectory grows and takes proportionally longer, its velocity profile kept);
   rotation, shear x and shear y each in {±π/6, ±π/12, 0}; speed {0.8, 1, 1.2, 1.4} (duration
   / speed); noise {0, 0.1, 0.3} (Gaussian noise of that many SDs of each muscle's length over
   the trajectory, DeepDraw's ``add_noise``); the horizontal or vertical plane; a start point
   from a pool of reachable ones (`start_point_pool`: the point and the corners of a 20 x 20 cm
   square around it are reachable, DeepDraw's ``generate_startpoints`` criterion). The drawn
   part is placed at a random offset in ``n_time`` samples and the rest held at its first and
   last point (DeepDraw's ``apply_shuffle``).
3. **Inverse kinematics** of the 4-DoF arm (`neurofit.datasets.arm`), batched; a trajectory
   whose tracing error (Σ_t |FK(q_t) - x_t|) exceeds 1e-2 cm is rejected and replaced, and the
   rejections are counted.
4. **Muscles** (`neurofit.datasets.muscles`): fibre lengths of 25 muscles and their velocities,
   ``spindle`` (N, 25, T, 2).

``muscle_model`` chooses the arm and muscles of steps 3-4: ``"opensim_surrogate"`` (the default,
above) or ``"motornet"`` (`neurofit.datasets.motornet_arm`: motornet's planar 2-joint
``RigidTendonArm26``, analytic IK, 6 muscles, ``spindle`` (N, 6, T, 2); horizontal plane only,
its start points from `motornet_arm.start_point_pool`). Rejection, noise and spindle velocities
(``np.gradient`` of the noisy lengths) are the same for both.

Kinematic features per time step are kept for tuning analyses: end-effector position in the
drawing plane, its velocity, acceleration, speed and direction, 3-D position, joint angles.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import arm, motornet_arm, muscles
from .info import DataBundle, DataInfo
from .paths import resolve_data_path
from .rows import DictRows

__all__ = [
    "CLASS_NAMES",
    "LATENT_SETS",
    "MUSCLE_MODELS",
    "build_pcr_characters",
    "character_prototypes",
    "check_muscle_model",
    "draw_characters",
    "generate_pcr",
    "kinematic_features",
    "load_trajectory_file",
    "place_trajectories",
    "sample_latents",
    "start_point_pool",
]

#: The 20 single-stroke characters of the UCI set DeepDraw uses (labels 1-20 in this order).
CLASS_NAMES = tuple("abcdeghlmnopqrsuvwyz")
#: DeepDraw's augmentation values (``sample_latent_vars``).
LATENT_SETS = {
    "size": (0.7, 1.0, 1.3),
    "rotation": (-math.pi / 6, -math.pi / 12, 0.0, math.pi / 12, math.pi / 6),
    "speed": (0.8, 1.0, 1.2, 1.4),
    "noise": (0.0, 0.1, 0.3),
}
PLANES = ("horizontal", "vertical")
#: Arm and muscle models of the generator: DeepDraw's (the OpenSim surrogate) or motornet's.
MUSCLE_MODELS = ("opensim_surrogate", "motornet")
# world = PLANE_TO_WORLD[plane] @ (x, y, 0) + start point (DeepDraw's plane_to_world).
PLANE_TO_WORLD = {
    "horizontal": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    "vertical": np.array([[0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
}
# Bounding boxes (world, cm) of DeepDraw's published start points per plane: candidates are
# drawn here and kept if reachable.
_START_BOX = {"horizontal": ([12.0, -39.0, -45.0], [45.0, 0.0, 30.0]),
              "vertical": ([0.0, -45.0, -39.0], [54.0, 15.0, 18.0])}
PROTOTYPE_SEED = 20_200_506  # the class shapes are fixed: one seed for every dataset
MAX_TRACING_ERROR_CM = 1e-2
# The base character's duration as a fraction of n_time: the largest size/speed ratio (1.3/0.8)
# must still fit.
_BASE_FRACTION = 0.58


# ---- characters -----------------------------------------------------------------------------

def character_prototypes(n_classes: int = 20, n_controls: int = 9, seed: int = PROTOTYPE_SEED) -> np.ndarray:
    """Control points of one smooth pen path per class: (n_classes, n_controls, 2) cm.

    A persistent random walk (steps of 2.5-4.5 cm, heading turning by up to ~140 degrees), centred.
    """
    rng = np.random.default_rng(seed)
    heading = rng.uniform(-np.pi, np.pi, (n_classes, 1)) + np.cumsum(
        rng.uniform(-2.4, 2.4, (n_classes, n_controls - 1)), axis=1)
    steps = rng.uniform(2.5, 4.5, heading.shape)[..., None] * np.stack([np.cos(heading), np.sin(heading)], -1)
    points = np.concatenate([np.zeros((n_classes, 1, 2)), np.cumsum(steps, axis=1)], axis=1)
    return points - points.mean(axis=1, keepdims=True)


def _catmull_rom(controls: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Points of uniform Catmull-Rom splines through ``controls`` (N, K, 2) at ``u`` (N, L) in [0, 1]."""
    n, k, _ = controls.shape
    padded = np.concatenate([2 * controls[:, :1] - controls[:, 1:2], controls,
                             2 * controls[:, -1:] - controls[:, -2:-1]], axis=1)
    s = np.clip(u, 0, 1) * (k - 1)
    segment = np.minimum(s.astype(int), k - 2)
    t = (s - segment)[..., None]
    rows = np.arange(n)[:, None]
    p0, p1, p2, p3 = (padded[rows, segment + i] for i in range(4))
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                  + (3 * p1 - p0 - 3 * p2 + p3) * t**3)


def draw_characters(labels: np.ndarray, n_points: int, rng: np.random.Generator, *,
                    jitter_cm: float = 0.2, warp: float = 0.15, n_classes: int = 20) -> np.ndarray:
    """One synthetic pen-tip trajectory per label: (N, n_points, 2) cm, starting at the origin.

    Args:
        labels: (N,) class indices in [0, n_classes).
        n_points: samples per trajectory.
        rng: randomness of the per-sample variation.
        jitter_cm: SD of the per-sample displacement of each control point.
        warp: amplitude of a smooth monotone time warp (writing speed varies within a stroke).
    """
    prototypes = character_prototypes(n_classes)
    controls = prototypes[labels] + rng.normal(0, jitter_cm, (len(labels), prototypes.shape[1], 2))
    t = np.linspace(0, 1, n_points)[None]
    a = rng.uniform(-warp, warp, (len(labels), 1))
    u = t + a * np.sin(np.pi * t) * (1 - t) * 2  # monotone for |a| < 0.5, fixed end points
    curves = _catmull_rom(controls, u)
    return curves - curves[:, :1]


def load_trajectory_file(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """UCI-style character trajectories (DeepDraw's ``pcr_trajectories.hdf5`` layout).

    Returns:
        (trajectories, labels): a list of (L_i, 2) arrays in cm (NaN columns dropped, the first
        point moved to the origin) and (N,) int labels in [0, 20).

    Raises:
        ValueError: naming the file, key and problem.
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        for key in ("trajectories", "labels"):
            if key not in f:
                raise ValueError(f"{path}: key {key!r} is missing (need 'trajectories' (N, 2|3, L) and 'labels' (N,))")
        data, labels = f["trajectories"][()], f["labels"][()]
    if data.ndim != 3 or data.shape[1] not in (2, 3) or labels.shape != data.shape[:1]:
        raise ValueError(f"{path}: 'trajectories' must be (N, 2|3, L) and 'labels' (N,), got {data.shape} and {labels.shape}")
    if labels.min() < 1 or labels.max() > 20:
        raise ValueError(f"{path}: 'labels' must lie in 1..20, got {labels.min()}..{labels.max()}")
    out = []
    for i, trajectory in enumerate(data):
        xy = trajectory[:2, ~np.isnan(trajectory).any(axis=0)].T
        if len(xy) < 2:
            raise ValueError(f"{path}: 'trajectories'[{i}] has fewer than 2 finite samples")
        out.append(xy - xy[:1])
    return out, labels.astype(np.int64) - 1


def _resample(trajectories: list[np.ndarray], n_points: int) -> np.ndarray:
    """Variable-length trajectories resampled to ``n_points`` each: (N, n_points, 2)."""
    out = np.empty((len(trajectories), n_points, 2))
    for i, xy in enumerate(trajectories):  # per file trajectory, once per dataset
        s = np.linspace(0, len(xy) - 1, n_points)
        out[i] = np.stack([np.interp(s, np.arange(len(xy)), xy[:, d]) for d in range(2)], -1)
    return out


# ---- augmentation ---------------------------------------------------------------------------

def sample_latents(n: int, rng: np.random.Generator, planes: tuple[str, ...] = PLANES,
                   max_noise: float = 0.3) -> dict[str, np.ndarray]:
    """DeepDraw's latent transformations, one per trajectory (see the module docstring).

    Returns:
        ``{"size", "rotation", "shear_x", "shear_y", "speed", "noise": (n,) float, "plane": (n,)
        int index into PLANES}`` (radians for the angles).
    """
    pick = lambda name: rng.choice(np.asarray(LATENT_SETS[name]), n)  # noqa: E731
    noise = np.asarray([v for v in LATENT_SETS["noise"] if v <= max_noise])
    return {"size": pick("size"), "rotation": pick("rotation"), "shear_x": pick("rotation"),
            "shear_y": pick("rotation"), "speed": pick("speed"), "noise": rng.choice(noise, n),
            "plane": rng.choice([PLANES.index(p) for p in planes], n)}


def place_trajectories(curves: np.ndarray, latents: dict, n_time: int, rng: np.random.Generator) -> tuple:
    """Size, rotate, shear, speed and place each character in ``n_time`` samples.

    DeepDraw applies ``aff = [[1, tan sx], [tan sy, 1]] @ R(rot)`` and scales by size; a size-s
    character at speed v lasts ``L s / v`` samples (its velocity profile kept). The drawn part
    starts at a random sample; before it the pen rests at the first point, after it at the last.

    Args:
        curves: (N, L, 2) base trajectories (cm) starting at the origin.
        latents: `sample_latents` output.
        n_time: samples of the output.

    Returns:
        ``(xy, start, end)``: (N, n_time, 2) plane coordinates (cm), and (N,) first / one-past-last
        sample of the drawn part.

    Raises:
        ValueError: a transformed character longer than n_time.
    """
    n, n_base, _ = curves.shape
    rot, sx, sy = latents["rotation"], latents["shear_x"], latents["shear_y"]
    rotation = np.stack([np.stack([np.cos(rot), -np.sin(rot)], -1), np.stack([np.sin(rot), np.cos(rot)], -1)], -2)
    shear = np.stack([np.stack([np.ones(n), np.tan(sx)], -1), np.stack([np.tan(sy), np.ones(n)], -1)], -2)
    affine = latents["size"][:, None, None] * shear @ rotation
    shaped = curves @ np.swapaxes(affine, -1, -2)
    length = np.maximum(np.round(n_base * latents["size"] / latents["speed"]).astype(int), 2)
    if length.max() > n_time:
        raise ValueError(f"a transformed character needs {length.max()} samples but n_time is {n_time}")
    start = (rng.random(n) * (n_time - length + 1)).astype(int)
    # Sample j of the output shows the base curve at fractional index (j - start) / (length - 1)
    # * (n_base - 1), clipped: the clipping is the rest before and after the drawn part.
    j = np.arange(n_time)[None]
    s = np.clip((j - start[:, None]) / (length[:, None] - 1), 0, 1) * (n_base - 1)
    lo = np.minimum(s.astype(int), n_base - 2)
    w = (s - lo)[..., None]
    rows = np.arange(n)[:, None]
    xy = shaped[rows, lo] * (1 - w) + shaped[rows, lo + 1] * w
    return xy, start, start + length


@lru_cache(maxsize=8)
def start_point_pool(plane: str, n_candidates: int = 600, seed: int = 0, half_size_cm: float = 10.0) -> np.ndarray:
    """Reachable start points of one plane: (n, 3) world cm.

    Candidates are uniform in the box of DeepDraw's published start points; one is kept if it
    and the four corners of a square of side 2 ``half_size_cm`` around it in the plane are
    reachable (IK error < 1e-4 cm), the criterion of DeepDraw's ``generate_startpoints``.
    """
    lo, hi = _START_BOX[plane]
    rng = np.random.default_rng([seed, PLANES.index(plane)])
    centres = rng.uniform(lo, hi, (n_candidates, 3))
    corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1], [0, 0]], float) * half_size_cm
    offsets = np.c_[corners, np.zeros(5)] @ PLANE_TO_WORLD[plane].T  # (5, 3) world
    points = (centres[:, None] + offsets).reshape(-1, 1, 3) @ arm.SHOULDER_TO_WORLD
    q = arm.inverse_kinematics(points, first_point_steps=80)
    error = np.linalg.norm(arm.forward_kinematics(q) - points, axis=-1).reshape(n_candidates, 5)
    return centres[(error < 1e-4).all(axis=1)]


# ---- the dataset ----------------------------------------------------------------------------

def kinematic_features(plane_xy: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Per-time-step kinematics of plane trajectories (N, T, 2) cm, DeepDraw's tuning variables.

    Returns:
        ``position`` (N, T, 2) cm, ``velocity`` cm/s and ``acceleration`` cm/s² (``np.gradient``),
        ``speed`` (N, T) cm/s, ``direction`` (N, T) radians (NaN where the pen rests).
    """
    velocity = np.gradient(plane_xy, dt, axis=1)
    acceleration = np.gradient(velocity, dt, axis=1)
    speed = np.hypot(velocity[..., 0], velocity[..., 1])
    direction = np.where(speed > 1e-9, np.arctan2(velocity[..., 1], velocity[..., 0]), np.nan)
    return {"position": plane_xy, "velocity": velocity, "acceleration": acceleration, "speed": speed,
            "direction": direction}


def _candidates(labels, n_time, rng, planes, trajectories, pools, max_noise):
    """One round of augmented candidate trajectories for ``labels``."""
    n_base = int(_BASE_FRACTION * n_time)
    if trajectories is None:
        curves = draw_characters(labels, n_base, rng)
    else:
        files, file_labels = trajectories
        pick = np.array([rng.choice(np.flatnonzero(file_labels == c)) for c in labels])
        curves = files[pick]
    latents = sample_latents(len(labels), rng, planes, max_noise)
    xy, start, end = place_trajectories(curves, latents, n_time, rng)
    world = np.empty((len(labels), n_time, 3))
    for p, plane in enumerate(PLANES):
        rows = latents["plane"] == p
        if rows.any():
            origin = pools[plane][rng.integers(0, len(pools[plane]), rows.sum())]
            world[rows] = np.c_[xy[rows], np.zeros((rows.sum(), n_time))[..., None]] @ PLANE_TO_WORLD[plane].T \
                + origin[:, None]
    return xy, world, start, end, latents


def _rank_within_class(labels: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(N,) int: how many accepted candidates of the same class come before each one."""
    ranks = np.zeros(len(labels), dtype=int)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        ranks[rows] = np.cumsum(ok[rows]) - ok[rows]
    return ranks


def check_muscle_model(muscle_model: str, planes) -> None:
    """Refuse an unknown ``muscle_model``, or a plane the model's arm cannot draw in.

    Raises:
        ValueError: naming the option and the fix.
    """
    if muscle_model not in MUSCLE_MODELS:
        raise ValueError(f"muscle_model={muscle_model!r}: choose from {list(MUSCLE_MODELS)}")
    if muscle_model == "motornet" and tuple(planes) != ("horizontal",):
        raise ValueError(f"muscle_model='motornet' is motornet's planar arm, which draws in the horizontal plane "
                         f"only, but planes={list(planes)}: pass planes=['horizontal'], or use "
                         f"muscle_model='opensim_surrogate' for the vertical plane")


def generate_pcr(n_per_class: int = 120, n_time: int = 64, seed: int = 0, *, n_classes: int = 20,
                 planes: tuple[str, ...] = PLANES, dt: float = muscles.DT, with_muscles: bool = True,
                 trajectories_path: str | None = None, max_rounds: int = 20,
                 n_start_points: int = 0, max_noise: float = 0.3,
                 muscle_model: str = "opensim_surrogate") -> dict:
    """Generate the PCR dataset: characters -> augmentation -> IK (rejecting) -> muscles.

    Args:
        n_per_class: accepted trajectories per class.
        n_time: samples per trajectory (DeepDraw: 320).
        seed: all randomness (the class prototypes are fixed, `PROTOTYPE_SEED`).
        n_classes: classes used (the first of `CLASS_NAMES`).
        planes: writing planes to sample.
        dt: time step in s (DeepDraw: 0.015).
        trajectories_path: a UCI-style file (`load_trajectory_file`) instead of synthetic characters.
        max_rounds: rounds of replacing rejected trajectories before giving up.
        n_start_points: use only the first this many start points of each plane's pool
            (0: all of them, about 190). Fewer make the task easier for small datasets.
        max_noise: largest noise level drawn from DeepDraw's {0, 0.1, 0.3} (0: noise-free).
        with_muscles: compute muscle lengths and spindle inputs (False: kinematics only).
        muscle_model: ``"opensim_surrogate"`` (DeepDraw's 4-DoF arm, 25 muscles) or ``"motornet"``
            (motornet's planar 2-joint arm, 6 muscles, ``planes=("horizontal",)`` only, its own
            pool of about 150 start points; see the module docstring).

    Returns:
        dict of arrays, N = n_classes * n_per_class, ordered by class, M muscles (25, or 6 for
        motornet), J joints (4, or 2 for motornet: shoulder, elbow): ``spindle`` (N, M, T, 2)
        float32 (mm, mm/s), ``muscle_lengths`` (N, T, M) mm, ``label`` (N,) in [0, n_classes),
        ``endeffector`` (N, T, 3) world cm, ``joint_angles`` (N, T, J) degrees, the
        `kinematic_features`, ``start_id``/``end_id`` (N,), latents (``latent_size``,
        ``latent_rotation``, ``latent_shear_x``, ``latent_shear_y``, ``latent_speed``,
        ``latent_noise``, ``latent_plane``), ``tracing_error`` (N,) cm and
        ``n_rejected`` (int: candidates whose tracing error exceeded 1e-2 cm).

    Raises:
        ValueError: an unknown ``muscle_model``, or ``"motornet"`` with a plane other than the
            horizontal one.
        ImportError: ``"motornet"`` without motornet installed.
        RuntimeError: a class could not be filled within ``max_rounds``.
    """
    check_muscle_model(muscle_model, planes)
    planar = muscle_model == "motornet"
    rng = np.random.default_rng(seed)
    if planar:
        pools = {"horizontal": motornet_arm.start_point_pool()[: n_start_points or None]}
    else:
        pools = {p: start_point_pool(p)[: n_start_points or None] for p in planes}
    trajectories = None
    if trajectories_path:
        files, file_labels = load_trajectory_file(trajectories_path)
        trajectories = (_resample(files, int(_BASE_FRACTION * n_time)), file_labels)
        missing = sorted(set(range(n_classes)) - set(file_labels.tolist()))
        if missing:
            raise ValueError(f"{trajectories_path}: no trajectories of classes {[c + 1 for c in missing]}")
    need = np.full(n_classes, n_per_class)
    parts, n_rejected = [], 0
    for round_ in range(max_rounds):
        if not need.any():
            break
        # A class whose augmentations are often unreachable would starve if only its shortfall
        # were redrawn: from the 6th round on, oversample it (x2 per round, at most x16) and keep
        # the first accepted. Data that fill within 5 rounds are drawn exactly as before.
        labels = np.repeat(np.arange(n_classes), need * min(2 ** max(round_ - 5, 0), 16))
        xy, world, start, end, latents = _candidates(labels, n_time, rng, planes, trajectories, pools, max_noise)
        if planar:
            q, error = motornet_arm.trace(world)
        else:
            hand = world @ arm.SHOULDER_TO_WORLD  # shoulder = S' world, row vectors
            q = arm.inverse_kinematics(hand)
            error = arm.tracing_error(q, hand)
        ok = error < MAX_TRACING_ERROR_CM  # strictly below, as the must-show demands
        n_rejected += int((~ok).sum())
        ok &= _rank_within_class(labels, ok) < need[labels]
        parts.append({"label": labels[ok], "position_xy": xy[ok], "endeffector": world[ok], "joint_angles": q[ok],
                      "start_id": start[ok], "end_id": end[ok], "tracing_error": error[ok],
                      **{f"latent_{k}": v[ok] for k, v in latents.items()}})
        need = need - np.bincount(labels[ok], minlength=n_classes)
    if need.any():
        raise RuntimeError(f"could not fill classes {np.flatnonzero(need).tolist()} in {max_rounds} rounds "
                           f"({n_rejected} trajectories rejected for tracing error > {MAX_TRACING_ERROR_CM} cm)")
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(data["label"], kind="stable")
    data = {k: v[order] for k, v in data.items()}
    data.update(kinematic_features(data.pop("position_xy"), dt))
    data["n_rejected"] = n_rejected
    if with_muscles:
        lengths = (motornet_arm if planar else muscles).muscle_lengths(data["joint_angles"])
        noise = data["latent_noise"][:, None, None] * lengths.std(axis=1, keepdims=True)
        lengths = lengths + noise * rng.standard_normal(lengths.shape)
        data["muscle_lengths"] = lengths
        data["spindle"] = muscles.spindle_inputs(lengths, dt).astype(np.float32)
    return data



@lru_cache(maxsize=2)
def _cached_generation(n_per_class, n_time, data_seed, n_classes, planes, trajectories_path, n_start_points,
                       max_noise, muscle_model="opensim_surrogate"):
    # Every training of one dataset config builds the same data: generate it once per process.
    return generate_pcr(n_per_class, n_time, data_seed, n_classes=n_classes, planes=planes,
                        trajectories_path=trajectories_path, n_start_points=n_start_points, max_noise=max_noise,
                        muscle_model=muscle_model)


def split_indices(labels: np.ndarray, fractions: tuple[float, float], seed: int) -> dict[str, np.ndarray]:
    """Stratified train / validation / test indices (validation and test ``fractions`` per class)."""
    rng = np.random.default_rng([seed, 7])
    tiers = {"train": [], "validation": [], "test": []}
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        # at least one per class in a tier that is asked for (the stopping rule needs validation)
        n_val, n_test = (max(int(round(f * len(rows))), int(f > 0)) for f in fractions)
        tiers["validation"].append(rows[:n_val])
        tiers["test"].append(rows[n_val:n_val + n_test])
        tiers["train"].append(rows[n_val + n_test:])
    return {k: np.sort(np.concatenate(v)) for k, v in tiers.items()}


def build_pcr_characters(
    seed: int,
    *,
    n_per_class: int = 120,
    n_time: int = 64,
    n_classes: int = 20,
    data_seed: int = 0,
    planes: tuple[str, ...] = PLANES,
    task: str = "classification",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    batch_size: int = 64,
    trajectories_path: str = "",
    n_start_points: int = 0,
    max_noise: float = 0.3,
    muscle_model: Literal["opensim_surrogate", "motornet"] = "opensim_surrogate",
) -> DataBundle:
    """PCR characters as spindle inputs: labels (DeepDraw's task) or per-step hand position.

    Batches: ``inputs`` (B, T, M, 2) float32, M = 25 muscles (``muscle_model="opensim_surrogate"``,
    DeepDraw's) or 6 (``"motornet"``: motornet's planar arm, needs ``planes=["horizontal"]``; see
    `generate_pcr`), muscle length and velocity z-scored per muscle and channel with train
    statistics (`DataInfo.normalization`); ``labels`` (B,) int64, or for
    ``task="trajectory"`` ``targets`` (B, T, 3) end-effector position (world cm, centred on each
    trajectory's start point). The data depend on ``data_seed`` only; ``seed`` is unused (the
    train loader shuffles from torch's global generator). ``n_start_points`` and ``max_noise``
    (see `generate_pcr`) shrink DeepDraw's variability for small datasets: the full
    augmentation needs DeepDraw's ~10^6 trajectories, not a few thousand. ``muscle_model`` was
    added after configs were stored: at its default it is left out of the config's hash.

    Artefacts: the per-trajectory kinematics of the test tier (``test_<feature>``; joint angles
    (n, T, 4), or (n, T, 2) for motornet), the rejection count and the tracing errors.
    """
    if task not in ("classification", "trajectory"):
        raise ValueError(f"task={task!r}: use 'classification' or 'trajectory'")
    bad = sorted(set(planes) - set(PLANES))
    if bad or not planes:
        raise ValueError(f"planes={list(planes)}: choose from {list(PLANES)}")
    check_muscle_model(muscle_model, planes)
    path = str(resolve_data_path(trajectories_path, "character trajectory file", Path.is_file)) if trajectories_path else None
    data = _cached_generation(n_per_class, n_time, data_seed, n_classes, tuple(planes), path, n_start_points,
                              float(max_noise), muscle_model)
    tiers = split_indices(data["label"], (validation_fraction, test_fraction), data_seed)
    inputs = data["spindle"].transpose(0, 2, 1, 3)  # (N, T, M, 2): time first, as sequences are
    train = inputs[tiers["train"]]
    mean, sd = train.mean(axis=(0, 1)), train.std(axis=(0, 1)) + 1e-6
    inputs = ((inputs - mean) / sd).astype(np.float32)
    loaders = {}
    for tier, rows in tiers.items():
        tensors = {"inputs": torch.as_tensor(inputs[rows])}
        if task == "classification":
            tensors["labels"] = torch.as_tensor(data["label"][rows], dtype=torch.int64)
        else:
            ee = data["endeffector"][rows]
            tensors["targets"] = torch.as_tensor(ee - ee[:, :1], dtype=torch.float32)
        # Shuffling draws from torch's global generator, which the training loop saves and restores.
        loaders[tier] = {"all": DataLoader(DictRows(tensors), batch_size=batch_size, shuffle=tier == "train")}
    classification = task == "classification"
    muscle_names = motornet_arm.MUSCLE_NAMES if muscle_model == "motornet" else muscles.MUSCLE_NAMES
    info = DataInfo(
        input_shape=(n_time, len(muscle_names), 2), n_neurons={"all": 0},
        input_unit="muscle length (mm) and velocity (mm/s), z-scored per muscle and channel",
        provides=("labels",) if classification else ("targets",), modality="sequence",
        input_axes=("time", "space", "channel"), sampling_rate=1.0 / muscles.DT,
        n_classes=n_classes if classification else 0,
        class_names=CLASS_NAMES[:n_classes] if classification else (),
        target_shape=() if classification else (3,), target_names=() if classification else ("x", "y", "z"),
        normalization={"all": {"mean": mean.tolist(), "sd": sd.tolist()}},
        extra={"muscles": list(muscle_names), "muscle_model": muscle_model, "n_rejected": int(data["n_rejected"]),
               "max_tracing_error_cm": float(data["tracing_error"].max()), "dt_s": muscles.DT},
    )
    test = tiers["test"]
    artefacts = {f"test_{k}": np.asarray(data[k][test], dtype=np.float64)
                 for k in ("position", "velocity", "acceleration", "joint_angles", "endeffector")}
    artefacts["test_label"] = data["label"][test]
    artefacts["tracing_error"] = data["tracing_error"]
    return DataBundle(loaders=loaders, info=info, artefacts=artefacts)


# Configs were stored before muscle_model existed: at its default it stays out of the hash
# (`neurofit.pipelines.registry.Builder.hashed_config`; an entry-point builder declares it here).
build_pcr_characters.neurofit_added = ("muscle_model",)

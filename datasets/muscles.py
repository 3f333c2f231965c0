"""Muscle lengths of DeepDraw's 25 arm muscles from joint angles, and their spindle inputs.

DeepDraw (``dataset/pcr_data_utils.py``, ``make_muscle_config``) sets the four joint angles of
OpenSim's MoBL-ARMS model (``MoBL_ARMS_module5_scaleIK.osim``) at every time step, equilibrates
the muscles and reads the fibre length of 25 shoulder and elbow muscles (`MUSCLE_NAMES`, in
DeepDraw's order) in mm; the network's inputs (``spindle_info``) are those lengths and their
``np.gradient`` over time (dt = 0.015 s), shape (N, 25, T, 2).

OpenSim takes about 30 ms per pose, so neurofit ships a **fitted surrogate**
(``muscle_surrogate.npz``, package data): per muscle, a polynomial of total degree
`SURROGATE_DEGREE` in the four joint angles, least-squares fitted to OpenSim's fibre lengths of
the real MoBL model (DeepDraw's file, read from ``amathislab/DeepDraw``) at poses spanning the
joint angles the character generator visits. `muscle_lengths` evaluates it for any batch in
microseconds per pose; the file records its held-out R² per muscle and the joint-angle domain it
was fitted on. ``equilibrateMuscles`` occasionally returns outlier fibre lengths (a different
equilibrium); the fit drops them robustly (poses more than 6 robust SDs off the first fit,
per muscle) and counts them.

Refit (needs ``opensim`` 4.6 and the .osim file)::

    python -m neurofit.datasets.muscles refit --osim MoBL_ARMS_module5_scaleIK.osim \
        --out datasets/muscle_surrogate.npz

`opensim_fibre_lengths` is the exact (slow) path a lab with OpenSim can use instead.
"""

from __future__ import annotations

import argparse
import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np

from .arm import JOINT_NAMES

__all__ = [
    "MUSCLE_NAMES",
    "SURROGATE_DEGREE",
    "SURROGATE_PATH",
    "fit_surrogate",
    "load_surrogate",
    "muscle_lengths",
    "opensim_fibre_lengths",
    "polynomial_features",
    "spindle_inputs",
]

#: DeepDraw's muscles and their order (``make_muscle_matrix``): 15 shoulder, 10 elbow muscles.
MUSCLE_NAMES = (
    "CORB", "DELT1", "DELT2", "DELT3", "INFSP", "LAT1", "LAT2", "LAT3", "PECM1", "PECM2", "PECM3",
    "SUBSC", "SUPSP", "TMAJ", "TMIN", "ANC", "BIClong", "BICshort", "BRA", "BRD", "ECRL", "PT",
    "TRIlat", "TRIlong", "TRImed",
)
SURROGATE_DEGREE = 4
SURROGATE_PATH = Path(__file__).with_name("muscle_surrogate.npz")
#: DeepDraw's time step of the spindle velocities (s).
DT = 0.015


def _exponents(n_vars: int, degree: int) -> np.ndarray:
    """(n_terms, n_vars) exponents of every monomial of total degree <= ``degree``."""
    terms = [e for d in range(degree + 1) for e in itertools.product(range(d + 1), repeat=n_vars)
             if sum(e) == d]
    return np.array(terms, dtype=np.int64)


def polynomial_features(z: np.ndarray, degree: int) -> np.ndarray:
    """Monomials of scaled joint angles.

    Args:
        z: (..., n_vars) scaled angles (about [-1, 1]).
        degree: total degree.

    Returns:
        (..., n_terms) monomials in `_exponents` order (the constant first).
    """
    exponents = _exponents(z.shape[-1], degree)
    powers = z[..., None, :] ** exponents  # (..., n_terms, n_vars)
    return powers.prod(axis=-1)


def _scaled(q: np.ndarray, centre: np.ndarray, half_range: np.ndarray) -> np.ndarray:
    return (np.deg2rad(np.asarray(q, dtype=np.float64)) - centre) / half_range


def fit_surrogate(q: np.ndarray, lengths: np.ndarray, *, degree: int = SURROGATE_DEGREE,
                  test_fraction: float = 0.25, seed: int = 0, outlier_sd: float = 6.0) -> dict:
    """Least-squares polynomial surrogate of muscle lengths, robust to equilibrium outliers.

    Args:
        q: (n_poses, 4) joint angles in degrees.
        lengths: (n_poses, n_muscles) lengths in mm at those poses.
        degree: total polynomial degree.
        test_fraction: poses held out for the reported R².
        seed: of the train/test split.
        outlier_sd: a pose whose residual from a first fit exceeds this many robust SDs
            (1.4826 MAD) is dropped for that muscle, in fitting and in scoring.

    Returns:
        The surrogate as a dict of arrays (what ``muscle_surrogate.npz`` holds): ``coefficients``
        (n_terms, n_muscles), ``centre`` / ``half_range`` (4,) radians, ``degree``,
        ``r2_test`` (n_muscles,), ``rmse_test_mm``, ``n_outliers`` (n_muscles,), ``domain_deg``
        (2, 4), ``n_train``, ``n_test``.
    """
    q = np.asarray(q, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    radians = np.deg2rad(q)
    lo, hi = radians.min(axis=0), radians.max(axis=0)
    centre, half_range = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-6)
    x = polynomial_features((radians - centre) / half_range, degree)
    order = np.random.default_rng(seed).permutation(len(q))
    n_test = int(round(test_fraction * len(q)))
    test, train = order[:n_test], order[n_test:]
    coefficients = np.linalg.lstsq(x[train], lengths[train], rcond=None)[0]
    residual = lengths - x @ coefficients
    mad = np.median(np.abs(residual[train] - np.median(residual[train], axis=0)), axis=0)
    inlier = np.abs(residual) <= outlier_sd * 1.4826 * np.maximum(mad, 1e-9)
    r2, rmse = np.empty(lengths.shape[1]), np.empty(lengths.shape[1])
    for m in range(lengths.shape[1]):  # per muscle: each has its own outlier poses
        rows = train[inlier[train, m]]
        coefficients[:, m] = np.linalg.lstsq(x[rows], lengths[rows, m], rcond=None)[0]
        held = test[inlier[test, m]]
        error = lengths[held, m] - x[held] @ coefficients[:, m]
        r2[m] = 1 - np.sum(error**2) / np.sum((lengths[held, m] - lengths[held, m].mean()) ** 2)
        rmse[m] = np.sqrt(np.mean(error**2))
    return {
        "coefficients": coefficients, "centre": centre, "half_range": half_range,
        "degree": np.int64(degree), "r2_test": r2, "rmse_test_mm": rmse,
        "n_outliers": (~inlier).sum(axis=0), "domain_deg": np.rad2deg(np.stack([lo, hi])),
        "n_train": np.int64(len(train)), "n_test": np.int64(n_test),
        "muscle_names": np.array(MUSCLE_NAMES[: lengths.shape[1]]),
    }


@lru_cache(maxsize=4)
def load_surrogate(path: str | None = None) -> dict:
    """The fitted surrogate (default: the shipped ``muscle_surrogate.npz``) as a dict of arrays.

    Raises:
        FileNotFoundError: naming the file and how to make it.
    """
    file = Path(path) if path else SURROGATE_PATH
    if not file.is_file():
        raise FileNotFoundError(
            f"muscle surrogate {file} not found; refit it with `python -m neurofit.datasets.muscles "
            "refit --osim MoBL_ARMS_module5_scaleIK.osim --out <file>`"
        )
    with np.load(file) as data:
        return {k: data[k] for k in data.files}


def muscle_lengths(q: np.ndarray, *, surrogate: dict | None = None) -> np.ndarray:
    """Fibre lengths of the 25 muscles at joint angles ``q`` (the surrogate of OpenSim's).

    Args:
        q: (..., 4) joint angles in degrees (`JOINT_NAMES`).
        surrogate: a `load_surrogate` dict (default: the shipped one).

    Returns:
        (..., 25) fibre lengths in mm.
    """
    s = load_surrogate() if surrogate is None else surrogate
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != len(JOINT_NAMES):
        raise ValueError(f"joint angles need a trailing axis of 4 {JOINT_NAMES}, got {q.shape}")
    features = polynomial_features(_scaled(q, s["centre"], s["half_range"]), int(s["degree"]))
    return features @ s["coefficients"]


def spindle_inputs(lengths: np.ndarray, dt: float = DT) -> np.ndarray:
    """DeepDraw's ``spindle_info``: muscle length and its velocity (``np.gradient``).

    Args:
        lengths: (N, T, n_muscles) lengths in mm.
        dt: time step in s.

    Returns:
        (N, n_muscles, T, 2): [..., 0] length (mm), [..., 1] velocity (mm/s).
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    velocity = np.gradient(lengths, dt, axis=1)
    return np.stack([lengths, velocity], axis=-1).transpose(0, 2, 1, 3)


def opensim_fibre_lengths(osim_path: str | Path, q: np.ndarray) -> np.ndarray:
    """Exact fibre lengths from OpenSim (DeepDraw's ``make_muscle_config``), ~30 ms per pose.

    Args:
        osim_path: the MoBL-ARMS model file.
        q: (n_poses, 4) joint angles in degrees.

    Returns:
        (n_poses, 25) fibre lengths in mm, `MUSCLE_NAMES` order.
    """
    import opensim as osim  # optional dependency: only a refit needs it

    model = osim.Model(str(osim_path))
    state = model.initSystem()
    model.equilibrateMuscles(state)
    muscles = model.getMuscles()
    names = [muscles.get(i).getName() for i in range(muscles.getSize())]
    missing = sorted(set(MUSCLE_NAMES) - set(names))
    if missing:
        raise ValueError(f"{osim_path}: the model lacks muscles {missing}; it is not DeepDraw's MoBL arm")
    index = [names.index(m) for m in MUSCLE_NAMES]
    coordinates = [model.getCoordinateSet().get(n) for n in JOINT_NAMES]
    out = np.empty((len(q), len(MUSCLE_NAMES)))
    for p, pose in enumerate(np.asarray(q, dtype=np.float64)):
        for coordinate, angle in zip(coordinates, pose):
            coordinate.setValue(state, np.deg2rad(angle))
        model.equilibrateMuscles(state)
        out[p] = [muscles.get(i).getFiberLength(state) * 1000.0 for i in index]
    return out


def fitting_poses(n_poses: int, seed: int = 0) -> np.ndarray:
    """Joint angles to fit the surrogate on: postures of generated character trajectories
    (the distribution the generator needs), spread by uniform samples in their range.

    Returns:
        (n_poses, 4) degrees.
    """
    from .pcr import generate_pcr  # the generator's own postures

    data = generate_pcr(n_per_class=12, n_time=48, seed=seed + 1000, with_muscles=False)
    visited = data["joint_angles"].reshape(-1, 4)
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(visited, 0.5, axis=0) - 5, np.percentile(visited, 99.5, axis=0) + 5
    half = n_poses // 2
    uniform = rng.uniform(lo, hi, size=(n_poses - half, 4))
    return np.concatenate([visited[rng.choice(len(visited), half, replace=False)], uniform])


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m neurofit.datasets.muscles")
    sub = parser.add_subparsers(dest="command", required=True)
    refit = sub.add_parser("refit", help="fit the surrogate to OpenSim's fibre lengths")
    refit.add_argument("--osim", required=True, help="MoBL_ARMS_module5_scaleIK.osim")
    refit.add_argument("--out", default=str(SURROGATE_PATH))
    refit.add_argument("--poses", type=int, default=2000)
    refit.add_argument("--seed", type=int, default=0)
    refit.add_argument("--poses-out", default="", help="also save the OpenSim poses and lengths here")
    args = parser.parse_args(argv)
    q = fitting_poses(args.poses, args.seed)
    lengths = opensim_fibre_lengths(args.osim, q)
    if args.poses_out:
        np.savez(args.poses_out, q=q, lengths=lengths)
    surrogate = fit_surrogate(q, lengths, seed=args.seed)
    np.savez(args.out, **surrogate)
    print(f"wrote {args.out}: held-out R2 min {surrogate['r2_test'].min():.5f} median "
          f"{np.median(surrogate['r2_test']):.5f}; outlier poses dropped per muscle: "
          f"{surrogate['n_outliers'].tolist()}")


if __name__ == "__main__":
    _main()

"""Muscle lengths of DeepDraw's 25 arm muscles from joint angles, and their spindle inputs.

DeepDraw (``dataset/pcr_data_utils.py``, ``make_muscle_config``) sets the four joint angles of
OpenSim's MoBL-ARMS model (``MoBL_ARMS_module5_scaleIK.osim``) at every time step, equilibrates
the muscles and reads the fibre length of 25 shoulder and elbow muscles (`MUSCLE_NAMES`, in
DeepDraw's order) in mm; the network's inputs (``spindle_info``) are those lengths and their
``np.gradient`` over time (dt = 0.015 s), shape (N, 25, T, 2).

OpenSim takes about 30-40 ms per pose, so neurofit ships a **fitted surrogate**
(``muscle_surrogate.npz``, package data): per muscle, a polynomial of total degree
`SURROGATE_DEGREE` in the four joint angles (scaled to [-1, 1] over the fitted domain), fitted to
OpenSim 4.6 fibre lengths of the real MoBL model (DeepDraw's file, read from
``amathislab/DeepDraw``). `muscle_lengths` evaluates it in a few microseconds per pose.

**Poses** (`fitting_poses`). Fitting: half are postures of the generator's own trajectories
(`neurofit.datasets.pcr.generate_pcr` at its default size, 2400 trajectories x 64 steps), half
are uniform in the box those postures span (their 0.5-99.5 percentiles +- 5 degrees, within the
joint limits), so the polynomial stays tame just off the visited postures. **Held out**: postures
of an independently seeded generator run only (the distribution the generator evaluates the
surrogate on; a random split of one run would share repeated postures between the two sets).
The file records the held-out R² per muscle (``r2_test``), its RMSE, the counts and the domain
(``domain_deg``, the box of the fitting poses: about the joint limits; far from the generator's
postures inside it the polynomial is only roughly a muscle length).

**OpenSim's wrapping artefacts.** The fibre length is a smooth function of the musculotendon
length (the tendons are nearly rigid; within 1 mm), but the MTU path length itself is not smooth:
for several shoulder muscles OpenSim's (hybrid ellipsoid) wrapping switches branch at a surface in
joint space, so the length jumps within a fraction of a degree (e.g. LAT3 +42 mm when a wrap
object engages, TMIN +28 mm, LAT1 +72 mm, BIClong +90 mm) or fails outright on small islands
(TRIlong +1300 mm; TMAJ, LAT up to metres). No smooth surrogate can follow such jumps, and they are not
anatomy. The fit is therefore **trimmed least squares**: poses more than `ARTEFACT_MM` (5 mm) off
the fit are dropped, per muscle, with the threshold lowered in steps (100, 30, 10, 5 mm) so that
the gross failures do not pull the first fits; the surrogate follows the main (majority) branch.
The held-out R² is computed on the held-out poses within `ARTEFACT_MM` of the surrogate
(``r2_test``); the poses excluded are counted per muscle (``n_outliers_test``; shipped fit: 3.2%
of the held-out postures for LAT3, 0.4-1.3% for DELT1, LAT1, LAT2, TMAJ, TMIN and BIClong, at
most 3 of 2000 for the others, none for 15 of the 25 muscles), and ``r2_test_all`` is the R²
over every held-out pose, artefacts included.

Refit (needs ``opensim`` 4.6 and the .osim file; about 6 minutes)::

    python -m neurofit.datasets.muscles refit --osim MoBL_ARMS_module5_scaleIK.osim \
        --out datasets/muscle_surrogate.npz

(8000 fitting and 2000 held-out poses, seed 0: it reproduces the shipped file; ``--poses-out`` saves
the OpenSim lengths, ``--poses-in`` refits from them without OpenSim.)

`opensim_fibre_lengths` is the exact (slow) path a lab with OpenSim can use instead.
"""

from __future__ import annotations

import argparse
import itertools
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .arm import JOINT_NAMES, MAX_ANGLES, MIN_ANGLES

__all__ = [
    "ARTEFACT_MM",
    "MUSCLE_NAMES",
    "SURROGATE_DEGREE",
    "SURROGATE_PATH",
    "fit_surrogate",
    "fitting_poses",
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
SURROGATE_DEGREE = 5
#: A pose whose OpenSim length is more than this far off the fit (mm) is a wrapping artefact for
#: that muscle: dropped from the fit and from ``r2_test`` (and counted).
ARTEFACT_MM = 5.0
#: The trimming threshold is lowered through these (mm) before it reaches `ARTEFACT_MM`.
_TRIM_STEPS_MM = (100.0, 30.0, 10.0)
SURROGATE_PATH = Path(__file__).with_name("muscle_surrogate.npz")
#: DeepDraw's time step of the spindle velocities (s).
DT = 0.015
#: Poses per block in `muscle_lengths` (keeps the monomials in cache; a few MB).
_BLOCK = 8192


@lru_cache(maxsize=16)
def _exponents(n_vars: int, degree: int) -> np.ndarray:
    """(n_terms, n_vars) exponents of every monomial of total degree <= ``degree``."""
    terms = [e for d in range(degree + 1) for e in itertools.product(range(d + 1), repeat=n_vars)
             if sum(e) == d]
    exponents = np.array(terms, dtype=np.int64)
    exponents.flags.writeable = False
    return exponents


def polynomial_features(z: np.ndarray, degree: int) -> np.ndarray:
    """Monomials of scaled joint angles.

    Args:
        z: (..., n_vars) scaled angles (about [-1, 1]).
        degree: total degree.

    Returns:
        (..., n_terms) monomials in `_exponents` order (the constant first).
    """
    z = np.asarray(z, dtype=np.float64)
    exponents = _exponents(z.shape[-1], degree)
    powers = z[..., None, :] ** np.arange(degree + 1)[:, None]  # (..., degree + 1, n_vars)
    features = powers[..., exponents[:, 0], 0]
    for v in range(1, z.shape[-1]):
        features = features * powers[..., exponents[:, v], v]
    return features


def _scaled(q: np.ndarray, centre: np.ndarray, half_range: np.ndarray) -> np.ndarray:
    return (np.deg2rad(np.asarray(q, dtype=np.float64)) - centre) / half_range


def _trimmed_fit(x: np.ndarray, y: np.ndarray, artefact_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of ``y`` on ``x`` without the poses more than ``artefact_mm`` off the fit.

    The threshold steps down through `_TRIM_STEPS_MM` (a first fit through +1 m wrap failures is
    off everywhere), then stays at ``artefact_mm`` until the kept poses no longer change.

    Returns:
        (coefficients (n_terms,), kept (n_poses,) bool).
    """
    keep = np.ones(len(y), dtype=bool)
    steps = [t for t in _TRIM_STEPS_MM if t > artefact_mm] + [artefact_mm] * 20
    for threshold in steps:
        coefficients = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
        new = np.abs(y - x @ coefficients) <= threshold
        if threshold == artefact_mm and np.array_equal(new, keep):
            break
        keep = new
    return coefficients, keep


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def fit_surrogate(q: np.ndarray, lengths: np.ndarray, *, degree: int = SURROGATE_DEGREE,
                  q_test: np.ndarray | None = None, lengths_test: np.ndarray | None = None,
                  test_fraction: float = 0.25, seed: int = 0, artefact_mm: float = ARTEFACT_MM) -> dict:
    """Trimmed least-squares polynomial surrogate of muscle lengths (robust to wrapping artefacts).

    Args:
        q: (n_poses, 4) joint angles in degrees.
        lengths: (n_poses, n_muscles) lengths in mm at those poses.
        degree: total polynomial degree.
        q_test, lengths_test: held-out poses and their lengths (the shipped fit: an independent
            generator run). Without them, ``test_fraction`` of ``q`` (drawn with ``seed``) is held out.
        test_fraction: poses of ``q`` held out when ``q_test`` is None.
        seed: of that split.
        artefact_mm: a pose more than this far off the fit is dropped for that muscle, in fitting
            (`_trimmed_fit`) and in ``r2_test`` / ``rmse_test_mm``.

    Returns:
        The surrogate as a dict of arrays (what ``muscle_surrogate.npz`` holds): ``coefficients``
        (n_terms, n_muscles), ``centre`` / ``half_range`` (4,) radians, ``degree``, ``form``,
        ``r2_test`` (n_muscles,) held-out R² without the artefact poses, ``r2_test_all`` with them,
        ``rmse_test_mm``, ``n_outliers_train`` / ``n_outliers_test`` (n_muscles,) poses dropped as
        artefacts, ``n_outliers`` their sum, ``artefact_mm``, ``domain_deg`` (2, 4) the fitted
        joint-angle box, ``n_train``, ``n_test``, ``muscle_names``.
    """
    q = np.asarray(q, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if q_test is None:
        order = np.random.default_rng(seed).permutation(len(q))
        n_test = int(round(test_fraction * len(q)))
        q, q_test, lengths, lengths_test = q[order[n_test:]], q[order[:n_test]], lengths[order[n_test:]], lengths[order[:n_test]]
    q_test = np.asarray(q_test, dtype=np.float64)
    lengths_test = np.asarray(lengths_test, dtype=np.float64)
    radians = np.deg2rad(q)
    lo, hi = radians.min(axis=0), radians.max(axis=0)
    centre, half_range = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-6)
    x = polynomial_features((radians - centre) / half_range, degree)
    x_test = polynomial_features(_scaled(q_test, centre, half_range), degree)
    n_muscles = lengths.shape[1]
    coefficients = np.empty((x.shape[1], n_muscles))
    r2, r2_all, rmse = np.empty(n_muscles), np.empty(n_muscles), np.empty(n_muscles)
    n_out_train, n_out_test = np.empty(n_muscles, np.int64), np.empty(n_muscles, np.int64)
    for m in range(n_muscles):  # per muscle: each has its own artefact poses
        coefficients[:, m], kept = _trimmed_fit(x, lengths[:, m], artefact_mm)
        predicted = x_test @ coefficients[:, m]
        held = np.abs(lengths_test[:, m] - predicted) <= artefact_mm
        r2[m] = _r2(lengths_test[held, m], predicted[held])
        r2_all[m] = _r2(lengths_test[:, m], predicted)
        rmse[m] = np.sqrt(np.mean((lengths_test[held, m] - predicted[held]) ** 2))
        n_out_train[m], n_out_test[m] = (~kept).sum(), (~held).sum()
    return {
        "coefficients": coefficients, "centre": centre, "half_range": half_range,
        "degree": np.int64(degree),
        "form": np.array(f"total-degree-{degree} polynomial in the scaled joint angles, trimmed least "
                         f"squares (poses > {artefact_mm:g} mm off dropped per muscle)"),
        "r2_test": r2, "r2_test_all": r2_all, "rmse_test_mm": rmse,
        "n_outliers_train": n_out_train, "n_outliers_test": n_out_test, "n_outliers": n_out_train + n_out_test,
        "artefact_mm": np.float64(artefact_mm), "domain_deg": np.rad2deg(np.stack([lo, hi])),
        "n_train": np.int64(len(q)), "n_test": np.int64(len(q_test)),
        "muscle_names": np.array(MUSCLE_NAMES[:n_muscles]),
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
        q: (..., 4) joint angles in degrees (`JOINT_NAMES`), within the surrogate's
            ``domain_deg`` (a polynomial: far outside the postures it was fitted on it is not
            a muscle length).
        surrogate: a `load_surrogate` dict (default: the shipped one).

    Returns:
        (..., 25) fibre lengths in mm.
    """
    s = load_surrogate() if surrogate is None else surrogate
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != len(JOINT_NAMES):
        raise ValueError(f"joint angles need a trailing axis of 4 {JOINT_NAMES}, got {q.shape}")
    z = _scaled(q.reshape(-1, q.shape[-1]), s["centre"], s["half_range"])
    degree, coefficients = int(s["degree"]), s["coefficients"]
    out = np.empty((len(z), coefficients.shape[1]))
    for start in range(0, len(z), _BLOCK):
        out[start:start + _BLOCK] = polynomial_features(z[start:start + _BLOCK], degree) @ coefficients
    return out.reshape(*q.shape[:-1], coefficients.shape[1])


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
    """Exact fibre lengths from OpenSim (DeepDraw's ``make_muscle_config``), ~30-40 ms per pose.

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


def fitting_poses(n_poses: int, seed: int = 0, *, uniform_fraction: float = 0.5) -> np.ndarray:
    """Joint angles to fit (or test) the surrogate on: postures the generator visits, and a
    fraction spread uniformly over their range.

    The postures are drawn from a `neurofit.datasets.pcr.generate_pcr` run at its default size
    (2400 trajectories x 64 steps, seeded ``seed + 1000``), so their spread matches what the
    generator evaluates the surrogate on; the uniform ones fill the box of their 0.5-99.5
    percentiles widened by 5 degrees (within the joint limits). ``uniform_fraction=0`` gives
    generator postures only: the held-out set of the shipped fit is ``fitting_poses(n, seed + 1,
    uniform_fraction=0)``, other trajectories than any fitted on.

    Returns:
        (n_poses, 4) degrees: the postures first, then the uniform ones.
    """
    from .pcr import generate_pcr  # the generator's own postures

    visited = generate_pcr(seed=seed + 1000, with_muscles=False)["joint_angles"].reshape(-1, 4)
    rng = np.random.default_rng(seed)
    n_uniform = int(round(uniform_fraction * n_poses))
    lo = np.maximum(np.percentile(visited, 0.5, axis=0) - 5, MIN_ANGLES)
    hi = np.minimum(np.percentile(visited, 99.5, axis=0) + 5, MAX_ANGLES)
    postures = visited[rng.choice(len(visited), n_poses - n_uniform, replace=False)]
    return np.concatenate([postures, rng.uniform(lo, hi, size=(n_uniform, 4))])


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m neurofit.datasets.muscles")
    sub = parser.add_subparsers(dest="command", required=True)
    refit = sub.add_parser("refit", help="fit the surrogate to OpenSim's fibre lengths")
    refit.add_argument("--osim", help="MoBL_ARMS_module5_scaleIK.osim (not needed with --poses-in)")
    refit.add_argument("--out", default=str(SURROGATE_PATH))
    refit.add_argument("--poses", type=int, default=8000, help="fitting poses (half generator postures)")
    refit.add_argument("--test-poses", type=int, default=2000, help="held-out generator postures")
    refit.add_argument("--degree", type=int, default=SURROGATE_DEGREE)
    refit.add_argument("--seed", type=int, default=0)
    refit.add_argument("--poses-out", default="", help="also save the poses and OpenSim lengths here")
    refit.add_argument("--poses-in", default="", help="refit from a --poses-out file instead of OpenSim")
    args = parser.parse_args(argv)
    if args.poses_in:
        with np.load(args.poses_in) as saved:
            q, lengths, q_test, lengths_test = (saved[k] for k in ("q", "lengths", "q_test", "lengths_test"))
    else:
        if not args.osim:
            parser.error("refit needs --osim (or --poses-in)")
        q = fitting_poses(args.poses, args.seed)
        q_test = fitting_poses(args.test_poses, args.seed + 1, uniform_fraction=0.0)
        start = time.perf_counter()
        lengths = opensim_fibre_lengths(args.osim, q)
        lengths_test = opensim_fibre_lengths(args.osim, q_test)
        seconds = time.perf_counter() - start
        print(f"OpenSim: {len(q) + len(q_test)} poses in {seconds:.0f} s "
              f"({1000 * seconds / (len(q) + len(q_test)):.1f} ms per pose)")
        if args.poses_out:
            np.savez(args.poses_out, q=q, lengths=lengths, q_test=q_test, lengths_test=lengths_test)
    surrogate = fit_surrogate(q, lengths, q_test=q_test, lengths_test=lengths_test, degree=args.degree)
    np.savez(args.out, **surrogate)
    r2 = surrogate["r2_test"]
    print(f"wrote {args.out}: held-out R2 min {r2.min():.5f} ({MUSCLE_NAMES[int(r2.argmin())]}) median "
          f"{np.median(r2):.5f}; held-out poses > {float(surrogate['artefact_mm']):g} mm off (wrapping artefacts) per muscle: "
          f"{surrogate['n_outliers_test'].tolist()} of {len(q_test)}")


if __name__ == "__main__":
    _main()

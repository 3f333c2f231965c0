"""PCR generation throughput: batched resolved-rate IK against DeepDraw's per-point optimiser.

Both solve the inverse kinematics of the same character trajectories (T = 64 samples):

* neurofit: ``neurofit.datasets.arm.inverse_kinematics``, damped least squares from the previous
  posture for the whole batch at once;
* baseline: DeepDraw's ``make_joint_config`` method, re-implemented: ``scipy.optimize.fmin_slsqp``
  per point, minimising the distance to the previous posture subject to reaching the point and
  the joint limits, started from (10, 10, 10, 10) degrees as DeepDraw starts it.

Reports trajectories per second of each (the baseline on a few trajectories, extrapolated per
trajectory) and their ratio, plus the largest tracing error of each. Single-threaded BLAS. Run
``.venv/bin/python benchmarks/pcr_generation.py``.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

from neurofit.datasets import arm, pcr  # noqa: E402

N_BATCH, N_BASELINE, N_TIME = 400, 3, 64


def trajectories(n: int, seed: int = 0) -> np.ndarray:
    """Hand paths in the shoulder frame (n, T, 3) cm of augmented characters."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 20, n)
    xy, world, *_ = pcr._candidates(labels, N_TIME, rng, ("horizontal",), None,
                                    {"horizontal": pcr.start_point_pool("horizontal")}, 0.0)
    return world @ arm.SHOULDER_TO_WORLD


def slsqp_trajectory(hand: np.ndarray) -> np.ndarray:
    """DeepDraw's per-point IK of one trajectory (T, 3) -> (T, 4) degrees."""
    previous, out = arm.REST_POSTURE.copy(), []
    for point in hand:
        q = scipy.optimize.fmin_slsqp(
            func=lambda q, p=previous: np.linalg.norm(q - p), x0=np.full(4, 10.0),
            eqcons=[lambda q, x=point: np.linalg.norm(arm.forward_kinematics(q) - x)],
            ieqcons=[lambda q: arm.MAX_ANGLES - q, lambda q: q - arm.MIN_ANGLES], iprint=0)
        out.append(q)
        previous = q
    return np.array(out)


def main() -> dict:
    hand = trajectories(N_BATCH)
    started = time.perf_counter()
    q = arm.inverse_kinematics(hand)
    batched = time.perf_counter() - started
    started = time.perf_counter()
    q_base = np.stack([slsqp_trajectory(h) for h in hand[:N_BASELINE]])
    baseline = time.perf_counter() - started
    rate, rate_base = N_BATCH / batched, N_BASELINE / baseline
    result = {"batched_per_s": rate, "slsqp_per_s": rate_base, "ratio": rate / rate_base,
              "max_error_batched_cm": float(arm.tracing_error(q, hand).max()),
              "max_error_slsqp_cm": float(arm.tracing_error(q_base, hand[:N_BASELINE]).max())}
    print(f"batched IK: {N_BATCH} trajectories x {N_TIME} points in {batched:.2f} s = {rate:.1f} /s")
    print(f"per-point SLSQP: {N_BASELINE} trajectories in {baseline:.2f} s = {rate_base:.3f} /s")
    print(f"ratio: {result['ratio']:.0f}x; max tracing error (sum over points, cm): batched "
          f"{result['max_error_batched_cm']:.2e} (unreachable ones included), SLSQP {result['max_error_slsqp_cm']:.2e}")
    return result


if __name__ == "__main__":
    main()

"""Speed of the batched single-unit tuning fits against a per-unit loop (DeepDraw style).

A layer of 512 units is fitted on 1000 trajectories x 50 time steps with velocity, position
and acceleration features (13 models: DeepDraw's four per feature plus polar position):

* neurofit: ``neurofit.pipelines.analysis.tuning.fit_tuning`` (all units in one batched
  solve per model).
* baseline: a loop over units and models with one ``np.linalg.lstsq`` per unit and model and
  R² per unit, as DeepDraw's ``single_cell/rowwise_neuron_curves.py`` (``tune`` ->
  ``tune_row_vel`` -> ``linreg``) does it. The baseline is given its design matrices (NaN
  rows dropped) and the train/test split precomputed, so only the per-unit work is timed;
  DeepDraw also re-splits and re-builds the designs for every unit.

Both use the same split and must agree (R² and coefficients to 1e-8). Prints the times and
the speed-up ratio. BLAS runs single-threaded on both sides (unless the usual
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` variables are set), so the
ratio measures the algorithm rather than the core count; multi-threaded BLAS on a machine
whose cores are busy makes the many small matrix products of the batched fit slower, not
faster. No database is needed. Run with the project's environment:
``.venv/bin/python benchmarks/tuning_speed.py``.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy is imported

import time  # noqa: E402

import numpy as np  # noqa: E402

from neurofit.pipelines.analysis.tuning import acceleration, fit_tuning, velocity  # noqa: E402

N_UNITS = 512
N_TRAJECTORIES = 1000
N_TIME = 50


def simulate(rng: np.random.Generator):
    """Smooth random 2-D trajectories and a layer of partly tuned ReLU-like units."""
    heading = rng.uniform(-np.pi, np.pi, (N_TRAJECTORIES, 1)) + np.cumsum(
        rng.normal(0, 0.15, (N_TRAJECTORIES, N_TIME)), axis=1
    )
    phase = rng.uniform(0, 2 * np.pi, (N_TRAJECTORIES, 1))
    speed = 1 + 0.5 * np.sin(phase + 0.2 * np.arange(N_TIME))
    steps = speed[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    position = rng.normal(0, 3, (N_TRAJECTORIES, 1, 2)) + np.cumsum(steps, axis=1)
    features = {
        "velocity": velocity(position),
        "position": position,
        "acceleration": acceleration(position),
    }
    kinematics = np.concatenate(list(features.values()), axis=-1)  # (n_traj, n_time, 6)
    weights = rng.normal(0, 1, (6, N_UNITS)) * (rng.random(N_UNITS) < 0.7)
    drive = kinematics @ weights + rng.normal(0, 1, N_UNITS)
    activations = np.maximum(drive + rng.normal(0, 1, drive.shape), 0.0)
    activations[..., :8] = 0.0  # dead units: R2 == 1 by r2_score's convention
    return activations, features


def designs(features, train_rows, test_rows, models):
    """DeepDraw-style design matrices per model (NaN rows dropped), built independently."""
    flat = {name: values.reshape(-1, 2) for name, values in features.items()}
    start = np.repeat(features["position"][:, 0, :], N_TIME, axis=0)
    out = []
    for name in models:
        feature, family = name.split("/")
        v = flat[feature] - start if family == "position_polar" else flat[feature]
        r = np.linalg.norm(v, axis=1)
        theta = np.where(r == 0, np.nan, np.arctan2(v[:, 1], v[:, 0]))
        ones = np.ones(len(v))
        columns = {
            "cartesian": (v[:, 0], v[:, 1], ones),
            "direction": (np.cos(theta), np.sin(theta), ones),
            "speed": (r, ones),
            "direction_speed": (r * np.cos(theta), r * np.sin(theta), ones),
            "position_polar": (r * np.cos(theta), r * np.sin(theta), ones),
        }[family]
        x = np.column_stack(columns)
        ok = ~np.isnan(x).any(axis=1)
        out.append((x[train_rows][ok[train_rows]], x[test_rows][ok[test_rows]],
                    ok[train_rows], ok[test_rows]))
    return out


def r2(y, prediction):
    """sklearn.metrics.r2_score for one unit."""
    ss_res = np.sum((y - prediction) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def per_unit_loop(activations, model_designs, train_rows, test_rows):
    """One lstsq per unit and model (DeepDraw's rowwise_neuron_curves)."""
    flat = activations.reshape(-1, N_UNITS)
    y_train_all, y_test_all = flat[train_rows], flat[test_rows]
    r2_test = np.empty((N_UNITS, len(model_designs)))
    coefficients = np.zeros((N_UNITS, len(model_designs), 3))
    for unit in range(N_UNITS):
        y_train, y_test = y_train_all[:, unit], y_test_all[:, unit]
        for k, (x_train, x_test, ok_train, ok_test) in enumerate(model_designs):
            c = np.linalg.lstsq(x_train, y_train[ok_train], rcond=None)[0]
            coefficients[unit, k, : len(c)] = c
            r2_test[unit, k] = r2(y_test[ok_test], x_test @ c)
    return r2_test, coefficients


def main() -> None:
    rng = np.random.default_rng(0)
    activations, features = simulate(rng)
    print(f"layer: {N_UNITS} units x {N_TRAJECTORIES} trajectories x {N_TIME} time steps, "
          f"features {list(features)}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")

    fit_tuning(activations[:50], {k: v[:50] for k, v in features.items()})  # warm-up
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = fit_tuning(activations, features)
        times.append(time.perf_counter() - start)
    batched = min(times)
    n_models = len(result.model_names)
    print(f"fit_tuning (batched): {batched * 1e3:.1f} ms (best of 3; {n_models} models)")

    traj = np.repeat(np.arange(N_TRAJECTORIES), N_TIME)
    train_rows = np.flatnonzero(np.isin(traj, result.train_trajectories))
    test_rows = np.flatnonzero(np.isin(traj, result.test_trajectories))
    model_designs = designs(features, train_rows, test_rows, result.model_names)
    start = time.perf_counter()
    loop_r2, loop_coefficients = per_unit_loop(activations, model_designs, train_rows, test_rows)
    loop = time.perf_counter() - start
    n_fits = N_UNITS * len(result.model_names)
    print(f"per-unit lstsq loop:  {loop * 1e3:.1f} ms ({n_fits} lstsq calls, "
          f"{loop / n_fits * 1e6:.0f} us each)")

    r2_diff = float(np.max(np.abs(result.r2_test - loop_r2)))
    coefficient_diff = float(np.max(np.abs(result.coefficients - loop_coefficients)))
    print(f"max |R2 difference| = {r2_diff:.2e}, "
          f"max |coefficient difference| = {coefficient_diff:.2e}")
    assert r2_diff < 1e-8 and coefficient_diff < 1e-8, "batched and per-unit results differ"
    print(f"speed-up: {loop / batched:.1f}x (target >= 50x)")


if __name__ == "__main__":
    main()

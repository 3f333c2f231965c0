"""Tests for neurofit.pipelines.analysis.tuning (no database, fast).

The library is checked against (a) a per-unit ``np.linalg.lstsq`` loop written here
independently of the library, following DeepDraw's ``rowwise_neuron_curves.py``
(``get_polar``, ``feature_set``, ``linreg``, ``r2_score``); (b) sklearn's
``train_test_split`` where sklearn is installed; (c) closed-form values; and (d) a
simulation with planted preferred directions, gains and noise levels, where tolerances are
derived from the sample sizes.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from neurofit.pipelines.analysis import tuning
from neurofit.pipelines.analysis.tuning import (
    TuningResult,
    acceleration,
    default_models,
    design_matrix,
    direction_uniformity,
    directionally_tuned,
    fit_tuning,
    polar,
    preferred_direction,
    tuning_summary,
    velocity,
)

# ----------------------------------------------------------------------------------------
# independent reference: DeepDraw's per-unit loop (loops are fine here, never in the library)
# ----------------------------------------------------------------------------------------


def ref_polar(v):
    """DeepDraw's get_polar: r = norm, theta = signed angle to the x axis, NaN for 0."""
    r = np.linalg.norm(v, axis=1)
    theta = np.array([
        np.nan if not np.any(row) else
        (1 if row[1] >= 0 else -1) * np.arccos(np.clip(row[0] / np.linalg.norm(row), -1, 1))
        for row in v
    ])
    return r, theta


def ref_design(v, family, start=None):
    """DeepDraw's tune_row_vel designs (columns incl. intercept), NaN where undefined."""
    if family == "position_polar":
        v = v - start
        family = "direction_speed"
    ones = np.ones(len(v))
    if family == "cartesian":
        return np.column_stack([v[:, 0], v[:, 1], ones])
    r, theta = ref_polar(v)
    return {
        "direction": lambda: np.column_stack([np.cos(theta), np.sin(theta), ones]),
        "speed": lambda: np.column_stack([r, ones]),
        "direction_speed": lambda: np.column_stack([r * np.cos(theta), r * np.sin(theta), ones]),
    }[family]()


def ref_r2(y, prediction):
    """sklearn.metrics.r2_score for one output (force_finite=True)."""
    ss_res = np.sum((y - prediction) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def ref_fit(activations, features, train_ids, models, crop=0):
    """One lstsq per unit and model on the given train trajectories (DeepDraw's tune)."""
    n_traj, n_time, n_units = activations.shape
    is_train = np.isin(np.arange(n_traj), train_ids)
    window = slice(crop, n_time - crop)
    r2_test = np.full((n_units, len(models)), np.nan)
    r2_train = np.full((n_units, len(models)), np.nan)
    coefficients = np.zeros((n_units, len(models), 3))
    for k, name in enumerate(models):
        feature, family = name.split("/")
        values = features[feature]
        start = np.broadcast_to(values[:, :1, :], values.shape)
        designs = {}
        for label, mask in (("train", is_train), ("test", ~is_train)):
            x = ref_design(values[mask][:, window].reshape(-1, 2), family,
                           start[mask][:, window].reshape(-1, 2))
            ok = ~np.isnan(x).any(axis=1)
            designs[label] = (x[ok], ok)
        for unit in range(n_units):
            y_train = activations[is_train][:, window, unit].reshape(-1)[designs["train"][1]]
            y_test = activations[~is_train][:, window, unit].reshape(-1)[designs["test"][1]]
            c = np.linalg.lstsq(designs["train"][0], y_train, rcond=None)[0]
            coefficients[unit, k, : len(c)] = c
            r2_train[unit, k] = ref_r2(y_train, designs["train"][0] @ c)
            r2_test[unit, k] = ref_r2(y_test, designs["test"][0] @ c)
    return r2_test, r2_train, coefficients


def circular_error(a, b):
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


def smooth_trajectories(rng, n_traj, n_time, *, pauses=False):
    """Random smooth 2-D paths: slowly turning heading, speed oscillating in [0.5, 1.5]."""
    heading = rng.uniform(-np.pi, np.pi, (n_traj, 1)) + np.cumsum(
        rng.normal(0, 0.1, (n_traj, n_time)), axis=1
    )
    speed = 1 + 0.5 * np.sin(rng.uniform(0, 2 * np.pi, (n_traj, 1)) + 0.15 * np.arange(n_time))
    steps = speed[..., None] * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    if pauses:  # standing still for a few steps: exactly zero velocity in the middle
        steps[::3, 5:9] = 0.0
    return rng.normal(0, 5, (n_traj, 1, 2)) + np.cumsum(steps, axis=1)


def kinematics(position):
    return {
        "velocity": velocity(position),
        "position": position,
        "acceleration": acceleration(position),
    }


@pytest.fixture(scope="module")
def small():
    """A small layer for exact comparisons: 30 trajectories x 24 steps x 8 units."""
    rng = np.random.default_rng(1)
    position = smooth_trajectories(rng, 30, 24, pauses=True)
    features = kinematics(position)
    _, theta = polar(features["velocity"])
    theta = np.nan_to_num(theta)
    activations = np.stack([
        np.cos(theta - 0.5) + 0.3 * rng.normal(size=theta.shape),
        2 + 0.1 * features["position"][..., 0] + rng.normal(size=theta.shape),
        np.linalg.norm(features["acceleration"], axis=-1) + 0.5 * rng.normal(size=theta.shape),
        rng.normal(size=theta.shape),
        np.zeros(theta.shape),  # dead unit
        np.maximum(np.sin(theta) + rng.normal(size=theta.shape), 0),
        100 + rng.normal(size=theta.shape),  # large mean, unit variance
        1e-3 * rng.normal(size=theta.shape),  # tiny scale
    ], axis=-1)
    return activations, features


PLANTED = {"direction": 16, "modulated": 8, "speed": 8, "noise": 8, "dead": 1}


@pytest.fixture(scope="module")
def simulation():
    """200 trajectories x 100 steps; units with planted tuning and known noise."""
    rng = np.random.default_rng(2024)
    n_traj, n_time = 200, 100
    position = smooth_trajectories(rng, n_traj, n_time)
    features = kinematics(position)
    speed, theta = polar(features["velocity"])
    assert not np.isnan(theta).any()

    units, signals, sigmas = [], [], []
    kind = np.repeat(list(PLANTED), list(PLANTED.values()))
    n_dir = PLANTED["direction"]
    pd = np.concatenate([
        np.linspace(-np.pi, np.pi, n_dir, endpoint=False) + 0.1,
        rng.uniform(-np.pi, np.pi, PLANTED["modulated"]),
    ])
    gain = rng.uniform(1.0, 2.0, len(kind))
    baseline = rng.uniform(-1.0, 1.0, len(kind))
    for u, k in enumerate(kind):
        if k == "direction":
            signal = baseline[u] + gain[u] * np.cos(theta - pd[u])
        elif k == "modulated":
            signal = baseline[u] + gain[u] * speed * np.cos(theta - pd[u])
        elif k == "speed":
            signal = baseline[u] + 2 * gain[u] * speed
        elif k == "noise":
            signal = np.full(theta.shape, baseline[u])
        else:
            signal = np.zeros(theta.shape)
        sigma = 0.0 if k == "dead" else rng.uniform(0.5, 1.0)
        units.append(signal + sigma * rng.normal(size=theta.shape))
        signals.append(signal)
        sigmas.append(sigma)
    activations = np.stack(units, axis=-1)
    result = fit_tuning(activations, features)
    return dict(
        result=result, features=features, activations=activations, kind=kind, pd=pd,
        gain=gain, signal=np.stack(signals, axis=-1), sigma=np.array(sigmas), theta=theta,
        speed=speed,
    )


# ----------------------------------------------------------------------------------------
# kinematics and designs
# ----------------------------------------------------------------------------------------


def test_velocity_and_acceleration_are_gradients_along_time():
    rng = np.random.default_rng(0)
    position = rng.normal(size=(3, 7, 2))
    expected = np.stack([[np.gradient(position[i, :, d]) for d in range(2)] for i in range(3)])
    np.testing.assert_allclose(velocity(position), expected.transpose(0, 2, 1), rtol=0, atol=1e-14)
    # DeepDraw: np.gradient(ee)[2] on (n, dims, time); acc = np.gradient(vels)[2]
    ee = position.transpose(0, 2, 1)
    vels = np.gradient(ee)[2]
    np.testing.assert_allclose(velocity(position), vels.transpose(0, 2, 1), atol=1e-14)
    accs = np.gradient(vels)[2]
    np.testing.assert_allclose(acceleration(position), accs.transpose(0, 2, 1), atol=1e-14)
    t = np.arange(6.0)
    quadratic = np.stack([t**2, 3 * t], axis=-1) * 0.5**2  # positions sampled every dt = 0.5
    np.testing.assert_allclose(velocity(quadratic, dt=0.5)[1:-1, 0], t[1:-1])
    np.testing.assert_allclose(velocity(quadratic, dt=0.5)[:, 1], 1.5)
    np.testing.assert_allclose(acceleration(quadratic, dt=0.5)[2:-2, 0], 2.0)


def test_kinematics_validation():
    with pytest.raises(ValueError, match="at least 2 time points"):
        velocity(np.zeros((4, 1, 2)))
    with pytest.raises(ValueError, match="dt"):
        velocity(np.zeros((5, 2)), dt=0)
    with pytest.raises(ValueError, match="non-finite"):
        velocity(np.array([[0.0, np.nan], [1.0, 1.0]]))


def test_polar_angles_in_half_open_interval_and_nan_for_zero():
    v = np.array(
        [[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [-3.0, -0.0], [0.0, -1.0], [0.0, 0.0], [1.0, 1.0]]
    )
    r, theta = polar(v)
    np.testing.assert_allclose(r, [1, 2, 3, 3, 1, 0, np.sqrt(2)])
    np.testing.assert_allclose(theta, [0, np.pi / 2, np.pi, np.pi, -np.pi / 2, np.nan, np.pi / 4])
    rng = np.random.default_rng(3)
    w = rng.normal(size=(500, 2))
    r, theta = polar(w)
    r_ref, theta_ref = ref_polar(w)
    np.testing.assert_allclose(theta, theta_ref, atol=1e-7)  # arccos route is less precise
    np.testing.assert_allclose(r, r_ref, rtol=1e-15)
    assert np.all((theta > -np.pi) & (theta <= np.pi))
    with pytest.raises(ValueError, match="trailing axis of length 2"):
        polar(np.zeros((4, 3)))


def test_design_matrices_match_deepdraw_columns():
    rng = np.random.default_rng(4)
    v = rng.normal(size=(9, 2))
    v[3] = 0.0
    for family in ("cartesian", "direction", "speed", "direction_speed"):
        np.testing.assert_allclose(design_matrix(v, family), ref_design(v, family), atol=1e-7)
    position = rng.normal(size=(2, 5, 2))
    polar_design = design_matrix(position, "position_polar")
    assert polar_design.shape == (2, 5, 3)
    assert np.isnan(polar_design[:, 0, :2]).all()  # the start point itself: undefined angle
    displacement = (position - position[:, :1])[:, 1:]
    np.testing.assert_allclose(polar_design[:, 1:, :2], displacement, atol=1e-14)
    np.testing.assert_allclose(
        design_matrix(v, "position_polar", origin=v[0]),
        ref_design(v, "position_polar", v[0]),
        atol=1e-7,
    )
    with pytest.raises(ValueError, match="unknown feature model"):
        design_matrix(v, "polar")
    with pytest.raises(ValueError, match="origin is only used"):
        design_matrix(v, "direction", origin=v[0])
    assert default_models(["velocity"]) == [
        "velocity/cartesian", "velocity/direction", "velocity/speed", "velocity/direction_speed"
    ]
    assert default_models(["position"])[-1] == "position/position_polar"


# ----------------------------------------------------------------------------------------
# exactness: batched solve == per-unit lstsq loop
# ----------------------------------------------------------------------------------------


def test_batched_fit_equals_per_unit_lstsq_loop(small):
    activations, features = small
    assert (np.linalg.norm(features["velocity"], axis=-1) == 0).any()  # zero rows are dropped
    result = fit_tuning(activations, features, crop=2)
    assert result.model_names == default_models(list(features))
    assert result.r2_test.shape == result.r2_train.shape == (8, 13)
    assert result.coefficients.shape == (8, 13, 3)
    r2_test, r2_train, coefficients = ref_fit(
        activations, features, result.train_trajectories, result.model_names, crop=2
    )
    np.testing.assert_allclose(result.r2_test, r2_test, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.r2_train, r2_train, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(result.coefficients, coefficients, rtol=1e-10, atol=1e-10)
    # the sample counts: zero-velocity rows are missing from the theta-based velocity models
    n_test_traj = len(result.test_trajectories)
    counts = dict(zip(result.model_names, result.n_test))
    assert counts["velocity/cartesian"] == counts["velocity/speed"] == n_test_traj * 20
    assert counts["velocity/direction"] == counts["velocity/direction_speed"] < n_test_traj * 20
    assert result.r2_test[4].tolist() == [1.0] * 13  # the dead unit, as r2_score has it


def test_units_far_from_zero_are_fitted_as_well_as_units_near_it(small):
    """Summed uncentred, these units would lose their spread to rounding; they are summed again
    about a centre, and fit like their centred counterparts."""
    activations, features = small
    rng = np.random.default_rng(5)
    moving = np.linalg.norm(features["velocity"], axis=-1) > 0
    far = np.stack([
        1e5 + 1e-2 * activations[..., 0],  # 1e7 standard deviations from zero
        np.full(moving.shape, 0.3),  # constant, not zero
        # Far from zero only where θ is defined: the direction models' samples.
        np.where(moving, 3e3 + 1e-2 * activations[..., 5], 3e3 + 300 * rng.normal(size=moving.shape)),
    ], axis=-1)
    y = np.concatenate([activations, far], axis=-1)
    result = fit_tuning(y, features, crop=1)
    r2_test, r2_train, _ = ref_fit(y, features, result.train_trajectories, result.model_names, crop=1)
    fitted = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]  # lstsq's rounding spoils r2_score on the constant one
    np.testing.assert_allclose(result.r2_test[fitted], r2_test[fitted], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.r2_train[fitted], r2_train[fitted], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.r2_test[8], result.r2_test[0], rtol=1e-6, atol=1e-6)
    assert result.r2_test[9].tolist() == [1.0] * 13  # constant everywhere: predicted exactly
    direction = [result.index(f"velocity/{name}") for name in ("direction", "direction_speed")]
    np.testing.assert_allclose(result.r2_test[10, direction], result.r2_test[5, direction], rtol=1e-6, atol=1e-6)


def test_any_memory_layout_and_feature_offsets_give_the_same_fit(small):
    activations, features = small
    reference = fit_tuning(activations, features, crop=1)
    # a layer's (trajectory, unit, time) memory seen as (trajectory, time, unit): not contiguous
    strided = np.ascontiguousarray(np.moveaxis(activations, 1, 2)).transpose(0, 2, 1)
    assert not strided.flags.c_contiguous
    other = fit_tuning(strided, features, crop=1)
    # The same sums; BLAS adds them in another order when the block is read unit-major.
    np.testing.assert_allclose(other.r2_test, reference.r2_test, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(other.coefficients, reference.coefficients, rtol=1e-12, atol=1e-12)
    # positions far from the origin, as the per-unit loop fits them
    moved = dict(features, position=features["position"] + np.array([1000.0, -500.0]))
    shifted = fit_tuning(activations, moved, crop=1)
    r2_test, _, coefficients = ref_fit(activations, moved, shifted.train_trajectories, shifted.model_names, crop=1)
    np.testing.assert_allclose(shifted.r2_test, r2_test, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(shifted.coefficients, coefficients, rtol=1e-8, atol=1e-8)
    # Cartesian and start-relative fits are shift-equivariant: their R² do not move
    same = [shifted.index(name) for name in shifted.model_names
            if not name.startswith("position/") or name in ("position/cartesian", "position/position_polar")]
    np.testing.assert_allclose(shifted.r2_test[:, same], reference.r2_test[:, same], rtol=0, atol=1e-9)


def test_units_are_fitted_independently(small):
    activations, features = small
    both = fit_tuning(activations, features)
    single = fit_tuning(activations[..., [5]], features)
    np.testing.assert_allclose(single.r2_test[0], both.r2_test[5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(single.coefficients[0], both.coefficients[5], rtol=0, atol=1e-12)


def test_2d_input_with_trajectory_ids_and_float32(small):
    activations, features = small
    n_traj, n_time, n_units = activations.shape
    ids = 100 + 3 * np.arange(n_traj)  # increasing: same sorted order, same split
    reference = fit_tuning(activations, features)
    # samples of whole trajectories in shuffled order (time order kept within each)
    order = np.random.default_rng(5).permutation(n_traj)
    rows = (order[:, None] * n_time + np.arange(n_time)).reshape(-1)
    flat = fit_tuning(
        activations.reshape(-1, n_units)[rows],
        {name: values.reshape(-1, 2)[rows] for name, values in features.items()},
        trajectory=np.repeat(ids, n_time)[rows],
    )
    np.testing.assert_array_equal(flat.train_trajectories, ids[reference.train_trajectories])
    np.testing.assert_allclose(flat.r2_test, reference.r2_test, rtol=0, atol=1e-11)
    np.testing.assert_allclose(flat.coefficients, reference.coefficients, rtol=1e-11, atol=1e-11)
    as32 = activations.astype(np.float32)
    np.testing.assert_allclose(
        fit_tuning(as32, features).r2_test, fit_tuning(as32.astype(np.float64), features).r2_test,
        rtol=0, atol=1e-12,
    )


def test_constant_units_follow_r2_score_convention(small):
    activations, features = small
    result = fit_tuning(activations[..., :1], features, models=["velocity/direction"])
    is_test = np.isin(np.arange(30), result.test_trajectories)
    constant = np.full(activations.shape[:2] + (3,), 0.3)
    constant[is_test, :, 1] = 0.7  # constant on the test set, another constant on training
    constant[~is_test, :, 2] = np.random.default_rng(6).normal(size=((~is_test).sum(), 24))
    fitted = fit_tuning(constant, features, models=["velocity/direction", "position/speed"])
    # 0.3 everywhere: predicted exactly -> 1; test-constant but mispredicted -> 0.
    np.testing.assert_array_equal(fitted.r2_test, [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(fitted.r2_train[:2], 1.0)
    np.testing.assert_allclose(fitted.coefficients[0, :, :], [[0, 0, 0.3], [0, 0.3, 0]], atol=1e-12)


# ----------------------------------------------------------------------------------------
# the train/test split
# ----------------------------------------------------------------------------------------


def test_split_is_over_trajectories_and_reproduces_train_test_split(small):
    activations, features = small
    result = fit_tuning(activations, features, models=["velocity/direction"])
    train, test = result.train_trajectories, result.test_trajectories
    assert len(test) == math.ceil(0.2 * 30) and len(train) == 30 - len(test)
    assert not set(train) & set(test) and set(train) | set(test) == set(range(30))
    moving = np.sum(np.linalg.norm(features["velocity"], axis=-1) > 0)
    assert result.n_train[0] + result.n_test[0] == moving
    other = fit_tuning(activations, features, models=["velocity/direction"], seed=7)
    assert set(other.test_trajectories) != set(test)
    import sklearn.model_selection as sklearn_split
    ref_train, ref_test = sklearn_split.train_test_split(
        np.arange(30), test_size=0.2, random_state=42
    )
    np.testing.assert_array_equal(train, np.sort(ref_train))
    np.testing.assert_array_equal(test, np.sort(ref_test))


def test_explicit_train_trajectories(small):
    activations, features = small
    chosen = np.arange(0, 30, 2)
    by_ids = fit_tuning(activations, features, train_trajectories=chosen)
    by_mask = fit_tuning(activations, features, train_trajectories=np.arange(30) % 2 == 0)
    np.testing.assert_array_equal(by_ids.train_trajectories, chosen)
    np.testing.assert_array_equal(by_ids.test_trajectories, np.arange(1, 30, 2))
    np.testing.assert_array_equal(by_ids.r2_test, by_mask.r2_test)
    models = ["velocity/direction", "position/position_polar"]
    r2_test, _, _ = ref_fit(activations, features, chosen, models)
    columns = [by_ids.index(name) for name in models]
    np.testing.assert_allclose(by_ids.r2_test[:, columns], r2_test, rtol=1e-10, atol=1e-10)


def test_fit_tuning_validation(small):
    activations, features = small
    with pytest.raises(ValueError, match="must have shape"):
        fit_tuning(activations, {"velocity": features["velocity"][:, :-1]})
    with pytest.raises(ValueError, match="need trajectory ids"):
        fit_tuning(activations[:, 0], {"velocity": features["velocity"][:, 0]})
    with pytest.raises(ValueError, match="refers to feature"):
        fit_tuning(activations, features, models=["speed/direction"])
    with pytest.raises(ValueError, match="unknown feature model"):
        fit_tuning(activations, features, models=["velocity/angle"])
    with pytest.raises(ValueError, match="non-finite"):
        bad = activations.copy()
        bad[3, 4, 1] = np.nan
        fit_tuning(bad, features)
    with pytest.raises(ValueError, match="no training samples"):
        fit_tuning(activations, features, crop=12)
    with pytest.raises(ValueError, match="unknown trajectory ids"):
        fit_tuning(activations, features, train_trajectories=[0, 99])
    with pytest.raises(ValueError, match="both"):
        fit_tuning(activations, features, train_trajectories=np.arange(30))
    with pytest.raises(ValueError, match="test_fraction"):
        fit_tuning(activations, features, test_fraction=1.0)


def test_one_sample_per_trajectory_and_unit_vectors():
    """Static stimuli (n_time = 1) with a direction unit vector: speed is constant (r = 1)."""
    angles = np.repeat(np.linspace(-np.pi, np.pi, 12, endpoint=False), 5)
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=-1)[:, None, :]
    rng = np.random.default_rng(8)
    units = np.stack([np.cos(angles - 1.0) + 0.05 * rng.normal(size=60), rng.normal(size=60)], -1)
    result = fit_tuning(units[:, None, :], {"direction": direction})
    speed = result.index("direction/speed")
    np.testing.assert_array_equal(result.coefficients[:, speed, 0], 0.0)  # degenerate slope
    assert np.all(result.r2_test[:, speed] <= 0)
    assert result.r2_test[0, result.index("direction/direction")] > 0.9
    assert abs(preferred_direction(result, "direction")[0] - 1.0) < 0.1
    tuned = directionally_tuned(result, feature="direction")
    assert tuned[0]
    summary = tuning_summary(result, feature="direction")
    assert summary["n_tuned"] == tuned.sum() and summary["fraction_tuned"] == tuned.mean()


# ----------------------------------------------------------------------------------------
# simulation oracle: planted preferred directions, gains and noise
# ----------------------------------------------------------------------------------------


def _train_design(sim, family):
    result, features = sim["result"], sim["features"]
    is_train = np.isin(np.arange(len(features["velocity"])), result.train_trajectories)
    x = design_matrix(features["velocity"][is_train].reshape(-1, 2), family)[:, :2]
    return x - x.mean(axis=0)


def _angular_sd(sim, family, units):
    """Standard error of the fitted angle atan2(b, a): sigma^2 (X'X)^-1 projected on the
    direction perpendicular to the planted one, divided by the planted amplitude."""
    inverse = np.linalg.inv(_train_design(sim, family).T @ _train_design(sim, family))
    pd = sim["pd"][units]
    perpendicular = np.stack([-np.sin(pd), np.cos(pd)], axis=-1)
    variance = np.einsum("ui,ij,uj->u", perpendicular, inverse, perpendicular)
    return sim["sigma"][units] * np.sqrt(variance) / sim["gain"][units]


def test_simulation_recovers_planted_preferred_directions(simulation):
    sim = simulation
    for kind, family in (("direction", "direction"), ("modulated", "direction_speed")):
        units = np.flatnonzero(sim["kind"] == kind)
        sd = _angular_sd(sim, family, units)
        assert np.all(sd < 0.05)  # the test can resolve a few degrees
        coefficients = sim["result"].coefficients[:, sim["result"].index(f"velocity/{family}")]
        estimate = preferred_direction(coefficients[units])
        error = circular_error(estimate, sim["pd"][units])
        assert np.all(error < 5 * sd), (kind, error, sd)
    direction_units = np.flatnonzero(sim["kind"] == "direction")
    column = sim["result"].index("velocity/direction")
    np.testing.assert_allclose(
        preferred_direction(sim["result"])[direction_units],
        preferred_direction(sim["result"].coefficients[direction_units, column]),
    )


def test_simulation_test_r2_matches_expected_r2(simulation):
    """R2 ~ s2 / (s2 + sigma2) with s2 the variance of the planted signal on the test samples.

    With rho = 1 - R2 and n test samples, the sampling SD of R2 (noise variance and
    signal-noise covariance fluctuating) is rho sqrt((2 R2^2 + 4 R2 rho) / n); parameter
    estimation adds about 3 rho / n_train. Tolerance: 5 SD + 10 rho 3 / n_train.
    """
    sim, result = simulation, simulation["result"]
    is_test = np.isin(np.arange(200), result.test_trajectories)
    signal = sim["signal"][is_test].reshape(-1, len(sim["kind"]))
    n_test, n_train = signal.shape[0], (~is_test).sum() * 100
    for kind, model in (
        ("direction", "velocity/direction"),
        ("modulated", "velocity/direction_speed"),
        ("speed", "velocity/speed"),
    ):
        units = np.flatnonzero(sim["kind"] == kind)
        s2 = signal[:, units].var(axis=0)
        expected = s2 / (s2 + sim["sigma"][units] ** 2)
        rho = 1 - expected
        sd = rho * np.sqrt((2 * expected**2 + 4 * expected * rho) / n_test)
        tolerance = 5 * sd + 30 * rho / n_train
        observed = result.r2_test[units, result.index(model)]
        assert np.all(np.abs(observed - expected) < tolerance), (kind, observed, expected)
        assert np.all(expected > 0.3)


def test_simulation_untuned_units_have_r2_near_zero(simulation):
    """Pure noise: R2_test ~ -(p/n_train) with SD ~ 2 sqrt(p / (n_train n_test)), p = 3."""
    sim, result = simulation, simulation["result"]
    n_test = len(result.test_trajectories) * 100
    n_train = len(result.train_trajectories) * 100
    tolerance = 10 * 3 / n_train + 5 * 2 * np.sqrt(3 / (n_train * n_test))
    noise = np.flatnonzero(sim["kind"] == "noise")
    assert np.all(np.abs(result.r2_test[noise]) < tolerance), result.r2_test[noise]
    assert tolerance < 0.01


def test_simulation_best_model_and_tuned_units(simulation):
    sim, result = simulation, simulation["result"]
    names = np.array(result.model_names)
    speed_units = np.flatnonzero(sim["kind"] == "speed")
    assert set(names[np.argmax(result.r2_test[speed_units], axis=1)]) == {"velocity/speed"}
    modulated = np.flatnonzero(sim["kind"] == "modulated")
    r2 = {name: result.r2_test[modulated, result.index(f"velocity/{name}")]
          for name in ("direction", "speed", "direction_speed", "cartesian")}
    assert np.all(r2["direction_speed"] > np.maximum(r2["direction"], r2["speed"]))
    # no zero velocities here, so r cos(theta) = v_x: the two designs coincide
    np.testing.assert_allclose(r2["direction_speed"], r2["cartesian"], atol=1e-9)
    direction_units = np.flatnonzero(sim["kind"] == "direction")
    assert set(names[np.argmax(result.r2_test[direction_units], axis=1)]) == {"velocity/direction"}

    tuned = directionally_tuned(result)
    assert tuned[direction_units].all()
    for kind in ("speed", "noise", "dead"):
        assert not tuned[sim["kind"] == kind].any(), kind
    dead = np.flatnonzero(sim["kind"] == "dead")
    assert (result.r2_test[dead] == 1.0).all()  # constant: excluded from the tuned units


def test_simulation_summary(simulation):
    sim, result = simulation, simulation["result"]
    summary = tuning_summary(result)
    tuned = directionally_tuned(result)
    n_units = len(sim["kind"])
    assert summary["n_units"] == n_units and summary["n_tuned"] == tuned.sum()
    assert summary["fraction_tuned"] == pytest.approx(tuned.sum() / n_units)
    assert tuned.sum() >= PLANTED["direction"]
    tuned_directions = preferred_direction(result)[tuned]
    assert summary["uniformity"] == pytest.approx(direction_uniformity(tuned_directions))
    column = result.r2_test[:, result.index("velocity/speed")]
    alive = sim["kind"] != "dead"
    assert summary["mean_r2_test/velocity/speed"] == pytest.approx(column[alive].mean())
    assert summary["median_r2_test/velocity/speed"] == pytest.approx(np.median(column[alive]))
    assert set(summary) >= {f"mean_r2_test/{name}" for name in result.model_names}
    # the planted directions are evenly spread over 16 of 18 bins plus 8 random ones
    assert summary["uniformity"] < 1.0


# ----------------------------------------------------------------------------------------
# preferred directions, tuned units, uniformity
# ----------------------------------------------------------------------------------------


def _result_with(r2, coefficients):
    """A hand-made one-model result: velocity/direction with the given R2 and coefficients."""
    r2 = np.asarray(r2, float)[:, None]
    return TuningResult(
        model_names=["velocity/direction"],
        r2_test=r2,
        r2_train=r2,
        coefficients=np.asarray(coefficients, float)[:, None, :],
        n_train=np.array([10]),
        n_test=np.array([5]),
        train_trajectories=np.arange(4),
        test_trajectories=np.arange(4, 5),
    )


def test_preferred_direction_and_directionally_tuned():
    coefficients = [[1, 0, 0], [0, 1, 0], [-1, 0, 0], [-1, -0.0, 0], [0, 0, 3], [1, -1, 0]]
    expected = [0, np.pi / 2, np.pi, np.pi, np.nan, -np.pi / 4]
    np.testing.assert_allclose(preferred_direction(np.array(coefficients)), expected)
    result = _result_with([0.5, 1.0, 0.1, np.nan, 0.2, 0.21], coefficients)
    np.testing.assert_allclose(preferred_direction(result), expected)
    assert directionally_tuned(result).tolist() == [True, False, False, False, False, True]
    low = directionally_tuned(result, threshold=0.05)
    assert low.tolist() == [True, False, True, False, True, True]
    with pytest.raises(KeyError, match="was not fitted"):
        preferred_direction(result, feature="acceleration")
    with pytest.raises(ValueError, match="n_units, 2"):
        preferred_direction(np.zeros((3, 4)))
    summary = tuning_summary(result)
    assert summary["n_tuned"] == 2 and summary["fraction_tuned"] == pytest.approx(2 / 6)
    # R2 == 1 and NaN are left out of the mean
    mean = summary["mean_r2_test/velocity/direction"]
    assert mean == pytest.approx(np.mean([0.5, 0.1, 0.2, 0.21]))
    none_tuned = tuning_summary(result, threshold=0.9)
    assert none_tuned["n_tuned"] == 0 and math.isnan(none_tuned["uniformity"])


def test_uniformity_extremes_and_hand_computed_value():
    n_bins = 18
    centres = -np.pi + (np.arange(n_bins) + 0.5) * 2 * np.pi / n_bins
    assert direction_uniformity(np.tile(centres, 5)) == 0.0
    assert direction_uniformity(np.full(40, 0.3)) == pytest.approx(2 * (1 - 1 / n_bins), abs=1e-12)
    assert direction_uniformity(np.full(7, np.pi), n_bins=4) == pytest.approx(1.5, abs=1e-12)
    # 4 bins with counts (3, 1, 0, 0): mean 1, TAD = (2 + 0 + 1 + 1) / 4
    values = [-3.0, -2.5, -2.0, -1.0]
    assert direction_uniformity(values, n_bins=4) == pytest.approx(1.0, abs=1e-15)
    assert direction_uniformity([np.nan, *values], n_bins=4) == pytest.approx(1.0, abs=1e-15)
    assert math.isnan(direction_uniformity([]))
    with pytest.raises(ValueError, match=r"\[-pi, pi\]"):
        direction_uniformity([0.0, 4.0])
    with pytest.raises(ValueError, match="n_bins"):
        direction_uniformity([0.0], n_bins=0)


def test_uniformity_of_random_directions_is_small():
    """For N uniform directions E[TAD] ~ sqrt(2 B (1 - 1/B) / (pi N))."""
    rng = np.random.default_rng(9)
    n, n_bins = 18_000, 18
    expected = math.sqrt(2 * n_bins * (1 - 1 / n_bins) / (math.pi * n))
    uniform = direction_uniformity(rng.uniform(-np.pi, np.pi, n))
    assert 0.3 * expected < uniform < 2 * expected
    clustered = direction_uniformity(rng.vonmises(0.5, 4.0, n))
    assert clustered > 20 * expected


def test_docstring_examples():
    result = doctest.testmod(tuning, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

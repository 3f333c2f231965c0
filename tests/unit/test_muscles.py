"""Muscle lengths: the shipped OpenSim surrogate, the fit, spindle inputs."""

import numpy as np

from neurofit.datasets import muscles


def test_the_shipped_surrogate_covers_deepdraws_25_muscles_with_its_held_out_fit():
    s = muscles.load_surrogate()
    assert tuple(s["muscle_names"]) == muscles.MUSCLE_NAMES
    assert s["coefficients"].shape[1] == 25
    assert np.median(s["r2_test"]) > 0.999 and s["r2_test"].min() > 0.9
    q = np.array([[50.0, 40.0, 20.0, 75.0], [10.0, 60.0, -40.0, 100.0]])
    lengths = muscles.muscle_lengths(q)
    assert lengths.shape == (2, 25)
    assert np.all((lengths > 5) & (lengths < 400))  # fibre lengths in mm
    # elbow flexion stretches the triceps (TRIlong) and shortens the brachialis (BRA)
    flexed = muscles.muscle_lengths(np.array([[50.0, 40.0, 20.0, 120.0]]))[0]
    extended = muscles.muscle_lengths(np.array([[50.0, 40.0, 20.0, 30.0]]))[0]
    tri, bra = muscles.MUSCLE_NAMES.index("TRIlong"), muscles.MUSCLE_NAMES.index("BRA")
    assert flexed[tri] > extended[tri] and flexed[bra] < extended[bra]


def test_fit_recovers_a_polynomial_and_drops_equilibrium_outliers():
    rng = np.random.default_rng(0)
    q = rng.uniform([-60, 10, -80, 10], [100, 120, 15, 125], (600, 4))
    z = np.deg2rad(q)
    truth = np.stack([100 + 20 * np.sin(z[:, 0]) * z[:, 3], 50 + 5 * z[:, 1] ** 2 - 3 * z[:, 2]], axis=1)
    noisy = truth.copy()
    noisy[:10, 0] += 80.0  # a wrong equilibrium at 10 poses
    fit = muscles.fit_surrogate(q, noisy, degree=4)
    assert fit["n_outliers"][0] >= 10 and fit["n_outliers"][1] <= 3
    assert fit["r2_test"].min() > 0.999
    predicted = muscles.polynomial_features((z - fit["centre"]) / fit["half_range"], 4) @ fit["coefficients"]
    assert np.abs(predicted - truth)[10:].max() < 0.5


def test_spindle_inputs_are_length_and_its_gradient():
    lengths = np.cumsum(np.random.default_rng(0).normal(size=(3, 20, 25)), axis=1)
    spindle = muscles.spindle_inputs(lengths, dt=0.015)
    assert spindle.shape == (3, 25, 20, 2)
    np.testing.assert_allclose(spindle[..., 0], lengths.transpose(0, 2, 1))
    np.testing.assert_allclose(spindle[..., 1], np.gradient(lengths, 0.015, axis=1).transpose(0, 2, 1))

"""Muscle lengths: the shipped OpenSim surrogate, the fit, spindle inputs."""

import gzip
import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from neurofit.datasets import muscles
from neurofit.datasets.arm import MAX_ANGLES, MIN_ANGLES

#: DeepDraw's MoBL-ARMS model (``amathislab/DeepDraw``, MIT, ``dataset/MoBL_ARMS_module5_scaleIK.osim``
#: at b290e9e), gzipped; its .vtp geometry files are absent, which muscle lengths do not need.
OSIM_GZ = Path(__file__).parent / "fixtures" / "MoBL_ARMS_module5_scaleIK.osim.gz"
#: The first postures of the shipped fit's held-out set (an independent generator run), degrees.
HELD_OUT_POSES = np.array([
    [52.9, 89.4, -41.0, 101.1], [37.9, 36.3, 14.1, 99.4], [53.5, 81.9, -5.6, 80.1],
    [-35.2, 32.7, 1.6, 105.0], [31.9, 60.5, -1.8, 54.4], [29.2, 49.6, -14.6, 124.6],
])


def test_the_shipped_surrogate_covers_deepdraws_25_muscles_with_its_held_out_fit():
    s = muscles.load_surrogate()
    assert tuple(s["muscle_names"]) == muscles.MUSCLE_NAMES
    assert s["coefficients"].shape == (len(muscles._exponents(4, int(s["degree"]))), 25)
    # every muscle's held-out R² (generator postures of other trajectories, wrapping artefacts
    # excluded and counted) is at least 0.99, with few held-out poses excluded
    assert s["r2_test"].min() >= 0.99 and np.median(s["r2_test"]) > 0.9995
    assert s["n_test"] >= 1000 and s["n_train"] >= 4000
    assert s["n_outliers_test"].max() <= 0.05 * s["n_test"] and s["n_outliers_test"].sum() <= 0.01 * 25 * s["n_test"]
    assert np.all(s["rmse_test_mm"] < 2.0) and float(s["artefact_mm"]) == muscles.ARTEFACT_MM
    q = np.array([[50.0, 40.0, 20.0, 75.0], [10.0, 60.0, -40.0, 100.0]])
    lengths = muscles.muscle_lengths(q)
    assert lengths.shape == (2, 25)
    assert np.all((lengths > 5) & (lengths < 400))  # fibre lengths in mm
    # elbow flexion stretches the triceps (TRIlong) and shortens the brachialis (BRA)
    flexed = muscles.muscle_lengths(np.array([[50.0, 40.0, 20.0, 120.0]]))[0]
    extended = muscles.muscle_lengths(np.array([[50.0, 40.0, 20.0, 30.0]]))[0]
    tri, bra = muscles.MUSCLE_NAMES.index("TRIlong"), muscles.MUSCLE_NAMES.index("BRA")
    assert flexed[tri] > extended[tri] and flexed[bra] < extended[bra]


def test_the_surrogate_matches_opensim_at_held_out_generator_postures(tmp_path):
    pytest.importorskip("opensim")
    osim_file = tmp_path / "MoBL_ARMS_module5_scaleIK.osim"
    osim_file.write_bytes(gzip.decompress(OSIM_GZ.read_bytes()))
    exact = muscles.opensim_fibre_lengths(osim_file, HELD_OUT_POSES)
    error = np.abs(muscles.muscle_lengths(HELD_OUT_POSES) - exact)
    assert np.median(error) < 0.2 and error.max() < muscles.ARTEFACT_MM  # none on a wrapping artefact here
    elbow = [muscles.MUSCLE_NAMES.index(m) for m in ("ANC", "BRA", "BRD", "ECRL", "PT", "TRIlat", "TRImed")]
    assert error[:, elbow].max() < 0.1  # one-joint elbow muscles: smooth paths, fitted to ~0.02 mm


def test_batches_of_any_shape_evaluate_the_polynomial_in_blocks():
    s = muscles.load_surrogate()
    rng = np.random.default_rng(1)
    lo, hi = s["domain_deg"]
    q = rng.uniform(lo, hi, (3, 7000, 4))  # 21000 poses: several blocks
    z = (np.deg2rad(q) - s["centre"]) / s["half_range"]
    exponents = muscles._exponents(4, int(s["degree"]))
    reference = (z[..., None, :] ** exponents).prod(-1) @ s["coefficients"]
    np.testing.assert_allclose(muscles.muscle_lengths(q), reference, rtol=1e-10, atol=1e-8)
    with pytest.raises(ValueError, match="trailing axis of 4"):
        muscles.muscle_lengths(q[..., :3])
    start = time.perf_counter()
    muscles.muscle_lengths(q)
    assert time.perf_counter() - start < 2.0  # microseconds per pose (a generous bound)


def test_polynomial_features_are_every_monomial_up_to_the_degree():
    z = np.random.default_rng(0).uniform(-1, 1, (5, 4))
    features = muscles.polynomial_features(z, 3)
    exponents = [e for d in range(4) for e in itertools.product(range(d + 1), repeat=4) if sum(e) == d]
    assert features.shape == (5, 35) and np.allclose(features[:, 0], 1)
    np.testing.assert_allclose(features, np.stack([np.prod(z**np.array(e), axis=-1) for e in exponents], -1))


def test_fit_recovers_a_polynomial_and_drops_equilibrium_outliers():
    rng = np.random.default_rng(0)
    q = rng.uniform([-60, 10, -80, 10], [100, 120, 15, 125], (600, 4))
    z = np.deg2rad(q)
    truth = np.stack([100 + 20 * np.sin(z[:, 0]) * z[:, 3], 50 + 5 * z[:, 1] ** 2 - 3 * z[:, 2]], axis=1)
    noisy = truth.copy()
    noisy[:10, 0] += 80.0  # a wrong equilibrium at 10 poses
    fit = muscles.fit_surrogate(q, noisy, degree=4)
    assert fit["n_outliers"][0] >= 10 and fit["n_outliers"][1] <= 3
    assert fit["n_train"] + fit["n_test"] == 600 and fit["n_outliers_test"][0] >= 1
    assert fit["r2_test"].min() > 0.999 and fit["r2_test_all"][0] < fit["r2_test"][0]
    predicted = muscles.polynomial_features((z - fit["centre"]) / fit["half_range"], 4) @ fit["coefficients"]
    assert np.abs(predicted - truth)[10:].max() < 0.5


def test_fit_scores_on_a_given_held_out_set_and_trims_jumps():
    rng = np.random.default_rng(2)
    q, q_test = rng.uniform(-40, 80, (800, 4)), rng.uniform(-40, 80, (300, 4))

    def branch(angles):  # a smooth length, and a +40 mm wrapping jump where two angles are large
        z = np.deg2rad(angles)
        return (120 + 15 * np.cos(z[:, 0]) + 8 * z[:, 1] * z[:, 3] + 40.0 * ((angles[:, 1] > 65) & (angles[:, 2] > 65)))[:, None]

    fit = muscles.fit_surrogate(q, branch(q), q_test=q_test, lengths_test=branch(q_test), degree=4)
    jumped = ((q_test[:, 1] > 65) & (q_test[:, 2] > 65)).sum()
    assert fit["n_train"] == 800 and fit["n_test"] == 300
    assert fit["n_outliers_test"][0] == jumped > 0 and fit["r2_test"][0] > 0.999 and fit["r2_test_all"][0] < 0.9
    assert tuple(fit["domain_deg"].shape) == (2, 4) and "degree-4" in str(fit["form"])


def test_fitting_poses_are_generator_postures_and_a_uniform_spread():
    q = muscles.fitting_poses(400, seed=0)
    assert q.shape == (400, 4) and np.all(q >= MIN_ANGLES) and np.all(q <= MAX_ANGLES)
    # generator postures first: the IK holds the pen at rest, so they repeat; uniform ones do not
    postures, spread = q[:200], q[200:]
    assert len(np.unique(postures, axis=0)) < 200 and len(np.unique(spread, axis=0)) == 200


def test_spindle_inputs_are_length_and_its_gradient():
    lengths = np.cumsum(np.random.default_rng(0).normal(size=(3, 20, 25)), axis=1)
    spindle = muscles.spindle_inputs(lengths, dt=0.015)
    assert spindle.shape == (3, 25, 20, 2)
    np.testing.assert_allclose(spindle[..., 0], lengths.transpose(0, 2, 1))
    np.testing.assert_allclose(spindle[..., 1], np.gradient(lengths, 0.015, axis=1).transpose(0, 2, 1))

"""The PCR dataset with motornet's planar arm (``muscle_model="motornet"``): geometry, IK, builder."""

import sys

import numpy as np
import pytest
import torch

from neurofit.datasets import motornet_arm, pcr
from neurofit.models.deepdraw import build_deepdraw_conv
from neurofit.pipelines.trainers.supervised import train_supervised
from neurofit.pipelines.training import RunContext
from neurofit.schemas.config import Dataset

HORIZONTAL = ("horizontal",)


@pytest.fixture(scope="module")
def planar():
    return pcr.generate_pcr(n_per_class=3, n_time=40, seed=3, n_classes=4, planes=HORIZONTAL,
                            muscle_model="motornet", max_noise=0.0)


def test_motornet_data_have_six_muscles_and_the_default_paths_kinematics(planar):
    n, t = 12, 40
    assert planar["spindle"].shape == (n, 6, t, 2) and planar["spindle"].dtype == np.float32
    assert planar["muscle_lengths"].shape == (n, t, 6) and planar["joint_angles"].shape == (n, t, 2)
    assert planar["endeffector"].shape == (n, t, 3) and np.all(planar["endeffector"][..., 2] == 0)
    default = pcr.generate_pcr(n_per_class=1, n_time=t, seed=0, n_classes=2, planes=HORIZONTAL, with_muscles=False)
    assert set(planar) - {"spindle", "muscle_lengths"} == set(default)
    for name in ("position", "velocity", "acceleration"):
        assert planar[name].shape == (n, t, 2)
    assert planar["speed"].shape == planar["direction"].shape == (n, t)
    assert np.bincount(planar["label"]).tolist() == [3] * 4 and np.all(planar["latent_plane"] == 0)
    assert isinstance(planar["n_rejected"], int)
    # noise-free: the lengths are motornet's; velocities are np.gradient of them at dt, as in the default path
    np.testing.assert_array_equal(planar["muscle_lengths"], motornet_arm.muscle_lengths(planar["joint_angles"]))
    np.testing.assert_allclose(planar["spindle"][..., 1], np.gradient(planar["muscle_lengths"], 0.015, axis=1)
                               .transpose(0, 2, 1), rtol=1e-4, atol=1e-3)
    assert np.all(planar["muscle_lengths"].std(axis=1).mean(axis=0) > 0.1)  # every muscle moves (mm)


def test_planar_ik_traces_the_trajectories_within_the_joint_limits(planar):
    g = motornet_arm.arm_geometry()
    q = planar["joint_angles"]
    assert np.all(q >= g["min_angles"]) and np.all(q <= g["max_angles"])
    assert np.all(planar["tracing_error"] < 1e-9)  # analytic IK: round-off only (rejection is at 1e-2 cm)
    hand = planar["endeffector"] @ motornet_arm.ARM_TO_WORLD
    assert np.abs(motornet_arm.forward_kinematics(q) - hand[..., :2]).max() < 1e-10
    # the pen position in the plane is the hand's, moved by the start point
    np.testing.assert_allclose(hand[..., :2] - hand[:, :1, :2], planar["position"] - planar["position"][:, :1],
                               atol=1e-9)
    # the horizontal plane's axes are the arm frame's
    np.testing.assert_array_equal(motornet_arm.ARM_TO_WORLD[:, :2], pcr.PLANE_TO_WORLD["horizontal"][:, :2])
    # out of reach (too far, inside the elbow's reach, behind the shoulder) or out of the plane: an error
    far = np.array([[[70.0, 0.0, 0.0]], [[0.0, 5.0, 0.0]], [[-10.0, -30.0, 0.0]], [[0.0, 40.0, 1.0]]])
    _, error = motornet_arm.trace(far @ motornet_arm.ARM_TO_WORLD.T)
    assert np.all(error > 0.5)


def test_geometry_is_motornets_own_at_reset_and_after_a_step():
    import motornet as mn

    effector = mn.effector.RigidTendonArm26(muscle=mn.muscle.RigidTendonHillMuscle())
    names = effector.muscle.state_name
    q = np.array([[30.0, 60.0], [45.0, 90.0], [80.0, 120.0], [110.0, 20.0]])
    dq = np.array([[40.0, -80.0], [0.0, 0.0], [-120.0, 30.0], [10.0, 200.0]])
    state = torch.tensor(np.deg2rad(np.c_[q, dq]), dtype=torch.float32)
    tendon = effector.muscle.l0_se.double().numpy()[0]
    effector.reset(options={"joint_state": state})

    def ours():
        joint = np.rad2deg(effector.states["joint"].double().numpy())
        np.testing.assert_allclose(motornet_arm.forward_kinematics(joint[:, :2]),
                                   1e2 * effector.states["fingertip"].double().numpy(), atol=1e-4)
        return motornet_arm.muscle_state(joint[:, :2], joint[:, 2:])

    # at reset: the muscles' own fibre length and velocity states
    lengths, velocities = ours()
    muscle = effector.states["muscle"].double().numpy()
    np.testing.assert_allclose(lengths, 1e3 * muscle[:, names.index("muscle length")], atol=1e-3)
    np.testing.assert_allclose(velocities, 1e3 * muscle[:, names.index("muscle velocity")], atol=1e-3)
    # after stepping motornet's dynamics (its muscle states then lag the joints by a step: use the geometry)
    for _ in range(3):
        effector.step(torch.full((4, 6), 0.2))
    assert not np.allclose(effector.states["joint"].numpy(), state.numpy())  # the arm moved
    lengths, velocities = ours()
    geometry = effector.states["geometry"].double().numpy()
    np.testing.assert_allclose(lengths, 1e3 * (geometry[:, 0] - tendon), atol=1e-3)
    np.testing.assert_allclose(velocities, 1e3 * geometry[:, 1], atol=1e-3)


def test_lengths_follow_posture_as_the_muscles_act():
    names = list(motornet_arm.MUSCLE_NAMES)
    base = motornet_arm.muscle_lengths(np.array([45.0, 80.0]))
    elbow = motornet_arm.muscle_lengths(np.array([45.0, 100.0])) - base  # elbow flexion
    shoulder = motornet_arm.muscle_lengths(np.array([65.0, 80.0])) - base  # shoulder flexion
    for flexor, extensor in (("brachioradialis", "tricepslat"), ("biceps", "tricepslong")):
        assert elbow[names.index(flexor)] < -1 and elbow[names.index(extensor)] > 1  # mm
    assert shoulder[names.index("pectoralis")] < -1 and shoulder[names.index("deltoid")] > 1
    assert abs(shoulder[names.index("brachioradialis")]) < 1e-9  # monoarticular elbow muscle


def test_motornets_velocity_model_agrees_with_the_spindle_gradient(planar):
    q = planar["joint_angles"]
    _, velocities = motornet_arm.muscle_state(q, np.gradient(q, 0.015, axis=1))
    gradient = np.gradient(planar["muscle_lengths"], 0.015, axis=1)
    assert np.linalg.norm(velocities - gradient) < 0.02 * np.linalg.norm(gradient)


def test_other_planes_unknown_models_and_missing_motornet_are_refused(monkeypatch):
    with pytest.raises(ValueError, match=r"muscle_model='motornet'.*pass planes=\['horizontal'\]"):
        pcr.generate_pcr(n_per_class=1, n_time=40, n_classes=2, muscle_model="motornet")
    with pytest.raises(ValueError, match=r"muscle_model='motornet'.*planes=\['vertical'\]"):
        pcr.build_pcr_characters(0, planes=["vertical"], muscle_model="motornet")
    with pytest.raises(ValueError, match="muscle_model='mujoco': choose from"):
        pcr.generate_pcr(n_per_class=1, muscle_model="mujoco")
    monkeypatch.setitem(sys.modules, "motornet", None)
    motornet_arm.effector.cache_clear()
    motornet_arm.arm_geometry.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install neurofit\[motornet\]"):
            motornet_arm.muscle_lengths(np.zeros((1, 2)))
    finally:
        motornet_arm.effector.cache_clear()
        motornet_arm.arm_geometry.cache_clear()


def test_the_option_keeps_the_hash_of_existing_configs_and_is_type_checked():
    config = {"n_per_class": 60, "planes": ["horizontal"]}
    key, stored = Dataset.key_for("neurofit.pcr_characters", config)
    assert "muscle_model" not in stored
    assert Dataset.key_for("neurofit.pcr_characters", {**config, "muscle_model": "opensim_surrogate"})[0] == key
    other, stored = Dataset.key_for("neurofit.pcr_characters", {**config, "muscle_model": "motornet"})
    assert other != key and stored["muscle_model"] == "motornet"
    with pytest.raises(ValueError, match="'muscle_model' must be one of"):
        Dataset.key_for("neurofit.pcr_characters", {**config, "muscle_model": "mujoco"})


def test_a_motornet_bundle_trains_a_deepdraw_conv_model():
    bundle = pcr.build_pcr_characters(0, n_per_class=8, n_time=32, n_classes=3, planes=["horizontal"],
                                      muscle_model="motornet", batch_size=8, max_noise=0.0)
    info = bundle.info
    assert info.input_shape == (32, 6, 2) and info.n_classes == 3
    assert info.extra["muscles"] == list(motornet_arm.MUSCLE_NAMES) and info.extra["muscle_model"] == "motornet"
    assert len(info.normalization["all"]["mean"]) == 6
    batch = next(iter(bundle.loaders["train"]["all"]))
    assert batch["inputs"].shape[1:] == (32, 6, 2) and batch["inputs"].dtype == torch.float32
    train = bundle.loaders["train"]["all"].dataset.tensors["inputs"]
    assert torch.allclose(train.mean(dim=(0, 1)), torch.zeros(6, 2), atol=1e-4)  # z-scored on train
    assert bundle.artefacts["test_joint_angles"].shape[1:] == (32, 2)
    model = build_deepdraw_conv(info, 0)
    assert model(batch["inputs"]).shape == (len(batch["inputs"]), 3)
    result = train_supervised(model, bundle, 0, RunContext(threads=1), max_epochs=2, steps_per_epoch=3)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 2 and np.all(np.isfinite(losses)) and losses[-1] < losses[0]

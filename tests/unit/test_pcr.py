"""The generated PCR dataset: augmentation, placement, rejection by tracing error, the builder."""

import h5py
import numpy as np
import pytest

from neurofit.datasets import pcr


@pytest.fixture(scope="module")
def small():
    return pcr.generate_pcr(n_per_class=3, n_time=40, seed=3, n_classes=4)


def test_generated_trajectories_have_deepdraws_layout_and_trace_within_1e_2_cm(small):
    n = 12
    assert small["spindle"].shape == (n, 25, 40, 2) and small["spindle"].dtype == np.float32
    assert small["joint_angles"].shape == (n, 40, 4) and small["endeffector"].shape == (n, 40, 3)
    assert np.bincount(small["label"]).tolist() == [3, 3, 3, 3]
    assert np.all(small["tracing_error"] < pcr.MAX_TRACING_ERROR_CM)
    assert isinstance(small["n_rejected"], int) and small["n_rejected"] >= 0
    for name in ("size", "speed", "noise"):
        assert set(np.unique(small[f"latent_{name}"])) <= set(pcr.LATENT_SETS[name])
    assert set(np.unique(small["latent_rotation"])) <= set(pcr.LATENT_SETS["rotation"])
    # velocities are np.gradient of the lengths at DeepDraw's dt
    np.testing.assert_allclose(small["spindle"][..., 1], np.gradient(small["muscle_lengths"], 0.015, axis=1)
                               .transpose(0, 2, 1), rtol=1e-4, atol=1e-3)


def test_the_pen_rests_before_and_after_the_drawn_part(small):
    xy = small["position"]
    for i in range(len(xy)):
        s, e = small["start_id"][i], small["end_id"][i]
        assert np.allclose(xy[i, :s + 1], xy[i, s]) and np.allclose(xy[i, e - 1:], xy[i, e - 1])
        assert np.ptp(xy[i, s:e], axis=0).max() > 1.0  # something was drawn (cm)
    speed = small["speed"]
    assert np.all(np.isnan(small["direction"]) == (speed <= 1e-9))


def test_placement_applies_size_speed_and_rotation():
    rng = np.random.default_rng(0)
    curve = np.stack([np.linspace(0, 4, 20), np.zeros(20)], -1)[None]
    latents = {"size": np.array([1.3]), "rotation": np.array([np.pi / 6]), "shear_x": np.zeros(1),
               "shear_y": np.zeros(1), "speed": np.array([0.8])}
    xy, start, end = pcr.place_trajectories(curve, latents, 64, rng)
    assert end[0] - start[0] == round(20 * 1.3 / 0.8)
    np.testing.assert_allclose(xy[0, -1], 4 * 1.3 * np.array([np.cos(np.pi / 6), np.sin(np.pi / 6)]), atol=1e-9)
    with pytest.raises(ValueError, match="needs 32 samples"):
        pcr.place_trajectories(curve, latents, 30, rng)


def test_unreachable_start_points_are_rejected_and_counted(monkeypatch):
    far = np.array([[0.0, -90.0, 0.0]])  # 90 cm from the shoulder: every trajectory fails
    monkeypatch.setitem(pcr.__dict__, "start_point_pool", lambda plane: far)
    with pytest.raises(RuntimeError, match="rejected for tracing error"):
        pcr.generate_pcr(n_per_class=1, n_time=40, n_classes=2, max_rounds=2, with_muscles=False)


def test_builder_gives_sequence_batches_with_labels_or_trajectory_targets():
    bundle = pcr.build_pcr_characters(0, n_per_class=10, n_time=40, n_classes=4, batch_size=8)
    info = bundle.info
    assert info.modality == "sequence" and info.input_shape == (40, 25, 2) and info.n_classes == 4
    batch = next(iter(bundle.loaders["train"]["all"]))
    assert batch["inputs"].shape[1:] == (40, 25, 2) and batch["labels"].max() < 4
    assert {len(bundle.loaders[t]["all"].dataset) for t in ("train", "validation", "test")} == {7 * 4, 4, 8}
    assert bundle.artefacts["test_velocity"].shape == (8, 40, 2)
    regression = pcr.build_pcr_characters(0, n_per_class=5, n_time=40, n_classes=4, task="trajectory")
    batch = next(iter(regression.loaders["train"]["all"]))
    assert batch["targets"].shape[1:] == (40, 3) and np.allclose(batch["targets"][:, 0], 0)
    with pytest.raises(ValueError, match="task="):
        pcr.build_pcr_characters(0, task="reach")
    with pytest.raises(ValueError, match="planes="):
        pcr.build_pcr_characters(0, planes=["sagittal"])


def test_uci_style_files_are_read_and_malformed_ones_refused(tmp_path):
    good = tmp_path / "chars.hdf5"
    data = np.full((4, 3, 30), np.nan)
    t = np.linspace(0, 1, 25)
    for i in range(4):
        data[i, 0, :25], data[i, 1, :25], data[i, 2, :25] = 3 * t + i, np.sin(3 * t), 0
    with h5py.File(good, "w") as f:
        f["trajectories"], f["labels"] = data, np.array([1, 2, 1, 2])
    trajectories, labels = pcr.load_trajectory_file(good)
    assert [len(x) for x in trajectories] == [25] * 4 and labels.tolist() == [0, 1, 0, 1]
    assert np.allclose(trajectories[1][0], 0)
    out = pcr.generate_pcr(n_per_class=2, n_time=40, n_classes=2, trajectories_path=str(good), with_muscles=False)
    assert np.bincount(out["label"]).tolist() == [2, 2]
    built = pcr.build_pcr_characters(0, n_per_class=5, n_time=40, n_classes=2, trajectories_path=str(good))
    assert built.info.n_classes == 2  # the builder resolves the path (resolve_data_path) before reading
    with pytest.raises(ValueError, match="no readable character trajectory file"):
        pcr.build_pcr_characters(0, n_classes=2, trajectories_path=str(tmp_path / "absent.hdf5"))
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f["trajectories"] = data
    with pytest.raises(ValueError, match=r"bad.hdf5: key 'labels' is missing"):
        pcr.load_trajectory_file(bad)


def test_oversampled_rounds_keep_only_each_class_shortfall():
    # Class 1 is oversampled 2x for a shortfall of 2: only its first two accepted candidates count.
    labels = np.array([0, 1, 1, 1, 1])
    ok = np.array([True, False, True, True, True])
    keep = ok & (pcr._rank_within_class(labels, ok) < np.array([1, 2])[labels])
    assert keep.tolist() == [True, False, True, True, False]

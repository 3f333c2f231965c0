"""DeepDraw's PCR hdf5 files: layout checks, NaN padding, streamed batches, training on them."""

import h5py
import numpy as np
import pytest
import torch

from neurofit.datasets import pcr_files
from neurofit.datasets.paths import DataPathError

N, T = 40, 24


def _arrays(n=N, n_time=T, seed=0):
    """A small file's arrays in DeepDraw's layout; trajectory i is padded by i % 4 steps at the end."""
    rng = np.random.default_rng(seed)
    lengths = 100 + np.cumsum(rng.normal(0, 1, (n, 25, n_time)), axis=2)
    spindle = np.stack([lengths, np.gradient(lengths, 0.015, axis=2)], axis=-1)
    ee = 30 + np.cumsum(rng.normal(0, 0.3, (n, 3, n_time)), axis=2)
    ee[:, 2] = 10.0  # horizontal plane: world z constant
    joints = rng.normal(0, 20, (n, 4, n_time))
    for i in range(n):
        pad = i % 4
        if pad:
            spindle[i, :, -pad:] = np.nan
            ee[i, :, -pad:] = np.nan
            joints[i, :, -pad:] = np.nan
    return {"spindle_info": spindle.astype(np.float32), "label": (np.arange(n) % 20 + 1).astype(np.int64),
            "endeffector_coords": ee, "joint_coords": joints, "start_id": np.zeros(n, int),
            "end_id": np.full(n, n_time - 1), "speed": rng.choice([0.8, 1.0, 1.2, 1.4], n)}


def _write(path, arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return str(path)


def _all(loader):
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_batches_follow_the_pcr_contract_and_padding_becomes_rest(tmp_path):
    arrays = _arrays()
    path = _write(tmp_path / "pcr_dataset_train.hdf5", arrays)
    bundle = pcr_files.build_pcr_hdf5(0, path=path, batch_size=8)
    info = bundle.info
    assert info.input_shape == (T, 25, 2) and info.provides == ("labels",) and info.n_classes == 20
    assert info.extra["n_rows"] == {"train": 29, "validation": 3, "test": 8}  # test 20 %, validation 10 %
    test = _all(bundle.loaders["test"]["all"])
    rows = np.arange(32, 40)
    np.testing.assert_array_equal(test["labels"].numpy(), arrays["label"][rows] - 1)
    mean, sd = np.asarray(info.normalization["all"]["mean"]), np.asarray(info.normalization["all"]["sd"])
    raw = test["inputs"].numpy() * sd + mean  # (8, T, 25, 2)
    for j, i in enumerate(rows):
        pad = i % 4
        valid = T - pad
        np.testing.assert_allclose(raw[j, :valid], arrays["spindle_info"][i].transpose(1, 0, 2)[:valid],
                                   rtol=1e-4, atol=1e-3)
        # padding is a rest: the length holds its last value, the velocity is 0
        np.testing.assert_allclose(raw[j, valid:, :, 0], np.broadcast_to(raw[j, valid - 1, :, 0], (pad, 25)),
                                   rtol=1e-5)
        np.testing.assert_allclose(raw[j, valid:, :, 1], 0, atol=1e-3)
    assert np.isfinite(test["inputs"].numpy()).all()
    # the kinematic artefacts cover exactly the test tier, in its order
    art = bundle.artefacts
    assert art["test_position"].shape == (8, T, 2) and art["test_joint_angles"].shape == (8, T, 4)
    np.testing.assert_array_equal(art["test_label"], arrays["label"][rows] - 1)
    ee = arrays["endeffector_coords"][rows[1]]  # horizontal: plane x = -world y, plane y = world x
    np.testing.assert_allclose(art["test_position"][1, : T - 1, 0], -(ee[1, : T - 1] - ee[1, 0]))
    np.testing.assert_allclose(art["test_position"][1, : T - 1, 1], ee[0, : T - 1] - ee[0, 0])


def test_train_loader_streams_and_shuffles_from_the_global_generator(tmp_path):
    path = _write(tmp_path / "train.hdf5", _arrays())
    bundle = pcr_files.build_pcr_hdf5(0, path=path, batch_size=8)
    loader = bundle.loaders["train"]["all"]
    assert not any(isinstance(v, np.ndarray) and v.size > 100 for v in vars(loader.dataset).values())  # rows only
    torch.manual_seed(3)
    first = _all(loader)["labels"]
    torch.manual_seed(3)
    np.testing.assert_array_equal(_all(loader)["labels"], first)
    assert sorted(first.tolist()) == sorted((np.arange(29) % 20).tolist())  # every train row once an epoch
    torch.manual_seed(4)
    assert not torch.equal(_all(loader)["labels"], first)


def test_separate_test_file_and_trajectory_task_mask_padding(tmp_path):
    train = _write(tmp_path / "train.hdf5", _arrays())
    test = _write(tmp_path / "test.hdf5", _arrays(n=12, seed=1))
    bundle = pcr_files.build_pcr_hdf5(0, path=train, test_path=test, task="trajectory", test_rows=10)
    assert bundle.info.provides == ("targets", "mask") and bundle.info.extra["n_rows"]["test"] == 10
    batch = _all(bundle.loaders["test"]["all"])
    assert batch["targets"].shape == (10, T, 3) and batch["weights"].shape == (10, T)
    np.testing.assert_array_equal(batch["weights"].sum(1).numpy(), T - np.arange(10) % 4)
    np.testing.assert_allclose(batch["targets"][:, 0].numpy(), 0)  # from the first valid step


@pytest.mark.parametrize("change, key, problem", [
    (lambda a: a.pop("label"), "label", "missing"),
    (lambda a: a.update(spindle_info=a["spindle_info"][:, :20]), "spindle_info", "shape"),
    (lambda a: a.update(endeffector_coords=a["endeffector_coords"][:, :, :-1]), "endeffector_coords", "shape"),
    (lambda a: a.update(label=a["label"] + 5), "label", "1..20"),
    (lambda a: a["spindle_info"].__setitem__((5, 3, 10, 0), np.nan), "spindle_info", "only some"),
    (lambda a: a["spindle_info"].__setitem__((6, slice(None), 10), np.nan), "spindle_info", "inside"),
    (lambda a: a["joint_coords"].__setitem__((2, slice(None), 5), np.nan), "joint_coords", "inside"),
])
def test_malformed_files_are_refused_naming_file_key_and_problem(tmp_path, change, key, problem):
    arrays = _arrays()
    change(arrays)
    path = _write(tmp_path / "bad.hdf5", arrays)
    with pytest.raises(pcr_files.PcrFileError, match=rf"bad\.hdf5.*{key}.*{problem}|bad\.hdf5.*{problem}.*{key}"):
        pcr_files.build_pcr_hdf5(0, path=path)


def test_leading_padding_is_allowed_and_a_missing_file_is_a_path_error(tmp_path):
    arrays = _arrays()
    arrays["spindle_info"][7, :, :3] = np.nan  # also trailing-padded (7 % 4 = 3): both ends
    path = _write(tmp_path / "ok.hdf5", arrays)
    bundle = pcr_files.build_pcr_hdf5(0, path=path, test_fraction=0.1)
    assert np.isfinite(_all(bundle.loaders["train"]["all"])["inputs"].numpy()).all()
    with pytest.raises(DataPathError):
        pcr_files.build_pcr_hdf5(0, path=str(tmp_path / "absent.hdf5"))


def test_a_network_trains_on_a_file_through_the_registry(tmp_path):
    from neurofit.pipelines import training

    torch.set_num_threads(1)
    path = _write(tmp_path / "train.hdf5", _arrays(n=40))
    model = {"arch_type": "spatial_temporal", "n_skernels": [4], "n_tkernels": [4], "s_kernelsize": 3,
             "t_kernelsize": 3, "s_stride": 2, "t_stride": 2}
    out = training.train("neurofit.pcr_hdf5", {"path": path, "batch_size": 16}, "neurofit.deepdraw_conv", model,
                         "neurofit.supervised", {"max_epochs": 1, "lr": 1e-3}, 1)
    assert len(out.history) == 1 and 0 <= out.score <= 1

"""The Computation-Through-Dynamics workflow on a real database: task model -> simulated spikes
registered as a Dataset -> data-trained SAE -> comparison, fixed points, DSA, tidy frame, and the
plain DataJoint deletes (of the task model, or of a row upstream of it) that remove everything built
on a task model."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

TASK = dict(n_bits=2, timesteps=40, switch_prob=0.05, n_train=64, n_validation=32, batch_size=32)


@pytest.fixture(scope="module")
def simulated(db):
    import torch

    from neurofit import schemas
    from neurofit.schemas import dynamics

    torch.set_num_threads(1)
    data = schemas.Dataset.add("neurofit.nbff", TASK)
    model = schemas.Model.add("neurofit.noisy_gru", {"latent_size": 8})
    trainer = schemas.Trainer.add("neurofit.supervised", {"max_epochs": 2, "lr": 1e-2, "grad_clip": 1.0})
    tasks = schemas.TrainingSelection.add_grid(data, model, trainer, [0, 1])
    sim = dynamics.SimulationConfig.add(n_heldin=10, n_heldout=4)
    for task in tasks:
        schemas.populate("TrainedModel", task, display_progress=False, suppress_errors=False)
        dynamics.SimulationSelection.add(task, sim)
    schemas.populate("SimulatedData", display_progress=False, suppress_errors=False)
    return tasks, sim


def test_simulation_registers_a_dataset_per_task_model(simulated):
    from neurofit import schemas
    from neurofit.datasets.ctd_files import read_ctd_dataset
    from neurofit.datasets.stored import stored_file
    from neurofit.schemas import dynamics

    tasks, sim = simulated
    keys = [dynamics.SimulatedDataset.dataset_key({**t, **sim}) for t in tasks]
    assert keys[0] != keys[1]  # the dataset key depends on the task model's key
    for task, key in zip(tasks, keys):
        config = schemas.Dataset.config(key)
        # The config names the file inside the store, not where the store is mounted.
        assert config["path"] == "" and config["stored"] and not config["stored"].startswith("/")
        assert (schemas.DerivedDataset & key).fetch1("source_model_hash") == task["model_hash"]
        arrays = read_ctd_dataset(config)  # the stored file, read through the store, CtD's layout
        assert arrays["train_recon_data"].shape == (64, 40, 14)
        assert arrays["train_encod_data"].shape == (64, 40, 10)
        assert arrays["valid_latents"].shape == (32, 40, 8)
        assert config["source"].startswith("ctd-sim:")
    row = (dynamics.SimulatedData & tasks[0]).fetch1()
    assert row["n_neurons"] == 14 and 0 <= row["task_bit_accuracy"] <= 1
    config = schemas.Dataset.config(keys[0])
    with h5py.File(stored_file(config["stored"], config["stored_sha256"])) as f:
        assert {"readout", "orig_mean", "orig_std", "perm_neurons", "train_inds", "valid_extra"} <= set(f)


def test_simulated_dataset_reads_through_the_store_mounted_elsewhere(simulated, tmp_path):
    import shutil

    import datajoint as dj

    from neurofit import schemas
    from neurofit.datasets.stored import StoredFileError, stored_file
    from neurofit.pipelines import training
    from neurofit.schemas import dynamics
    from neurofit.schemas.storage import StoredPathError

    tasks, sim = simulated
    key = dynamics.SimulatedDataset.dataset_key({**tasks[1], **sim})
    config = schemas.Dataset.config(key)
    stores = dj.config["stores"]
    original = Path(stores["neurofit"]["location"])
    moved = tmp_path / "mounted_elsewhere"
    shutil.copytree(original, moved)
    away = original.with_name(original.name + "_away")
    original.rename(away)  # the old mount is gone for the whole check
    dj.config["stores"] = {**stores, "neurofit": {**stores["neurofit"], "location": str(moved)}}
    try:
        assert stored_file(config["stored"], config["stored_sha256"]).is_relative_to(moved)
        bundle = training.build_data(key["dataset_fn"], config, 0)
        assert bundle.info.extra["n_heldin"] == 10
        with pytest.raises(StoredFileError, match="does not match the checksum"):
            stored_file(config["stored"], "0" * 64)
        with pytest.raises(StoredPathError, match="outside the 'neurofit' store"):
            stored_file("../" + config["stored"])
    finally:
        dj.config["stores"] = stores
        away.rename(original)


def test_data_trained_models_compare_and_delete_cascades(simulated):
    from neurofit import schemas
    from neurofit.schemas import dynamics

    tasks, sim = simulated
    derived = dynamics.SimulatedDataset.dataset_key({**tasks[0], **sim})
    sae = schemas.Model.add("neurofit.sae", {"latent_size": 4, "encoder_size": 8})
    trainer = schemas.Trainer.add("neurofit.latent_poisson", {"max_epochs": 2, "lr": 1e-2})
    dt = schemas.TrainingSelection.add_grid(derived, sae, trainer, 0)
    schemas.populate(["TrainedModel", "DynamicsComparison"], display_progress=False, suppress_errors=False)
    schemas.populate("FixedPoints", {"fp_settings": "quick"}, display_progress=False, suppress_errors=False)
    row = (dynamics.DynamicsComparison & dt).fetch1()
    assert row["task_model_hash"] == tasks[0]["model_hash"] and row["sim_hash"] == sim["sim_hash"]
    for name in ("rate_r2", "state_r2", "state_r2_reverse", "cycle_consistency", "co_bps"):
        assert np.isfinite(row[name]) and row[name] <= 1
    assert abs(row["co_bps"] - row["co_bps_ctd"]) < 1e-3
    frame = dynamics.comparison_frame()
    assert len(frame) == 1 and frame["latent_size"].iloc[0] == 4
    fixed = dynamics.FixedPoints & {"fp_settings": "quick"}
    assert len(fixed & tasks[0]) == 1 and len(fixed & dt) == 1
    assert (fixed & tasks[0]).fetch1("n_patterns") is not None

    # The plain DataJoint delete of the task model reaches the Dataset derived from it.
    assert (schemas.TrainedModel & tasks[0]).delete(prompt=False) == 1
    assert not (schemas.Dataset & derived) and not (schemas.DerivedDataset & derived)
    assert not (schemas.TrainedModel & dt) and not (dynamics.DynamicsComparison & dt) and not (fixed & dt)
    assert not (dynamics.SimulatedData & tasks[0]) and not (fixed & tasks[0])
    assert dynamics.SimulatedData & tasks[1]  # the other task model keeps its simulation
    assert schemas.Dataset & dynamics.SimulatedDataset.dataset_key({**tasks[1], **sim})


def test_dsa_score_of_a_data_trained_model(simulated):
    from neurofit import schemas
    from neurofit.schemas import dynamics

    tasks, sim = simulated
    derived = dynamics.SimulatedDataset.dataset_key({**tasks[1], **sim})
    sae = schemas.Model.add("neurofit.sae", {"latent_size": 4, "encoder_size": 8})
    trainer = schemas.Trainer.add("neurofit.latent_poisson", {"max_epochs": 2, "lr": 1e-2})
    dt = schemas.TrainingSelection.add_grid(derived, sae, trainer, 0)
    quick = {"dsa_settings": "quick"}
    schemas.populate(["TrainedModel", "DynamicsComparison", "DSAScore"], [{**k, **quick} for k in dt],
                     display_progress=False, suppress_errors=False)
    row = (dynamics.DSAScore & dt & quick).fetch1()
    # An angle between the two (normalised) DMD operators after the best rotation: in (0, pi] radians,
    # and not 0, since a 2-epoch SAE has not recovered the task model's dynamics.
    assert 0.01 < row["dsa_angular"] <= np.pi and row["n_trials"] == 10
    assert not (dynamics.DSAScore & dt & {"dsa_settings": "ctd"})  # populate computed only what was asked
    frame = dynamics.comparison_frame(dt, dsa_settings="quick")
    assert frame["dsa_angular"].iloc[0] == pytest.approx(row["dsa_angular"])
    assert np.isnan(dynamics.comparison_frame(dt)["dsa_angular"].iloc[0])


def test_deleting_upstream_of_the_task_model_reaches_the_derived_dataset(simulated):
    from neurofit import schemas
    from neurofit.schemas import dynamics

    tasks, sim = simulated
    derived = dynamics.SimulatedDataset.dataset_key({**tasks[1], **sim})
    trained = schemas.TrainedModel & derived
    assert trained and dynamics.DSAScore & trained.proj()
    # One transaction: a delete that fails halfway leaves the derived dataset in place.
    with pytest.raises(RuntimeError, match="stop"):
        with schemas.TrainedModel.connection.transaction:
            (schemas.TrainingSelection & tasks[1]).delete(transaction=False, prompt=False)
            raise RuntimeError("stop")
    assert schemas.Dataset & derived
    assert (schemas.TrainingSelection & tasks[1]).delete(prompt=False) == 1
    assert not (schemas.Dataset & derived) and not (schemas.TrainedModel & derived)
    assert not dynamics.DSAScore() and not dynamics.SimulatedData() and not schemas.DerivedDataset()
    assert schemas.Dataset & {"dataset_fn": tasks[1]["dataset_fn"]}  # the task's own dataset stays


def test_bad_file_refused_and_nothing_inserted(db, tmp_path):
    from neurofit import schemas
    from neurofit.datasets.ctd_files import CtdFileError
    from neurofit.schemas import dynamics

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["train_recon_data"] = np.zeros((4, 10, 6))
    before = len(schemas.Dataset())
    with pytest.raises(CtdFileError, match=r"bad.h5: missing keys \['train_encod_data'"):
        dynamics.register_ctd_file(path)
    assert len(schemas.Dataset()) == before


def test_bad_nwb_file_trains_nothing(db, tmp_path):
    from neurofit import schemas
    from neurofit.datasets.nwb_spikes import NwbFileError, write_nwb_spikes

    spikes = np.random.default_rng(0).poisson(1.0, (6, 8, 4)).astype(float)
    path = write_nwb_spikes(tmp_path / "none_held_out.nwb", spikes, heldout=np.zeros(4, bool))
    data = schemas.Dataset.add("neurofit.nwb_spikes", {"path": str(path)})
    model = schemas.Model.add("neurofit.sae", {"latent_size": 2, "encoder_size": 4})
    trainer = schemas.Trainer.add("neurofit.latent_poisson", {"max_epochs": 1})
    key = schemas.TrainingSelection.add_grid(data, model, trainer, 0)[0]
    with pytest.raises(NwbFileError, match="0 of 4 units are held out"):
        schemas.populate("TrainedModel", key, display_progress=False, suppress_errors=False)
    assert not (schemas.TrainedModel & key)

"""Spike simulation, CtD h5 files and NWB files: layout, held-in/held-out split, refusals."""

import h5py
import numpy as np
import pytest

from neurofit.datasets import ctd_files, nwb_spikes, spike_simulation


def _arrays(n_train=6, n_valid=3, t=12, n_lat=5):
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(n_train + n_valid, t, n_lat))
    sim = spike_simulation.simulate_spikes(latents, n_heldin=6, n_heldout=2, seed=1)
    sim["n_heldin"] = 6
    run = {"train": {"latents": latents[:n_train], "inputs": rng.normal(size=(n_train, t, 2))},
           "validation": {"latents": latents[n_train:], "inputs": rng.normal(size=(n_valid, t, 2))}}
    return spike_simulation.ctd_arrays(run, sim), sim, latents


def test_simulation_embeds_latents_and_is_seeded():
    arrays, sim, latents = _arrays()
    perm = sim["perm_neurons"]
    assert sorted(perm[:5]) == list(range(5))  # a full permutation before any unit repeats
    z = (latents[..., perm] - latents[..., perm].mean()) / (2 * latents[..., perm].std())
    np.testing.assert_allclose(sim["rates"], np.exp(z))
    np.testing.assert_array_equal(sim["readout"].argmax(0), perm)
    again = spike_simulation.simulate_spikes(latents, n_heldin=6, n_heldout=2, seed=1)
    np.testing.assert_array_equal(again["spikes"], sim["spikes"])
    soft = spike_simulation.simulate_spikes(latents * 3, n_heldin=40, n_heldout=10, nonlinearity="softplus",
                                            noise="overdispersed", dispersion=1.0, seed=2)
    over = soft["spikes"].var() / soft["spikes"].mean()
    assert over > 1.3  # over-dispersed: Fano factor above Poisson's 1


def test_h5_round_trip_and_bundle(tmp_path):
    arrays, _, _ = _arrays()
    path = ctd_files.write_ctd_h5(tmp_path / "sim.h5", arrays)
    bundle = ctd_files.build_ctd_spikes(0, path=str(path))
    assert bundle.info.extra["n_heldin"] == 6 and bundle.info.n_neurons == {"all": 8}
    batch = next(iter(bundle.loaders["validation"]["all"]))
    assert batch["encod_data"].shape == (3, 12, 6) and batch["responses"].shape == (3, 12, 8)
    np.testing.assert_array_equal(batch["responses"][..., :6], batch["encod_data"])


def test_ctd_files_with_all_neurons_in_encod_data(tmp_path):
    arrays, _, _ = _arrays()
    for split in ("train", "valid"):  # CtD's own files: encoder data hold every neuron
        arrays[f"{split}_encod_data"] = arrays[f"{split}_recon_data"]
    path = ctd_files.write_ctd_h5(tmp_path / "ctd.h5", arrays)
    assert ctd_files.build_ctd_spikes(0, path=str(path), n_heldout=3).info.extra["n_heldin"] == 5


@pytest.mark.parametrize("change, message", [
    (lambda f: f.pop("valid_latents"), r"missing keys \['valid_latents'\]"),
    (lambda f: f.update(valid_activity=np.zeros((3, 12, 7))), r"valid_activity has shape \(3, 12, 7\)"),
    (lambda f: f.update(readout=np.zeros((4, 8))), r"readout has shape \(4, 8\), expected \(5, 8\)"),
])
def test_bad_h5_refused_with_the_key(tmp_path, change, message):
    arrays, _, _ = _arrays()
    change(arrays)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    with pytest.raises(ctd_files.CtdFileError, match=message):
        ctd_files.build_ctd_spikes(0, path=str(path))
    with pytest.raises(ctd_files.CtdFileError):  # the writer refuses it too, and writes nothing
        ctd_files.write_ctd_h5(tmp_path / "never.h5", arrays)
    assert not (tmp_path / "never.h5").exists()


def test_two_writers_of_one_file_both_finish(tmp_path, monkeypatch):
    """A second write of the same destination begins while the first is still open."""
    arrays, _, _ = _arrays()
    path = tmp_path / "sim.h5"
    opened = h5py.File
    inner = []

    def file_that_lets_another_writer_in(name, mode="r", **kwargs):
        handle = opened(name, mode, **kwargs)
        if mode == "w" and not inner:
            inner.append(name)
            ctd_files.write_ctd_h5(path, arrays)
        return handle

    monkeypatch.setattr(ctd_files.h5py, "File", file_that_lets_another_writer_in)
    ctd_files.write_ctd_h5(path, arrays)
    monkeypatch.undo()
    assert inner
    assert ctd_files.build_ctd_spikes(0, path=str(path)).info.extra["n_heldin"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["sim.h5"]  # no temporary file left


def test_a_failed_write_leaves_no_file(tmp_path):
    arrays, _, _ = _arrays()
    arrays["readout"] = np.empty(arrays["readout"].shape, dtype=object)  # HDF5 cannot store it
    with pytest.raises(TypeError):
        ctd_files.write_ctd_h5(tmp_path / "sim.h5", arrays)
    assert not list(tmp_path.iterdir())


def test_nwb_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(0)
    spikes = rng.poisson(1.0, (10, 15, 6)).astype(float)
    inputs = rng.normal(size=(10, 15, 2))
    heldout = np.array([0, 1, 0, 0, 1, 0], bool)
    path = nwb_spikes.write_nwb_spikes(tmp_path / "s.nwb", spikes, heldout=heldout, inputs=inputs)
    data = nwb_spikes.read_nwb_spikes(path, input_series="inputs")
    order = np.r_[np.flatnonzero(~heldout), np.flatnonzero(heldout)]
    np.testing.assert_array_equal(data["spikes"], spikes[..., order])
    np.testing.assert_allclose(data["inputs"], inputs)
    bundle = nwb_spikes.build_nwb_spikes(0, path=str(path), input_series="inputs")
    assert bundle.info.extra["n_heldin"] == 4 and len(bundle.loaders["train"]["all"].dataset) == 8
    with pytest.raises(nwb_spikes.NwbFileError, match="no acquisition series 'speed'"):
        nwb_spikes.read_nwb_spikes(path, input_series="speed")
    none_out = nwb_spikes.write_nwb_spikes(tmp_path / "n.nwb", spikes, heldout=np.zeros(6, bool))
    with pytest.raises(nwb_spikes.NwbFileError, match="0 of 6 units are held out"):
        nwb_spikes.read_nwb_spikes(none_out)

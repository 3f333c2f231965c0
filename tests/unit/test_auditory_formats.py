"""Converters of NS1, NAT4 and Wehr files: tiny files in each format give identical batches after
conversion; malformed files are refused naming file, field and problem, and nothing is written."""

import h5py
import numpy as np
import pytest
import torch

from neurofit.datasets.auditory import (
    build_spectrogram_loaders,
    build_spectrogram_store,
    spectrogram_trials,
)
from neurofit.datasets.auditory_formats import (
    AuditoryFormatError,
    convert_nat4,
    convert_ns1,
    convert_wehr,
    noise_ratio,
)

RNG = np.random.default_rng(0)


def _write(path, fields, attrs=None):
    with h5py.File(path, "w") as f:
        for name, value in fields.items():
            f[name] = value
        for name, value in (attrs or {}).items():
            f.attrs[name] = value
    return path


def _ns1(n=3, s=6, r=4, t=20):
    signal = RNG.gamma(2.0, 1.0, (n, s, 1, t))
    return {"spectrograms": RNG.normal(size=(s, 34, t)), "responses": RNG.poisson(signal.repeat(r, 2)).astype(float)}


def _batches(bundle, tier, session):
    return [{k: v.clone() for k, v in b.items()} for b in bundle.loaders[tier][session]]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_ns1_round_trip_gives_identical_batches(tmp_path, monkeypatch):
    monkeypatch.delenv("NEUROFIT_DATA_ROOTS", raising=False)
    fields = _ns1()
    convert_ns1(_write(tmp_path / "ns1.h5", fields), tmp_path / "store", validation_stimuli=(1,), test_stimuli=(4,))
    tiers = ["train", "validation", "train", "train", "test", "train"]
    expected = spectrogram_trials(
        [fields["spectrograms"][s].T for s in range(6) for _ in range(4)],
        [fields["responses"][:, s, k].T for s in range(6) for k in range(4)],
        session=["ns1"] * 24, tier=[tiers[s] for s in range(6) for _ in range(4)],
        clip_id=[s for s in range(6) for _ in range(4)], sampling_rate=200.0)
    stored = build_spectrogram_store(0, path=str(tmp_path / "store"))
    direct = build_spectrogram_loaders(expected, 0)
    assert stored.info.sampling_rate == 200.0 and stored.info.input_shape == (34,)
    for tier in ("train", "validation", "test"):
        torch.manual_seed(1)
        a = _batches(stored, tier, "ns1")
        torch.manual_seed(1)
        _same(a, _batches(direct, tier, "ns1"))


def test_ns1_noise_ratio_criterion_drops_noisy_neurons(tmp_path):
    fields = _ns1(n=4, r=10)
    fields["responses"][2] = RNG.poisson(1.0, fields["responses"][2].shape)  # pure noise: SP ~ 0
    store = convert_ns1(_write(tmp_path / "ns1.h5", fields), tmp_path / "store", validation_stimuli=(1,),
                        test_stimuli=(2,), max_noise_ratio=5.0)
    units = build_spectrogram_store(0, path=str(store)).info.units["ns1"]["unit_id"]
    assert 2 not in units and len(units) == 3
    ratio = noise_ratio(fields["responses"].transpose(2, 1, 3, 0).reshape(10, -1, 4))
    assert ratio[2] > 5.0 > ratio[[0, 1, 3]].max()


def test_nat4_round_trip_and_tiers(tmp_path):
    est = RNG.poisson(1.0, (3, 5, 1, 15)).astype(float)
    val = RNG.poisson(1.0, (3, 4, 20, 15)).astype(float)
    path = _write(tmp_path / "a1.h5", {"estimation/stim": RNG.normal(size=(5, 18, 15)), "estimation/resp": est,
                                      "validation/stim": RNG.normal(size=(4, 18, 15)), "validation/resp": val},
                  {"area": "A1"})
    bundle = build_spectrogram_store(0, path=str(convert_nat4(path, tmp_path / "store")))
    assert bundle.info.sampling_rate == 100.0 and bundle.info.sessions == ["nat4_a1"]
    test = _batches(bundle, "test", "nat4_a1")
    ids = torch.cat([b["stimulus_id"] for b in test])
    assert len(ids) == 2 * 20 and set(ids.tolist()) == {7, 8}  # the last 2 repeated sounds, 20 repeats each
    first = next(b for b in test if b["stimulus_id"][0] == 7)
    np.testing.assert_array_equal(first["responses"][0].numpy(), val[:, 2, 0].T.astype(np.float32))


def test_wehr_round_trip_with_variable_clip_counts(tmp_path):
    spectrograms = RNG.normal(size=(6, 8, 30))
    fields = {"spectrograms": spectrograms, "sound_length": np.array([30, 25, 30, 20, 30, 30]),
              "neurons/cell_a/clip": np.array([0, 1, 2]), "neurons/cell_a/potential": RNG.normal(size=(3, 2, 30)),
              "neurons/cell_b/clip": np.array([0, 2, 3, 4, 5]), "neurons/cell_b/potential": RNG.normal(size=(5, 3, 30))}
    bundle = build_spectrogram_store(0, path=str(convert_wehr(_write(tmp_path / "w.h5", fields), tmp_path / "store")),
                                     window=15, normalize=False)
    assert bundle.info.n_neurons == {"cell_a": 1, "cell_b": 1}
    test = _batches(bundle, "test", "cell_b")
    assert all(b["stimulus_id"].tolist() == [5] * 3 for b in test)
    np.testing.assert_allclose(test[0]["responses"][1, :, 0].numpy(), fields["neurons/cell_b/potential"][4, 1], rtol=1e-6)
    np.testing.assert_allclose(test[0]["inputs"][0].numpy(), spectrograms[5].T, rtol=1e-6)


@pytest.mark.parametrize("converter, fields, attrs, field, problem", [
    (convert_ns1, {"spectrograms": np.zeros((6, 33, 20)), "responses": np.zeros((3, 6, 4, 20))}, None,
     "spectrograms", "33 frequency bands"),
    (convert_ns1, {"spectrograms": np.zeros((6, 34, 20))}, None, "responses", "missing"),
    (convert_ns1, {"spectrograms": np.zeros((6, 34, 20)), "responses": np.full((3, 6, 4, 20), np.nan)}, None,
     "responses", "NaN"),
    (convert_nat4, {"estimation/stim": np.zeros((5, 18, 15)), "estimation/resp": np.zeros((3, 5, 2, 15)),
                    "validation/stim": np.zeros((4, 18, 15)), "validation/resp": np.zeros((3, 4, 20, 15))},
     {"area": "PEG"}, "estimation/resp", "heard once"),
    (convert_nat4, {"estimation/stim": np.zeros((5, 18, 15)), "estimation/resp": np.zeros((3, 5, 1, 15)),
                    "validation/stim": np.zeros((4, 18, 15)), "validation/resp": np.zeros((3, 4, 20, 15))},
     {"area": "V1"}, "attrs/area", "'A1' or 'PEG'"),
    (convert_wehr, {"spectrograms": np.zeros((2, 8, 30)), "sound_length": np.array([30, 30]),
                    "neurons/cell/clip": np.array([0, 1]), "neurons/cell/potential": np.zeros((2, 1, 30))}, None,
     "neurons/cell/clip", ">= 3"),
])
def test_malformed_files_are_refused_and_nothing_is_written(tmp_path, converter, fields, attrs, field, problem):
    path = _write(tmp_path / "bad.h5", fields, attrs)
    with pytest.raises(AuditoryFormatError) as error:
        converter(path, tmp_path / "out")
    message = str(error.value)
    assert str(path) in message and repr(field) in message and problem in message, message
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]

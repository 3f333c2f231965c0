"""Trial stores: memmap and Deep Lake round trips, conversion, atomic writes, pickling."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from neurofit.datasets import trial_storage
from neurofit.datasets.trial_storage import (
    MANIFEST,
    DeepLakeTrials,
    MemmapTrials,
    open_trials,
    write_trials,
)
from neurofit.datasets.trials import FIELDS, TrialFormatError, TrialSet, content_fingerprint

# Deep Lake is an optional extra (neurofit[deeplake]); find_spec checks without importing it.
HAS_DEEPLAKE = importlib.util.find_spec("deeplake") is not None
needs_deeplake = pytest.mark.skipif(not HAS_DEEPLAKE, reason="needs the deeplake extra")
BACKENDS = ["memmap", pytest.param("deeplake", marks=needs_deeplake)]
READERS = {"memmap": MemmapTrials, "deeplake": DeepLakeTrials}


def make_trials(seed=0, *, n=7, opto=True, channels=None, video_dtype=np.uint8, n_behavior=2):
    rng = np.random.default_rng(seed)
    sessions = ["s1", "s2", "s1", "s3", "s2", "s1", "s3"][:n]
    n_neurons = {"s1": 6, "s2": 4, "s3": 1}
    lengths = rng.integers(3, 12, n)
    frame = (5, 7) if channels is None else (channels, 5, 7)
    if video_dtype == np.uint8:
        videos = [rng.integers(0, 256, (t, *frame), dtype=np.uint8) for t in lengths]
    else:
        videos = [rng.standard_normal((t, *frame)) for t in lengths]
    trials = {
        "session": sessions,
        "tier": [["train", "validation", "test"][i % 3] for i in range(n)],
        "clip_id": [int(c) for c in rng.integers(0, 4, n)],
        "videos": videos,
        "responses": [rng.poisson(1.5, (t, n_neurons[s])).astype(np.float32) for t, s in zip(lengths, sessions)],
        "behavior": [rng.random((t, n_behavior)) for t in lengths],
        "pupil_center": [rng.standard_normal((t, 2)) for t in lengths],
    }
    if opto:
        trials["optogenetic_signal"] = [(rng.random(t) > 0.5).astype(float) for t in lengths]
    return trials


def trialset(**kw):
    trials = make_trials(**kw)
    neurons = {"s3": {"unit_id": [42], "cell_type": ["X"]}} if "s3" in trials["session"] else None
    return TrialSet.from_arrays(trials, frame_rate=29.97, neurons=neurons)


def assert_same_content(a, b):
    assert a.meta == b.meta
    assert a.meta.fingerprint == b.meta.fingerprint
    for i in range(a.meta.n_trials):
        x, y = a.read(i), b.read(i)
        assert set(x) == set(y)
        for name in x:
            assert x[name].dtype == y[name].dtype, name
            np.testing.assert_array_equal(x[name], y[name])
        n = int(a.meta.length[i])
        for start, stop in [(0, 1), (1, n), (n // 2, n // 2 + 1)]:
            x, y = a.read(i, start, stop), b.read(i, start, stop)
            for name in x:
                np.testing.assert_array_equal(x[name], y[name])


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip(tmp_path, backend):
    ts = trialset()
    path = write_trials(ts, tmp_path / "store", backend=backend)
    assert path == tmp_path / "store"
    store = open_trials(path)
    assert type(store) is READERS[backend]
    assert len(store) == 7
    assert_same_content(store, ts)
    assert content_fingerprint(store) == ts.meta.fingerprint  # recomputed from what is on disk
    assert sorted(os.listdir(tmp_path)) == ["store"]  # no temporary leftovers


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", [
    dict(opto=False), dict(channels=3, video_dtype=np.float64), dict(n_behavior=0), dict(n=1)])
def test_round_trip_variants(tmp_path, backend, variant):
    ts = trialset(**variant)
    store = open_trials(write_trials(ts, tmp_path / "store", backend=backend))
    assert_same_content(store, ts)
    if not variant.get("opto", True):
        assert "optogenetic_signal" not in store.read(0)


@needs_deeplake
def test_conversion_between_backends(tmp_path):
    ts = trialset()
    memmap = open_trials(write_trials(ts, tmp_path / "m"))
    lake = open_trials(write_trials(memmap, tmp_path / "d", backend="deeplake"))  # memmap -> deeplake
    back = open_trials(write_trials(lake, tmp_path / "m2"))  # deeplake -> memmap
    assert_same_content(lake, ts)
    assert_same_content(back, ts)
    assert lake.meta.fingerprint == memmap.meta.fingerprint == back.meta.fingerprint
    assert content_fingerprint(lake) == content_fingerprint(back) == ts.meta.fingerprint


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataframe_input_with_custom_index(tmp_path, backend):
    trials = make_trials()
    frame = pd.DataFrame(trials, index=[f"trial-{c}" for c in "abcdefg"])
    ts = TrialSet.from_dataframe(frame, frame_rate=29.97, neurons={"s3": {"unit_id": [42], "cell_type": ["X"]}})
    assert ts.meta == trialset().meta  # the index labels only name trials in errors
    store = open_trials(write_trials(ts, tmp_path / "store", backend=backend))
    assert_same_content(store, ts)


def test_memmap_layout_on_disk(tmp_path):
    ts = trialset()
    write_trials(ts, tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / MANIFEST).read_text())
    assert manifest["format"] == "neurofit.trials" and manifest["version"] == 1
    assert manifest["backend"] == "memmap"
    assert manifest["meta"] == ts.meta.to_dict()
    s1 = ts.meta.select(session="s1")
    videos = np.load(tmp_path / "store" / manifest["files"][0][0], mmap_mode="r")
    # session s1's trials concatenated along time, in trial order
    expected = np.concatenate([ts.read(i)["videos"] for i in s1])
    np.testing.assert_array_equal(videos, expected)
    assert manifest["files"][0] == [f"session000_{name}.npy" for name in FIELDS]


def test_memmap_reads_are_slices_of_the_mapped_files(tmp_path):
    store = open_trials(write_trials(trialset(), tmp_path / "store"))
    out = store.read(2, 1, 3)
    assert not out["videos"].flags.writeable
    assert out["videos"].shape[0] == 2
    assert isinstance(out["videos"].base, np.ndarray)  # a view, not a copy
    assert np.shares_memory(out["responses"], store._arrays[0][1])


# ---------------------------------------------------------------------------- overwrite / atomic


@pytest.mark.parametrize("backend", BACKENDS)
def test_existing_path_needs_overwrite(tmp_path, backend):
    first, second = trialset(seed=1), trialset(seed=2)
    path = write_trials(first, tmp_path / "store", backend=backend)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_trials(second, path, backend=backend)
    assert open_trials(path).meta.fingerprint == first.meta.fingerprint
    write_trials(second, path, backend=backend, overwrite=True)
    assert open_trials(path).meta.fingerprint == second.meta.fingerprint
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_overwrite_refuses_to_delete_other_things(tmp_path):
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a neurofit trial store"):
        write_trials(trialset(), other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_trials(trialset(), empty, overwrite=True)  # an empty directory may be replaced
    assert isinstance(open_trials(empty), MemmapTrials)


def _fail_after(n_trials):
    original = trial_storage._iter_trials

    def failing(trials):
        for i, arrays in original(trials):
            if i == n_trials:
                raise RuntimeError("simulated crash mid-write")
            yield i, arrays
    return failing


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_write_leaves_nothing(tmp_path, backend, monkeypatch):
    monkeypatch.setattr(trial_storage, "_iter_trials", _fail_after(3))
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_trials(trialset(), tmp_path / "store", backend=backend)
    assert not (tmp_path / "store").exists()
    assert os.listdir(tmp_path) == []  # the temporary sibling is gone too


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_overwrite_keeps_the_old_store(tmp_path, backend, monkeypatch):
    old = trialset(seed=1)
    path = write_trials(old, tmp_path / "store", backend=backend)
    monkeypatch.setattr(trial_storage, "_iter_trials", _fail_after(5))
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_trials(trialset(seed=2), path, backend=backend, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["store"]
    assert_same_content(open_trials(path), old)


def test_source_that_contradicts_its_fingerprint_is_not_written(tmp_path):
    ts = trialset()

    class Tampered:
        meta = ts.meta

        def read(self, index, start=0, stop=None):
            out = {k: np.array(v) for k, v in ts.read(index, start, stop).items()}
            if index == 4:
                out["responses"][0, 0] += 1
            return out

    with pytest.raises(TrialFormatError, match="fingerprint"):
        write_trials(Tampered(), tmp_path / "store")
    assert not (tmp_path / "store").exists()

    class WrongShape(Tampered):
        def read(self, index, start=0, stop=None):
            out = dict(ts.read(index, start, stop))
            out["behavior"] = out["behavior"][:, :1]
            return out

    with pytest.raises(TrialFormatError, match="trial 0 column 'behavior'"):
        write_trials(WrongShape(), tmp_path / "store")
    assert os.listdir(tmp_path) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="backend='zarr'"):
        write_trials(trialset(), tmp_path / "x", backend="zarr")
    with pytest.raises(TypeError, match="TrialSet.from_arrays"):
        write_trials(make_trials(), tmp_path / "x")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------- opening


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_trials"):
        open_trials(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    with pytest.raises(TrialFormatError, match="not a neurofit trial store"):
        open_trials(tmp_path / "junk")
    with pytest.raises(FileNotFoundError, match=MANIFEST):
        MemmapTrials(tmp_path / "junk")


def test_corrupt_memmap_store_is_detected_on_open(tmp_path):
    path = write_trials(trialset(), tmp_path / "store")
    np.save(path / "session001_responses.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(TrialFormatError, match="session001_responses.npy.*corrupt"):
        open_trials(path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["version"] = 99
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TrialFormatError, match="version 99"):
        open_trials(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_bounds(tmp_path, backend):
    store = open_trials(write_trials(trialset(), tmp_path / "store", backend=backend))
    n = int(store.meta.length[0])
    for bad in [(7,), (-8,), (0, 0, n + 1), (0, 2, 2), (0, -1, 2), ("0",)]:
        with pytest.raises(IndexError):
            store.read(*bad)
    np.testing.assert_array_equal(store.read(-1)["videos"], store.read(6)["videos"])


# ------------------------------------------------------------------------------------- pickling


def _read_in_child(reader, index, start, stop):
    return reader.read(index, start, stop), reader.meta.fingerprint


@pytest.mark.parametrize("backend", BACKENDS)
def test_reader_pickles_and_reopens_lazily(tmp_path, backend):
    ts = trialset()
    store = open_trials(write_trials(ts, tmp_path / "store", backend=backend))
    blob = pickle.dumps(store)
    assert len(blob) < 20_000  # meta and a path, never the data
    again = pickle.loads(blob)
    handle = "_arrays" if backend == "memmap" else "_columns"
    assert getattr(again, handle) is None  # nothing opened until the first read
    assert again.meta == store.meta
    assert_same_content(again, ts)
    assert getattr(again, handle) is not None


def test_readers_work_in_spawned_processes(tmp_path):
    """What DataLoader workers do: unpickle the reader in a fresh interpreter and read."""
    ts = trialset()
    readers = [open_trials(write_trials(ts, tmp_path / "m"))]
    if HAS_DEEPLAKE:
        readers.append(open_trials(write_trials(ts, tmp_path / "d", backend="deeplake")))
    expected = ts.read(3, 1, 4)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for reader in readers:
            out, fingerprint = pool.apply(_read_in_child, (reader, 3, 1, 4))
            assert fingerprint == ts.meta.fingerprint
            for name in expected:
                np.testing.assert_array_equal(out[name], expected[name])


def test_memmap_backend_never_imports_deeplake(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from neurofit.datasets.trials import TrialSet\n"
        "from neurofit.datasets.trial_storage import write_trials, open_trials\n"
        "t = {'session': ['a'], 'tier': ['train'], 'clip_id': [0], 'videos': [np.zeros((2, 3, 4))],\n"
        "     'responses': [np.zeros((2, 5))], 'behavior': [np.zeros((2, 1))], 'pupil_center': [np.zeros((2, 2))]}\n"
        f"p = write_trials(TrialSet.from_arrays(t, frame_rate=10.0), {str(tmp_path / 's')!r})\n"
        "open_trials(p).read(0)\n"
        "assert 'deeplake' not in sys.modules, 'deeplake was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

"""Dataset paths: one error for missing, wrong-format and outside-the-roots paths; data roots."""

from __future__ import annotations

import os

import numpy as np
import pytest

from neurofit.datasets.dlgn import build_video_trials
from neurofit.datasets.paths import DATA_ROOTS_ENV, DataPathError
from neurofit.datasets.trial_storage import write_trials
from neurofit.datasets.trials import TrialSet


def trialset(n=6):
    """One session with two trials in each tier: the smallest store the loaders accept."""
    rng = np.random.default_rng(0)
    trials = {
        "session": ["s1"] * n,
        "tier": ["train", "validation", "test"] * (n // 3),
        "clip_id": list(range(n)),
        "videos": [rng.integers(0, 256, (8, 5, 7), dtype=np.uint8) for _ in range(n)],
        "responses": [rng.poisson(1.5, (8, 3)).astype(np.float32) for _ in range(n)],
        "behavior": [rng.random((8, 2)) for _ in range(n)],
        "pupil_center": [rng.standard_normal((8, 2)) for _ in range(n)],
    }
    return TrialSet.from_arrays(trials, frame_rate=30.0)


def _message(path) -> str:
    with pytest.raises(DataPathError) as caught:
        build_video_trials(0, path=str(path))
    return str(caught.value).replace(str(path), "<path>")


def test_missing_and_existing_paths_get_the_same_error(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ROOTS_ENV, raising=False)
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("secret")
    messages = {_message(tmp_path / name) for name in ("missing", "a_folder", "a_file")}
    messages.add(_message("/etc/passwd").replace("/etc/passwd", "<path>"))
    assert len(messages) == 1, messages  # a database writer learns nothing about the worker's disk
    assert "neurofit convert" in messages.pop()


def test_data_roots_refuse_stores_outside_them_even_through_a_symlink(tmp_path, monkeypatch):
    store = write_trials(trialset(), tmp_path / "outside" / "store")
    inside = tmp_path / "lab_data"
    inside.mkdir()
    (inside / "link").symlink_to(store)
    monkeypatch.setenv(DATA_ROOTS_ENV, os.pathsep.join([str(inside), str(tmp_path / "other")]))
    for path in (store, inside / "link", inside / ".." / "outside" / "store"):
        with pytest.raises(DataPathError, match=DATA_ROOTS_ENV):
            build_video_trials(0, path=str(path))
    # The same message as for a path that does not exist inside the roots.
    assert _message(store) == _message(inside / "missing")

    kept = write_trials(trialset(), inside / "store")
    bundle = build_video_trials(0, path=str(kept), subsequence_length=3, burn_in=0)
    assert set(bundle.loaders) == {"train", "validation", "test"}
    monkeypatch.delenv(DATA_ROOTS_ENV)
    assert build_video_trials(0, path=str(store), subsequence_length=3, burn_in=0).info is not None

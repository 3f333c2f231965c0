"""TrialSet / TrialMeta: validation of the dict-of-arrays and DataFrame formats, layout, fingerprint."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from neurofit.datasets.trials import (
    CONDITIONS,
    FIELDS,
    TrialFormatError,
    TrialMeta,
    TrialSet,
    content_fingerprint,
)

SESSIONS = ["m1", "m2", "m1", "m2", "m1", "m1"]
TIERS = ["train", "test", "validation", "train", "test", "train"]
N_NEURONS = {"m1": 5, "m2": 3}


def make_trials(seed=0, *, opto=True, video_dtype=np.uint8, channels=None):
    """Six small random trials of two sessions; trial i is optogenetic when i is odd."""
    rng = np.random.default_rng(seed)
    lengths = [7, 5, 9, 6, 8, 4]
    frame = (4, 6) if channels is None else (channels, 4, 6)
    if video_dtype == np.uint8:
        videos = [rng.integers(0, 256, (t, *frame), dtype=np.uint8) for t in lengths]
    else:
        videos = [rng.standard_normal((t, *frame)).astype(video_dtype) for t in lengths]
    trials = {
        "session": list(SESSIONS),
        "tier": list(TIERS),
        "clip_id": [10, 11, 10, 12, 13, 14],
        "videos": videos,
        "responses": [rng.poisson(2.0, (t, N_NEURONS[s])).astype(np.float64) for t, s in zip(lengths, SESSIONS)],
        "behavior": [rng.random((t, 2)) for t in lengths],
        "pupil_center": [rng.standard_normal((t, 2)) for t in lengths],
    }
    if opto:
        trials["optogenetic_signal"] = [np.full(t, float(i % 2)) for i, t in enumerate(lengths)]
    return trials


def build(trials=None, **kw):
    kw.setdefault("frame_rate", 30.0)
    return TrialSet.from_arrays(make_trials() if trials is None else trials, **kw)


def as_frame(trials, labels=("a0", "b1", "c2", "d3", "e4", "f5")):
    return pd.DataFrame(trials, index=pd.Index(list(labels), name="trial"))


# ----------------------------------------------------------------------------------------- basics


def test_constants():
    assert CONDITIONS == ("control", "optogenetic")
    assert FIELDS == ("videos", "responses", "behavior", "pupil_center", "optogenetic_signal")


def test_round_trip_dict_to_trialset():
    trials = make_trials()
    ts = build(trials)
    assert len(ts) == ts.meta.n_trials == 6
    for i in range(6):
        out = ts.read(i)
        assert set(out) == set(FIELDS)
        np.testing.assert_array_equal(out["videos"], trials["videos"][i][:, None])  # (T,H,W) -> (T,1,H,W)
        assert out["videos"].dtype == np.uint8
        for name in FIELDS[1:]:
            assert out[name].dtype == np.float32
            np.testing.assert_array_equal(out[name], trials[name][i].astype(np.float32))


def test_read_window_and_bounds():
    trials = make_trials()
    ts = build(trials)
    out = ts.read(2, 3, 7)
    assert out["videos"].shape == (4, 1, 4, 6)
    assert out["responses"].shape == (4, 5)
    np.testing.assert_array_equal(out["responses"], trials["responses"][2][3:7].astype(np.float32))
    np.testing.assert_array_equal(ts.read(-1)["behavior"], ts.read(5)["behavior"])
    assert not out["responses"].flags.writeable  # views of the stored arrays, never writable
    for bad in [(6,), (2, 0, 10), (2, 5, 5), (2, -1, 3)]:
        with pytest.raises(IndexError):
            ts.read(*bad)


def test_dtypes_float64_video_becomes_float32_and_channels_kept():
    ts = build(make_trials(video_dtype=np.float64, channels=3))
    assert ts.meta.video_dtype == "float32"
    assert ts.meta.video_shape == (3, 4, 6)
    assert ts.read(0)["videos"].dtype == np.float32
    assert ts.read(0)["videos"].shape == (7, 3, 4, 6)


def test_meta_fields():
    ts = build(neurons={"m2": {"unit_id": [7, 8, 9], "depth": np.array([1.5, 2.0, 3.0])}},
               behavior_names=["running_speed", "pupil_dilation"])
    m = ts.meta
    assert m.sessions == ("m1", "m2")
    np.testing.assert_array_equal(m.session_index, [0, 1, 0, 1, 0, 0])
    assert m.session_index.dtype == np.int64
    assert list(m.tier) == TIERS
    np.testing.assert_array_equal(m.clip_id, [10, 11, 10, 12, 13, 14])
    np.testing.assert_array_equal(m.length, [7, 5, 9, 6, 8, 4])
    np.testing.assert_array_equal(m.condition, [0, 1, 0, 1, 0, 1])
    assert m.n_neurons == {"m1": 5, "m2": 3}
    assert m.video_shape == (1, 4, 6) and m.video_dtype == "uint8"
    assert m.behavior_names == ("running_speed", "pupil_dilation")
    assert m.has_optogenetic and m.frame_rate == 30.0
    assert m.neurons == {"m1": {"unit_id": [0, 1, 2, 3, 4]},
                         "m2": {"unit_id": [7, 8, 9], "depth": [1.5, 2.0, 3.0]}}
    assert len(m.fingerprint) == 64
    with pytest.raises(ValueError):
        m.length[0] = 3  # immutable


def test_defaults_without_optogenetic_signal():
    ts = build(make_trials(opto=False))
    assert not ts.meta.has_optogenetic
    assert "optogenetic_signal" not in ts.read(0)
    np.testing.assert_array_equal(ts.meta.condition, 0)
    assert ts.meta.behavior_names == ("behavior_0", "behavior_1")


def test_condition_threshold_is_mean_above_half():
    trials = make_trials()
    trials["optogenetic_signal"][0] = np.r_[np.ones(4), np.zeros(3)]  # mean 4/7 > 0.5
    trials["optogenetic_signal"][1] = np.r_[np.ones(2), np.zeros(2), 0.5]  # mean 0.5, not > 0.5
    m = build(trials).meta
    assert m.condition[0] == 1 and m.condition[1] == 0


def test_meta_json_and_pickle_round_trip():
    m = build(neurons={"m1": {"area": ["LGN"] * 5}}).meta
    again = TrialMeta.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m and again.fingerprint == m.fingerprint
    assert again.tier.dtype.kind == "U" and again.clip_id.dtype == np.int64
    assert pickle.loads(pickle.dumps(m)) == m
    with pytest.raises(TrialFormatError, match="missing keys"):
        TrialMeta.from_dict({k: v for k, v in m.to_dict().items() if k != "length"})


def test_select():
    m = build().meta
    np.testing.assert_array_equal(m.select(), np.arange(6))
    np.testing.assert_array_equal(m.select(session="m1"), [0, 2, 4, 5])
    np.testing.assert_array_equal(m.select(tier="train"), [0, 3, 5])
    np.testing.assert_array_equal(m.select(session="m1", tier="train"), [0, 5])
    np.testing.assert_array_equal(m.select(tier=["validation", "test"]), [1, 2, 4])
    np.testing.assert_array_equal(m.select(session=["m2"], tier="validation"), np.empty(0))
    assert m.select(session="m2").dtype == np.int64
    with pytest.raises(KeyError, match="known sessions"):
        m.select(session="m9")
    with pytest.raises(KeyError, match="tiers are"):
        m.select(tier="training")


def test_fingerprint_is_content_defined():
    base = build()
    assert build().meta.fingerprint == base.meta.fingerprint  # same content
    assert content_fingerprint(base) == base.meta.fingerprint  # recomputed from read()
    changed = make_trials()
    changed["responses"][3] = changed["responses"][3].copy()
    changed["responses"][3][0, 0] += 1
    assert build(changed).meta.fingerprint != base.meta.fingerprint
    assert build(frame_rate=60.0).meta.fingerprint != base.meta.fingerprint
    # (T, H, W) and (T, 1, H, W) are the same content
    explicit = make_trials()
    explicit["videos"] = [v[:, None] for v in explicit["videos"]]
    assert build(explicit).meta.fingerprint == base.meta.fingerprint


def test_dataframe_with_custom_index_matches_dict_input():
    trials = make_trials()
    ts = TrialSet.from_dataframe(as_frame(trials), frame_rate=30.0)
    assert ts.meta == build(trials).meta
    # from_arrays accepts a DataFrame too
    assert TrialSet.from_arrays(as_frame(trials), frame_rate=30.0).meta == ts.meta
    np.testing.assert_array_equal(ts.read(4)["responses"], trials["responses"][4].astype(np.float32))


def test_whole_float_clip_ids_are_accepted():
    # pandas turns an int column into floats when one entry is a float; whole values still count
    trials = make_trials()
    trials["clip_id"] = [float(c) for c in trials["clip_id"]]
    assert TrialSet.from_dataframe(as_frame(trials), frame_rate=30.0).meta == build().meta


def test_numpy_stacked_columns_are_accepted():
    trials = make_trials()
    trials["session"] = np.array(trials["session"])
    trials["clip_id"] = np.array(trials["clip_id"])
    assert build(trials).meta == build().meta


# ------------------------------------------------------------------------------------ malformed


def _set(column, index, value):
    def mutate(trials):
        trials[column][index] = value(trials) if callable(value) else value
    return mutate


def _bad_neurons(trials):
    trials["responses"][4] = np.zeros((8, 2))  # session m1 has 5 neurons (from trial a0)


def _nan(trials):
    trials["responses"][3] = trials["responses"][3].copy()
    trials["responses"][3][2, 1] = np.nan


def _inf(trials):
    trials["behavior"][1] = trials["behavior"][1].copy()
    trials["behavior"][1][0, 0] = np.inf


MALFORMED = {
    # name: (mutation, label in message, column in message, other words in message)
    "bad tier": (_set("tier", 2, "training"), "c2", "tier", ["'training'", "validation"]),
    "non-integer clip_id": (_set("clip_id", 1, 1.5), "b1", "clip_id", ["integer"]),
    "string clip_id": (_set("clip_id", 1, "7"), "b1", "clip_id", ["integer"]),
    "empty session name": (_set("session", 0, ""), "a0", "session", ["non-empty string"]),
    "responses 1-D": (_set("responses", 3, lambda t: t["responses"][3][:, 0]), "d3", "responses",
                      ["(T, n_neurons)", "reshape"]),
    "videos 2-D": (_set("videos", 0, lambda t: t["videos"][0][:, 0]), "a0", "videos", ["(T, H, W)"]),
    "time length differs": (_set("behavior", 5, lambda t: t["behavior"][5][:3]), "f5", "behavior",
                            ["3 frames", "'videos' has 4", "same number of frames"]),
    "neuron count changes": (_bad_neurons, "e4", "responses",
                             ["2 neurons", "session 'm1' has 5", "trial 'a0'", "same neurons"]),
    "behaviour width changes": (_set("behavior", 3, lambda t: np.zeros((6, 3))), "d3", "behavior",
                                ["3 columns", "same behaviour"]),
    "pupil not 2 columns": (_set("pupil_center", 2, lambda t: np.zeros((9, 3))), "c2", "pupil_center",
                            ["(T, 2)"]),
    "frame shape changes": (_set("videos", 5, lambda t: np.zeros((4, 5, 6), np.uint8)), "f5", "videos",
                            ["(1, 5, 6)", "same frame shape"]),
    "video dtype mixes uint8 and float": (_set("videos", 1, lambda t: np.zeros((5, 4, 6))), "b1", "videos",
                                          ["uint8"]),
    "NaN": (_nan, "d3", "responses", ["NaN", "frame 2"]),
    "inf": (_inf, "b1", "behavior", ["inf", "frame 0"]),
    "non-numeric dtype": (_set("pupil_center", 0, lambda t: np.full((7, 2), "x")), "a0", "pupil_center",
                          ["non-numeric"]),
    "ragged nested list": (_set("responses", 1, [[1.0, 2.0], [1.0]]), "b1", "responses", ["converted"]),
    "missing entry": (_set("behavior", 4, None), "e4", "behavior", ["None"]),
    "optogenetic above 1": (_set("optogenetic_signal", 3, lambda t: np.full(6, 5.0)), "d3",
                            "optogenetic_signal", ["[0, 1]", "5.0"]),
    "optogenetic below 0": (_set("optogenetic_signal", 0, lambda t: np.full(7, -0.1)), "a0",
                            "optogenetic_signal", ["[0, 1]"]),
    "optogenetic 2-D": (_set("optogenetic_signal", 0, lambda t: np.zeros((7, 1))), "a0",
                        "optogenetic_signal", ["(T,)"]),
    "zero-length trial": (lambda t: [t[name].__setitem__(2, t[name][2][:0]) for name in FIELDS], "c2",
                          "videos", ["zero frames"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("source", ["dataframe", "dict"])
def test_malformed_trial_names_trial_column_and_fix(case, source):
    mutate, label, column, words = MALFORMED[case]
    trials = make_trials()
    mutate(trials)
    with pytest.raises(TrialFormatError) as info:
        if source == "dataframe":
            TrialSet.from_dataframe(as_frame(trials), frame_rate=30.0)
        else:
            TrialSet.from_arrays(trials, frame_rate=30.0)
    message = str(info.value)
    expected_label = repr(label) if source == "dataframe" else str(int(label[1]))  # dict: position
    assert f"trial {expected_label} column {column!r}" in message, message
    for word in words:
        if source == "dict" and word.startswith("trial '"):
            word = f"trial {int(word[8])}"  # "trial 'a0'" -> "trial 0"
        assert word in message, message


def test_missing_and_unknown_columns():
    trials = make_trials()
    del trials["pupil_center"]
    with pytest.raises(TrialFormatError, match=r"missing required column\(s\) \['pupil_center'\]"):
        build(trials)
    trials = make_trials()
    trials["running"] = [0] * 6
    with pytest.raises(TrialFormatError, match=r"unknown column\(s\) \['running'\].*drop or rename"):
        build(trials)
    frame = as_frame(make_trials()).drop(columns=["tier"])
    with pytest.raises(TrialFormatError, match="'tier'"):
        TrialSet.from_dataframe(frame, frame_rate=30.0)


def test_empty_and_uneven_input():
    empty = {k: [] for k in make_trials()}
    with pytest.raises(TrialFormatError, match="no trials"):
        build(empty)
    with pytest.raises(TrialFormatError, match="no trials"):
        TrialSet.from_dataframe(pd.DataFrame(columns=list(make_trials())), frame_rate=30.0)
    trials = make_trials()
    trials["clip_id"] = trials["clip_id"][:5]
    with pytest.raises(TrialFormatError, match="'clip_id': 5"):
        build(trials)
    trials = make_trials()
    trials["session"] = "m1"
    with pytest.raises(TrialFormatError, match="column 'session': is a str"):
        build(trials)
    with pytest.raises(TrialFormatError, match="dict of per-trial sequences"):
        TrialSet.from_arrays([1, 2], frame_rate=30.0)


@pytest.mark.parametrize("frame_rate", [0, -30.0, float("nan"), float("inf"), "30", True])
def test_bad_frame_rate(frame_rate):
    with pytest.raises(TrialFormatError, match="frame_rate"):
        build(frame_rate=frame_rate)


@pytest.mark.parametrize("neurons, words", [
    ({"m3": {"unit_id": [1, 2, 3]}}, ["'m3'", "no trials", "known sessions"]),
    ({"m2": {"depth": [1.0, 2.0]}}, ["neurons['m2']['depth']", "(2,)", "3 neurons"]),
    ({"m2": {"unit_id": [1, 1, 2]}}, ["unique"]),
    ({"m2": {"depth": [1.0, np.nan, 2.0]}}, ["NaN"]),
    ({"m2": [1, 2, 3]}, ["neurons['m2'] must be a dict"]),
    ([1, 2], ["neurons must be a dict"]),
])
def test_bad_neuron_metadata(neurons, words):
    with pytest.raises(TrialFormatError) as info:
        build(neurons=neurons)
    for word in words:
        assert word in str(info.value)


def test_bad_behavior_names():
    with pytest.raises(TrialFormatError, match="3 names.*2 columns"):
        build(behavior_names=["a", "b", "c"])
    with pytest.raises(TrialFormatError, match="unique"):
        build(behavior_names=["a", "a"])

"""The typed data contract: DataInfo validation, the previous release's layout, Batch and artefacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofit.datasets.artefacts import decode_artefact, encode_artefact
from neurofit.datasets.info import (
    LEGACY_EXTRA_KEYS,
    MODALITIES,
    PROVIDES,
    Batch,
    DataBundle,
    DataInfo,
    DataInfoError,
)
from neurofit.pipelines.batches import LABEL_KEYS, forward, model_inputs

# TrainedModel.data_info rows written by the previous release (made with its code, unchanged since).
LEGACY = json.loads((Path(__file__).parent / "fixtures" / "legacy_data_info.json").read_text())[
    "data_info"
]


def _roundtrip(info: DataInfo) -> DataInfo:
    return DataInfo.from_dict(json.loads(json.dumps(info.to_dict())))


# ---- the previous release's layout ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_every_legacy_row_loads_and_round_trips(name):
    info = DataInfo.from_dict(LEGACY[name])
    assert info.input_shape == tuple(LEGACY[name]["input_shape"])
    assert info.n_neurons == LEGACY[name]["n_neurons"]
    assert info.provides == ("responses",)  # everything before the typed contract was responses
    assert not set(info.extra) & set(LEGACY_EXTRA_KEYS)  # no typed fact left behind in extra
    assert _roundtrip(info) == info


def test_legacy_video_facts_move_to_typed_fields():
    old = LEGACY["video_trials"]["extra"]
    info = DataInfo.from_dict(LEGACY["video_trials"])
    assert info.modality == "video" and info.input_axes == ("channel", "height", "width")
    assert info.batch_input_axes == ("batch", "channel", "time", "height", "width")
    assert info.burn_in == old["burn_in"] == 4
    assert info.sampling_rate == old["frame_rate"] == 30.0
    assert (
        info.behavior_names == tuple(old["behavior_names"]) and info.n_behavior == old["n_behavior"]
    )
    assert info.has_optogenetic is True and info.conditions == ("control", "optogenetic")
    assert info.units == old["neurons"] and info.units["session_0"]["unit_id"] == [0, 1, 2]
    assert info.mean_response == old["mean_response"]
    assert info.normalization == old["normalization"]
    assert info.fingerprint == old["fingerprint"] and len(info.fingerprint) == 64
    assert info.extra == {}


def test_legacy_ceilings_keep_scalars_typed_and_the_rest_in_extra():
    dlgn = DataInfo.from_dict(LEGACY["synthetic_dlgn"])
    old = LEGACY["synthetic_dlgn"]["extra"]
    assert dlgn.ceiling == {"single_trial_correlation": old["ceiling"]["single_trial_correlation"]}
    assert dlgn.extra["ceiling_by_session"] == old["ceiling"]["by_session"]
    assert dlgn.extra["ground_truth"] == old["ground_truth"]  # an old row keeps what it stored
    images = DataInfo.from_dict(LEGACY["synthetic_responses"])
    assert images.ceiling == LEGACY["synthetic_responses"]["extra"]["ceiling"]
    assert images.modality == "image" and images.input_axes == ("channel", "height", "width")
    assert set(images.extra) == {"ceiling_by_session", "ground_truth"}


def test_legacy_lab_facts_stay_in_extra():
    info = DataInfo.from_dict(LEGACY["image_with_mean_response"])
    assert info.extra == {"lab_note": "kept"}
    assert info.mean_response == {"a": [0.5, 1.5], "b": [2.0]}
    assert DataInfo.from_dict(LEGACY["plain"]).input_axes == ("feature",)


def test_models_rebuild_from_legacy_rows():
    # load_model builds the network from the stored dict: old rows must still build.
    from neurofit.models.encoding import build_gaussian_cnn
    from neurofit.models.video import build_factorized_3d

    cnn = build_gaussian_cnn(
        DataInfo.from_dict(LEGACY["image_with_mean_response"]), 0, hidden_channels=4, layers=1
    )
    torch.testing.assert_close(
        torch.nn.functional.elu(cnn.readout["b"].bias.detach()) + 1, torch.tensor([2.0])
    )
    video = build_factorized_3d(
        DataInfo.from_dict(LEGACY["video_trials"]), 0, hidden_channels=4, layers=1
    )
    assert video.has_optogenetic and video.n_behavior == 2


def test_a_newer_layout_is_refused_with_a_clear_error():
    newer = {**DataInfo(input_shape=(4,), n_neurons={"s": 2}).to_dict(), "spike_sorter": "ks4"}
    with pytest.raises(DataInfoError, match="newer release"):
        DataInfo.from_dict(newer)


# ---- validation -------------------------------------------------------------------------------

GOOD = dict(input_shape=(1, 8, 8), n_neurons={"s": 3})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"input_shape": (1, 0, 8)}, "input_shape must hold integers >= 1"),
        ({"input_axes": ("channel", "height")}, "names 2 axes but input_shape"),
        ({"input_axes": ("channel", "height", "height")}, "repeated names"),
        ({"input_axes": ("channel", "height", "bad axis")}, "not a valid axis name"),
        ({"input_shape": (2, 3, 4, 5)}, "cannot infer names"),
        ({"modality": "movie"}, "use one of"),
        ({"provides": ("spikes",)}, "must be one of"),
        ({"provides": ()}, "at least one"),
        (
            {"provides": ("labels", "mask"), "n_neurons": {"s": 0}, "n_classes": 2},
            "nothing it masks",
        ),
        ({"provides": ("labels",), "n_classes": 4}, "counts neurons"),
        ({"n_neurons": {}}, "at least one session"),
        ({"n_neurons": {"s": 1.5}}, "must be an int >= 0"),
        ({"burn_in": 3}, "no time axis"),
        ({"modality": "video", "burn_in": -1}, "burn_in must be an int >= 0"),
        ({"modality": "video", "sampling_rate": 0.0}, "sampling_rate"),
        ({"modality": "video", "input_axes": ("height", "width", "channel")}, "one frame"),
        ({"input_axes": ("channel", "time", "width")}, "not time-resolved"),
        ({"units": {"s": {"unit_id": [1, 2]}}}, r"one value per neuron \(3\)"),
        ({"units": {"t": {"unit_id": [1, 2, 3]}}}, "n_neurons does not list"),
        ({"mean_response": {"s": [1.0]}}, r"mean_response\['s'\] must list one value per neuron"),
        ({"has_optogenetic": True}, "conditions is empty"),
        ({"has_optogenetic": 1}, "True or False"),
        ({"conditions": ("control", "control")}, "repeated names"),
        ({"n_classes": 3}, "other data n_classes=0"),
        ({"target_shape": (2,)}, "other data ()"),
        ({"ceiling": {"r": "high"}}, "must be a number"),
        ({"extra": {"burn_in": 3}}, r"typed fields now: pass burn_in="),
        ({"extra": {"frame_rate": 30.0}}, "sampling_rate="),
        ({"extra": {"neurons": {}}}, "units="),
    ],
)
def test_invalid_fields_are_named(changes, message):
    with pytest.raises(DataInfoError, match=message):
        DataInfo(**{**GOOD, **changes})


def test_data_info_errors_are_value_errors():
    assert issubclass(DataInfoError, ValueError)  # the CLI prints them as `error: ...`


def test_task_datasets_describe_labels_targets_and_masks():
    characters = DataInfo(
        input_shape=(320, 25),
        n_neurons={"pcr": 0},
        modality="sequence",
        input_axes=("time", "feature"),
        provides=("labels",),
        n_classes=3,
        class_names=("a", "b", "c"),
        sampling_rate=66.7,
    )
    assert characters.time_resolved and characters.axis_size("time") == 320
    assert characters.batch_input_axes == ("batch", "time", "feature")
    flipflop = DataInfo(
        input_shape=(3,),
        n_neurons={"task": 0},
        modality="sequence",
        provides=("targets", "mask"),
        target_shape=(3,),
        target_names=("bit0", "bit1", "bit2"),
        response_unit="",
    )
    assert flipflop.input_axes == ("feature",) and flipflop.batch_input_axes == (
        "batch",
        "time",
        "feature",
    )
    with pytest.raises(DataInfoError, match="the input has no 'time' axis"):
        flipflop.axis_size("time")
    with pytest.raises(DataInfoError, match="class_names has 2 names"):
        DataInfo(
            input_shape=(4,),
            n_neurons={"t": 0},
            provides=("labels",),
            n_classes=3,
            class_names=("a", "b"),
        )
    with pytest.raises(DataInfoError, match="1-D target_shape"):
        DataInfo(
            input_shape=(4,),
            n_neurons={"t": 0},
            provides=("targets",),
            target_shape=(2, 2),
            target_names=("x", "y"),
        )
    sound = DataInfo(
        input_shape=(34,),
        n_neurons={"ns1": 5},
        modality="spectrogram",
        burn_in=2,
        sampling_rate=200.0,
    )
    assert sound.input_axes == ("frequency",) and sound.batch_input_axes == (
        "batch",
        "time",
        "frequency",
    )
    for info in (characters, flipflop, sound):
        assert _roundtrip(info) == info


def test_numpy_values_become_plain_json():
    info = DataInfo(
        input_shape=(np.int64(1), 4, 4),
        n_neurons={"s": np.int64(2)},
        units={"s": {"unit_id": np.array([3, 4]), "depth_um": [np.float32(1.5), 2.0]}},
        mean_response={"s": np.array([0.1, 0.2])},
        extra={"lab": np.arange(2)},
    )
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()
    assert info.units == {"s": {"unit_id": [3, 4], "depth_um": [1.5, 2.0]}} and info.extra == {
        "lab": [0, 1]
    }


def test_vocabularies_are_the_documented_ones():
    assert list(PROVIDES) == ["responses", "labels", "targets", "mask"]
    assert PROVIDES["mask"] == "weights"
    assert {"image", "video", "sequence", "spectrogram"} <= set(MODALITIES)


# ---- Batch and the batch helpers --------------------------------------------------------------


def test_batch_names_every_key_and_label_keys_hold_the_non_inputs():
    assert Batch.__required_keys__ == frozenset({"inputs"})
    documented = set(Batch.__optional_keys__)
    assert {
        "responses",
        "targets",
        "weights",
        "labels",
        "behavior",
        "pupil_center",
        "optogenetic_signal",
    } <= documented
    assert set(PROVIDES.values()) <= LABEL_KEYS
    batch = {
        "inputs": torch.zeros(2, 3),
        "targets": torch.zeros(2, 1),
        "weights": torch.ones(2, 1),
        "labels": torch.zeros(2, dtype=torch.long),
        "behavior": torch.zeros(2, 2),
    }
    _, others = model_inputs(batch, "cpu")
    assert set(others) == {"behavior"}  # targets, masks and labels never reach the model


class _Echo(torch.nn.Module):
    def forward(self, inputs, session):
        return inputs


def test_forward_rows_for_images_and_videos():
    images = {"inputs": torch.arange(6.0).reshape(2, 3), "responses": torch.ones(2, 3)}
    predictions, responses = forward(_Echo(), images, "s", "cpu")
    assert predictions.shape == responses.shape == (2, 3)
    video = {"inputs": torch.arange(24.0).reshape(2, 4, 3), "responses": torch.ones(2, 4, 3)}
    predictions, responses = forward(_Echo(), video, "s", "cpu", burn_in=1)
    assert predictions.shape == responses.shape == (6, 3)
    torch.testing.assert_close(predictions[:3], video["inputs"][0, 1:])
    with pytest.raises(ValueError, match="needs responses with a time axis"):
        forward(_Echo(), images, "s", "cpu", burn_in=1)
    with pytest.raises(ValueError, match="leaves no frame"):
        forward(_Echo(), video, "s", "cpu", burn_in=4)


# ---- artefacts ---------------------------------------------------------------------------------


def test_artefacts_encode_reproducibly_and_round_trip():
    array = np.random.default_rng(0).standard_normal((2, 3, 4))
    encoded = encode_artefact("session_0.filters", array[:, ::2].T)  # a non-contiguous view
    again = encode_artefact("session_0.filters", np.array(array[:, ::2].T))
    assert encoded.sha256 == again.sha256 and encoded.format == "npy"
    assert encoded.description == "float64 (4, 2, 2)"
    np.testing.assert_array_equal(decode_artefact("npy", encoded.content), array[:, ::2].T)
    truth = {"b": [1, 2], "a": {"nan": float("nan"), "t": (1, 2)}}
    a, b = (
        encode_artefact("ground_truth", truth),
        encode_artefact("ground_truth", dict(reversed(truth.items()))),
    )
    assert a.sha256 == b.sha256 and a.format == "json"
    decoded = decode_artefact("json", a.content)
    assert decoded["a"]["t"] == [1, 2] and np.isnan(decoded["a"]["nan"])


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("", np.zeros(1), "artefact name"),
        ("../up", np.zeros(1), "artefact name"),
        ("x" * 65, np.zeros(1), "artefact name"),
        ("objects", np.array([{}], dtype=object), "object array"),
        ("listed", [1, 2], "numpy array or a JSON-able dict"),
    ],
)
def test_bad_artefacts_are_refused(name, value, message):
    with pytest.raises(ValueError, match=message):
        DataBundle(loaders={}, info=DataInfo(**GOOD), artefacts={name: value})


def test_unserialisable_dict_artefact_is_named():
    with pytest.raises(ValueError, match="'truth' is not JSON-serialisable"):
        encode_artefact("truth", {"when": object()})


def test_synthetic_ground_truth_is_an_artefact_that_ignores_the_seed():
    from neurofit.datasets.dlgn import build_synthetic_dlgn
    from neurofit.datasets.synthetic_responses import build_synthetic_responses

    small = dict(
        n_sessions=2,
        n_neurons=4,
        image_size=8,
        n_train_images=4,
        n_validation_images=2,
        n_test_images=2,
        n_repeats=2,
    )
    bundles = [build_synthetic_responses(seed, **small) for seed in (1, 2)]
    assert set(bundles[0].artefacts) == {
        "ground_truth",
        "ceiling_by_session",
        "session_0.filters",
        "session_1.filters",
    }
    assert bundles[0].artefacts["session_1.filters"].shape == (4, 2, 8, 8)
    assert "ground_truth" not in json.dumps(bundles[0].info.to_dict())
    assert bundles[0].info.ceiling.keys() == {"single_trial_correlation", "correlation_to_average"}
    dlgn_small = dict(
        n_sessions=1,
        n_neurons=3,
        frame_size=(6, 8),
        n_train_clips=2,
        n_validation_clips=1,
        n_test_clips=1,
        n_test_repeats=4,
        clip_length=(20, 24),
        subsequence_length=12,
        burn_in=4,
    )
    bundles += [build_synthetic_dlgn(seed, **dlgn_small) for seed in (1, 2)]
    assert set(bundles[2].artefacts) == {"ground_truth", "ceiling_per_neuron"}
    assert bundles[2].info.ceiling["single_trial_correlation"] == pytest.approx(
        np.mean(bundles[2].artefacts["ceiling_per_neuron"]["session_0"])
    )
    assert bundles[2].info.extra == {} and bundles[2].info.burn_in == 4
    for first, second in (bundles[:2], bundles[2:]):
        assert first.info == second.info
        for name, value in first.artefacts.items():
            assert (
                encode_artefact(name, value).sha256
                == encode_artefact(name, second.artefacts[name]).sha256
            )

"""Probing sequence models through the tables: a strided Conv1d + GRU on (n, time, features)
stimuli with time-resolved kinematics, batch-first and not, with and without a second input."""

import numpy as np
import pytest
import torch
from torch import nn

from neurofit.datasets.info import DataBundle, DataInfo
from neurofit.pipelines.registry import register
from neurofit.pipelines.training import TrainResult

pytestmark = pytest.mark.db

N_STIMULI, N_TIME, N_FEATURES = 30, 32, 3


@register("dataset", "test_probe.sequences")
def build_sequences(seed, *, n_time=N_TIME, n_features=N_FEATURES, modality="image"):
    info = DataInfo(input_shape=(n_time, n_features), n_neurons={"s0": 2}, modality=modality)
    return DataBundle(loaders={}, info=info)


class ConvGRU(nn.Module):
    """(batch, time, features) -> Conv1d (kernel 5, stride 2, padding 2) -> GRU -> per-step readout."""

    def __init__(self, n_features, batch_first, behavior):
        super().__init__()
        self.batch_first, self.uses_behavior = batch_first, behavior
        self.conv = nn.Conv1d(n_features, 4, 5, stride=2, padding=2)
        self.gru = nn.GRU(4, 6, batch_first=batch_first)
        self.readout = nn.ModuleDict({"s0": nn.Linear(6, 2)})

    def forward(self, inputs, session, behavior=None):
        h = torch.relu(self.conv(inputs.transpose(1, 2))).transpose(1, 2)  # (batch, time / 2, 4)
        if self.uses_behavior:
            h = h * (1 + behavior[:, ::2, None])
        y, _ = self.gru(h if self.batch_first else h.transpose(0, 1))
        return self.readout[session](y if self.batch_first else y.transpose(0, 1))


@register("model", "test_probe.conv_gru")
def build_conv_gru(data_info, seed, *, batch_first=True, behavior=False):
    torch.manual_seed(seed)
    return ConvGRU(data_info.input_shape[1], batch_first, behavior)


@register("trainer", "test_probe.untrained")
def train_nothing(model, data, seed, context, *, epochs=0):
    return TrainResult(score=0.0, history=[], model=model)


def trajectories(n=N_STIMULI, n_time=N_TIME, seed=0):
    """Smooth 2-D paths: position and velocity per step; the stimulus is velocity plus speed."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n_time)
    phase, freq = rng.uniform(0, 2 * np.pi, (n, 1)), rng.uniform(0.5, 2, (n, 1))
    position = np.stack([np.cos(2 * np.pi * freq * t + phase), np.sin(2 * np.pi * freq * t + phase)], -1)
    velocity = np.gradient(position, axis=1)
    stimuli = np.concatenate([velocity, np.linalg.norm(velocity, axis=-1, keepdims=True)], -1) * 10
    return stimuli.astype(np.float32), {"position": position, "velocity": velocity}


@pytest.fixture(scope="module")
def probed(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("test_probe.sequences", {})
    trainer = schemas.Trainer.add("test_probe.untrained", {})
    models = {
        "batch_first": schemas.Model.add("test_probe.conv_gru", {}),
        "time_first": schemas.Model.add("test_probe.conv_gru", {"batch_first": False}),
        "behavior": schemas.Model.add("test_probe.conv_gru", {"behavior": True}),
    }
    trained = {name: schemas.TrainingSelection.add_grid(dataset, model, trainer, [1])[0] for name, model in models.items()}
    schemas.populate("TrainedModel", list(trained.values()), display_progress=False, suppress_errors=False)
    stimuli, features = trajectories()
    behavior = np.random.default_rng(1).uniform(0, 1, (N_STIMULI, N_TIME))
    schemas.StimulusSet.add("test_paths", stimuli, features, input_axes=("time", "feature"), sampling_rate=100.0)
    schemas.StimulusSet.add("test_paths_behavior", stimuli, features, input_axes=("time", "feature"),
                            inputs={"behavior": behavior})
    schemas.ProbeSelection.add([trained["batch_first"], trained["time_first"]], "test_paths")
    schemas.ProbeSelection.add(trained["behavior"], "test_paths_behavior")
    # Undeclared stimuli take the axes the training data declare (a spectrogram: time, frequency).
    spectrograms = schemas.Dataset.add("test_probe.sequences", {"modality": "spectrogram"})
    trained["spectrogram"] = schemas.TrainingSelection.add_grid(spectrograms, models["batch_first"], trainer, [1])[0]
    schemas.populate("TrainedModel", trained["spectrogram"], display_progress=False, suppress_errors=False)
    schemas.StimulusSet.add("test_paths_undeclared", stimuli)
    schemas.ProbeSelection.add(trained["spectrogram"], "test_paths_undeclared")
    schemas.populate(["Activations", "Tuning"], display_progress=False, suppress_errors=False)
    return {"trained": trained, "stimuli": stimuli, "features": features, "behavior": behavior}


SETS = {"behavior": "test_paths_behavior", "spectrogram": "test_paths_undeclared"}


def key_of(probed, name):
    return {**probed["trained"][name], "stimulus_set": SETS.get(name, "test_paths")}


@pytest.mark.parametrize("name", ["batch_first", "time_first", "behavior", "spectrogram"])
def test_layer_rows_record_axes_n_time_and_time_centres(db, probed, name):
    from neurofit import schemas

    key = key_of(probed, name)
    expected_input = "time,frequency" if name == "spectrogram" else "time,feature"
    assert (schemas.Activations & key).fetch1("input_axes") == expected_input
    rows = {row["layer"]: row for row in (schemas.Activations.Layer & key).to_dicts()}
    assert set(rows) == {"conv", "gru", "readout.s0", "output"}
    centres = 2.0 * np.arange(N_TIME // 2)  # kernel 5, stride 2, padding 2: step j is centred on 2j
    expected = {"conv": ("channel,time", [4, 16]), "gru": ("time,unit", [16, 6]),
                "readout.s0": ("time,unit", [16, 2]), "output": ("time,unit", [16, 2])}
    for layer, (axes, shape) in expected.items():
        row = rows[layer]
        assert (row["axes"], list(row["unit_shape"])) == (axes, shape), layer
        assert row["n_time"] == 16, layer  # the GRU's time steps, not its hidden size
        np.testing.assert_allclose(row["time_centres"], centres, err_msg=layer)


@pytest.mark.parametrize("name", ["time_first", "behavior"])
def test_stored_activations_are_each_stimulus_own_batch_first_outputs(db, probed, name):
    from neurofit import schemas

    key = key_of(probed, name)
    model = schemas.load_model(probed["trained"][name], device="cpu")
    x = torch.as_tensor(probed["stimuli"])
    extra = {"behavior": torch.as_tensor(probed["behavior"], dtype=torch.float32)} if name == "behavior" else {}
    with torch.no_grad():
        direct = model(x, "s0", **extra)
        h = torch.relu(model.conv(x.transpose(1, 2))).transpose(1, 2)
        if name == "behavior":
            h = h * (1 + extra["behavior"][:, ::2, None])
        gru = model.gru(h if model.batch_first else h.transpose(0, 1))[0]
        gru = gru if model.batch_first else gru.transpose(0, 1)
    stored = {row["layer"]: row["activations"].load() for row in (schemas.Activations.Layer & key).to_dicts()}
    np.testing.assert_allclose(stored["output"], direct.reshape(N_STIMULI, -1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored["gru"], gru.reshape(N_STIMULI, -1).numpy(), rtol=1e-5, atol=1e-6)


def test_tuning_reads_the_features_at_each_layers_time_centres(db, probed):
    from neurofit import schemas
    from neurofit.pipelines.analysis import tuning

    key = key_of(probed, "batch_first")
    rows = {row["layer"]: row for row in (schemas.Tuning & key).to_dicts()}
    assert set(rows) == {"conv", "gru", "readout.s0", "output"}
    for layer, n_units in {"conv": 4, "gru": 6, "output": 2}.items():
        assert rows[layer]["r2_test"].shape == (n_units, len(rows[layer]["model_names"]))
        assert rows[layer]["direction_feature"] == "velocity"
    # The GRU's units (6) each fitted at input samples 0, 2, 4, ...: the same fit done by hand.
    activations = (schemas.Activations.Layer & key & {"layer": "gru"}).fetch1("activations").load()
    by_hand = tuning.fit_tuning(activations.astype(np.float64).reshape(N_STIMULI, 16, 6),
                                {k: v[:, ::2] for k, v in probed["features"].items()})
    np.testing.assert_allclose(rows["gru"]["r2_test"], by_hand.r2_test, atol=1e-10)
    assert rows["gru"]["model_names"] == list(by_hand.model_names)


def test_stimulus_sets_check_time_axes_and_inputs(db, probed):
    from neurofit import schemas

    stimuli, features = trajectories(n=4)
    with pytest.raises(ValueError, match="32 time samples"):
        schemas.StimulusSet.add("test_bad_time", stimuli, {"velocity": features["velocity"][:, :16]},
                                input_axes=("time", "feature"))
    with pytest.raises(ValueError, match="names 3 axes"):
        schemas.StimulusSet.add("test_bad_axes", stimuli, input_axes=("channel", "space", "time"))
    with pytest.raises(ValueError, match="both a feature and a model input"):
        schemas.StimulusSet.add("test_bad_inputs", stimuli, features, inputs={"velocity": features["velocity"]})
    assert not schemas.StimulusSet & "stimulus_set LIKE 'test_bad%%'"
    key = {"stimulus_set": "test_paths_behavior"}
    assert set(schemas.StimulusSet.features(key)) == {"position", "velocity"}
    assert set(schemas.StimulusSet.inputs(key)) == {"behavior"}
    assert (schemas.StimulusSet & {"stimulus_set": "test_paths"}).fetch1("sampling_rate") == 100.0
    with pytest.raises(ValueError, match="exists with input_axes"):
        schemas.StimulusSet.add("test_paths", probed["stimuli"], probed["features"], input_axes=("time", "channel"))
    with pytest.raises(ValueError, match="different stimuli or model inputs"):
        schemas.StimulusSet.add("test_paths_behavior", probed["stimuli"], probed["features"],
                                inputs={"behavior": probed["behavior"] * 2})

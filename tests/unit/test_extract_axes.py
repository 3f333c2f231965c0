"""Axes and time centres of probed layers (neurofit.pipelines.extract), without a database.

Measured time centres are checked against the analytic composition of each layer's kernel,
stride, padding and dilation, computed here independently: output step j of a layer sits at
``s * j - p + d * (k - 1) / 2`` of its input, composed through the stack.
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neurofit.pipelines import extract

torch.set_num_threads(1)


def compose(stack, n_time):
    """Analytic time centres after each (kernel, stride, padding, dilation) stage, in input samples."""
    centres, out = np.arange(n_time, dtype=float), []
    for k, s, p, d in stack:
        n_out = (len(centres) + 2 * p - d * (k - 1) - 1) // s + 1
        position = s * np.arange(n_out) - p + d * (k - 1) / 2  # in the stage's input steps
        # Linear in the index: extend the previous centres past their ends the same way.
        step = centres[1] - centres[0] if len(centres) > 1 else 1.0
        out.append(centres[0] + step * position)
        centres = out[-1]
    return out


def seeded(module, seed=0):
    torch.manual_seed(seed)
    for parameter in module.parameters():
        nn.init.normal_(parameter, std=0.5)
    return module.eval()


class Conv1dStack(nn.Module):
    """(batch, channels, time): strided, padded, dilated convolutions and a strided max pool."""

    STACK = ((5, 2, 2, 1), (3, 1, 2, 2), (2, 2, 0, 1), (4, 3, 0, 1))

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv1d(3, 6, 5, stride=2, padding=2)
        self.conv1 = nn.Conv1d(6, 6, 3, padding=2, dilation=2)
        self.pool = nn.MaxPool1d(2, stride=2)
        self.conv2 = nn.Conv1d(6, 4, 4, stride=3)

    def forward(self, x):
        return self.conv2(self.pool(torch.relu(self.conv1(torch.relu(self.conv0(x))))))


def test_conv1d_strided_padded_dilated_and_pooling_centres():
    model = seeded(Conv1dStack())
    stimuli = np.random.default_rng(0).normal(size=(4, 3, 60)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["conv0", "conv1", "pool", "conv2"], input_axes=("channel", "time"))
    expected = compose(Conv1dStack.STACK, 60)
    for name, centres in zip(["conv0", "conv1", "pool", "conv2"], expected):
        assert info[name].axes == ("channel", "time")
        assert info[name].n_time == len(centres)
        np.testing.assert_allclose(info[name].time_centres, centres, err_msg=name)
    # Strides compose: the last layer steps 2 * 2 * 3 = 12 input samples.
    assert np.allclose(np.diff(info["conv2"].time_centres), 12)


def test_undeclared_two_dimensional_stimuli_find_their_time_axis():
    model = seeded(Conv1dStack())
    stimuli = np.random.default_rng(1).normal(size=(4, 3, 60)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["conv2"])
    assert info["conv2"].axes == ("channel", "time")
    np.testing.assert_allclose(info["conv2"].time_centres, compose(Conv1dStack.STACK, 60)[-1])


class SpatialTemporal(nn.Module):
    """DeepDraw-style (batch, 2, muscles, time): k x 1 spatial, then 1 x k temporal strided,
    each block conv -> layer norm over (channel, space, time) -> ReLU, no bias."""

    def __init__(self, muscles=7, n_time=32):
        super().__init__()
        self.input_axes = ("channel", "space", "time")
        self.block0 = nn.Sequential(nn.Conv2d(2, 4, (3, 1), padding=(1, 0), bias=False),
                                    nn.LayerNorm([4, muscles, n_time]), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(4, 5, (1, 5), stride=(1, 2), padding=(0, 2), bias=False),
                                    nn.LayerNorm([5, muscles, n_time // 2]), nn.ReLU())
        self.head = nn.Linear(5 * muscles * (n_time // 2), 3)

    def forward(self, x):
        return self.head(self.block1(self.block0(x)).flatten(1))


def test_deepdraw_conv2d_declared_axes_and_layer_norm_over_time():
    model = seeded(SpatialTemporal())
    stimuli = np.random.default_rng(2).normal(size=(3, 2, 7, 32)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["block0", "block1", "head", "output"])
    assert info["block0"].axes == info["block1"].axes == ("channel", "space", "time")
    assert info["block1"].shape == (5, 7, 16) and info["block1"].n_time == 16
    np.testing.assert_allclose(info["block0"].time_centres, np.arange(32))
    np.testing.assert_allclose(info["block1"].time_centres, compose([(1, 1, 0, 1), (5, 2, 2, 1)], 32)[-1])
    assert info["head"].axes == ("unit",) and info["head"].time_centres is None
    assert info["output"].n_time == 0


def test_the_stimulus_declaration_must_agree_with_the_model():
    model = seeded(SpatialTemporal())
    stimuli = np.zeros((2, 2, 7, 32), np.float32)
    with pytest.raises(extract.AxesError, match="declares its input"):
        extract.describe_layers(model, stimuli, ["block0"], input_axes=("channel", "height", "width"))
    with pytest.raises(extract.AxesError, match="names 2 axes"):
        extract.check_input_axes(("channel", "time"), (2, 7, 32))
    with pytest.raises(extract.AxesError, match="distinct"):
        extract.check_input_axes(("time", "time", "space"), (2, 7, 32))


class VideoCore(nn.Module):
    """(batch, channels, time, height, width): a temporally strided Conv3d, then a causal one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 3, (3, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))
        self.causal = nn.Conv3d(3, 3, (4, 1, 1), dilation=(2, 1, 1))

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.causal(F.pad(h, (0, 0, 0, 0, 6, 0)))  # 6 = dilation * (kernel - 1) frames before


def test_conv3d_video_core_axes_and_causal_centres():
    model = seeded(VideoCore())
    stimuli = np.random.default_rng(3).normal(size=(2, 1, 20, 6, 6)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["conv", "causal"])
    assert info["conv"].axes == info["causal"].axes == ("channel", "time", "height", "width")
    conv = compose([(3, 2, 1, 1)], 20)[0]
    np.testing.assert_allclose(info["conv"].time_centres, conv)
    # F.pad only pads the start: output step j covers conv steps j-6 .. j, centred at j - 3.
    np.testing.assert_allclose(info["causal"].time_centres, conv[0] + 2 * (np.arange(10) - 3))


class ConvThenRecurrent(nn.Module):
    """(batch, time, features) -> strided Conv1d -> GRU or LSTM -> per-step readout."""

    def __init__(self, cell="gru", batch_first=True, bidirectional=False):
        super().__init__()
        self.batch_first = batch_first
        self.conv = nn.Conv1d(3, 4, 5, stride=2, padding=2)
        kind = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = kind(4, 6, batch_first=batch_first, bidirectional=bidirectional)
        self.readout = nn.Linear(6 * (2 if bidirectional else 1), 2)

    def forward(self, x):
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (batch, time', channels)
        if not self.batch_first:
            h = h.transpose(0, 1)
        y, _ = self.rnn(h)
        if not self.batch_first:
            y = y.transpose(0, 1)
        return self.readout(y)


@pytest.mark.parametrize("cell,batch_first,bidirectional", [
    ("gru", True, False), ("gru", False, False), ("lstm", True, False), ("lstm", False, True),
])
def test_recurrent_outputs_are_time_by_unit_whatever_the_batch_axis(cell, batch_first, bidirectional):
    model = seeded(ConvThenRecurrent(cell, batch_first, bidirectional))
    stimuli = np.random.default_rng(4).normal(size=(5, 24, 3)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["conv", "rnn", "readout"], input_axes=("time", "feature"))
    hidden = 12 if bidirectional else 6
    assert info["rnn"].axes == ("time", "unit") and info["rnn"].shape == (12, hidden)
    assert info["rnn"].n_time == 12  # not the hidden size
    conv = compose([(5, 2, 2, 1)], 24)[0]
    for name in ("conv", "rnn", "readout"):
        np.testing.assert_allclose(info[name].time_centres, conv, err_msg=name)
    # Stored activations are batch-first: stimulus i's row is its own output, time-major.
    activations = extract.extract_activations(model, stimuli, ["rnn"], batch_size=2)["rnn"]
    with torch.no_grad():
        h = torch.relu(model.conv(torch.as_tensor(stimuli).transpose(1, 2))).transpose(1, 2)
        direct, _ = model.rnn(h if batch_first else h.transpose(0, 1))
        direct = direct if batch_first else direct.transpose(0, 1)
    np.testing.assert_allclose(activations, direct.reshape(5, -1).numpy(), rtol=1e-5, atol=1e-6)


def test_a_plain_batch_first_gru_on_raw_input_has_input_aligned_centres():
    model = seeded(nn.GRU(3, 4, batch_first=True))
    info = extract.describe_layers(model, np.zeros((2, 9, 3), np.float32), ["output"], input_axes=("time", "feature"))
    assert info["output"].axes == ("time", "unit")
    np.testing.assert_allclose(info["output"].time_centres, np.arange(9))


class TwoInputs(nn.Module):
    """model(inputs, session, *, behavior): a sequence with a per-step behaviour signal."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3, padding=1)
        self.gain = nn.Linear(1, 3)
        self.readout = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 4)})

    def forward(self, inputs, session, *, behavior):
        h = self.conv(inputs) * torch.exp(self.gain(behavior[..., None])).transpose(1, 2)
        return self.readout[session](h.transpose(1, 2))


def test_models_with_several_inputs_get_each_stimulus_its_own_inputs():
    model = seeded(TwoInputs())
    rng = np.random.default_rng(5)
    stimuli = rng.normal(size=(7, 2, 10)).astype(np.float32)
    behavior = rng.normal(size=(7, 10)).astype(np.float32)
    inputs = {"inputs": stimuli, "behavior": behavior}
    acts = extract.extract_activations(model, inputs, ["conv", "output"], forward_kwargs={"session": "b"}, batch_size=3)
    with torch.no_grad():
        direct = model(torch.as_tensor(stimuli), "b", behavior=torch.as_tensor(behavior))
    np.testing.assert_allclose(acts["output"], direct.reshape(7, -1).numpy(), rtol=1e-5, atol=1e-6)
    info = extract.describe_layers(model, inputs, ["conv", "output"], forward_kwargs={"session": "b"},
                                   input_axes=("channel", "time"))
    assert info["output"].axes == ("time", "unit") and info["output"].shape == (10, 4)
    np.testing.assert_allclose(info["output"].time_centres, np.arange(10))
    with pytest.raises(ValueError, match="behavior"):
        extract.extract_activations(model, {"inputs": stimuli, "behavior": behavior[:3]}, ["conv"])


class TimeMajor(nn.Module):
    """A custom layer with a (time, batch, unit) output, declared by the model."""

    def __init__(self, declare_centres=False):
        super().__init__()
        self.layer_axes = {"mix": ("time", "batch", "unit")}
        self.mix = Mix()
        if declare_centres:
            self.time_centres = lambda layer, n_time: np.arange(n_time) * 10.0 if layer == "mix" else None

    def forward(self, x):
        return self.mix(x).sum(0)


class Mix(nn.Module):
    def forward(self, x):  # (batch, time, features) -> (time, batch, features)
        return x.transpose(0, 1) * 2


@pytest.mark.parametrize("declare_centres", [False, True])
def test_declarations_win(declare_centres):
    model = TimeMajor(declare_centres)
    stimuli = np.random.default_rng(6).normal(size=(3, 8, 2)).astype(np.float32)
    info = extract.describe_layers(model, stimuli, ["mix"], input_axes=("time", "feature"))
    assert info["mix"].axes == ("time", "unit") and info["mix"].shape == (8, 2)
    expected = np.arange(8) * 10.0 if declare_centres else np.arange(8)
    np.testing.assert_allclose(info["mix"].time_centres, expected)
    activations = extract.extract_activations(model, stimuli, ["mix"])["mix"]
    np.testing.assert_allclose(activations, (stimuli * 2).reshape(3, -1))


def test_bad_declarations_are_refused():
    model = TimeMajor()
    model.layer_axes = {"mix": ("time", "batch", "pixels")}
    with pytest.raises(extract.AxesError, match="distinct and from"):
        extract.describe_layers(model, np.zeros((2, 4, 2), np.float32), ["mix"])
    model.layer_axes = {"mix": ("time", "batch", "unit")}
    model.time_centres = {"mix": [0.0, 1.0]}
    with pytest.raises(extract.AxesError, match="4 time steps"):
        extract.describe_layers(model, np.zeros((2, 4, 2), np.float32), ["mix"], input_axes=("time", "feature"))


def test_images_have_no_time():
    model = seeded(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2)))
    info = extract.describe_layers(model, np.zeros((2, 1, 8, 8), np.float32), ["0", "3", "output"])
    assert info["0"].axes == ("channel", "height", "width") and info["0"].time_centres is None
    assert info["3"].axes == info["output"].axes == ("unit",)
    assert all(layer.n_time == 0 for layer in info.values())


def test_the_vocabulary_covers_the_data_contracts_input_axes():
    from neurofit.datasets import info

    assert set(info.AXES) <= set(extract.AXES)
    assert extract.AXIS_NAMES == tuple(extract.AXES)

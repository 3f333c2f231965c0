"""DeepDraw's networks: published parameter counts, SAME padding, families, probing facts."""

import math

import numpy as np
import pytest
import torch

from neurofit.datasets.info import DataInfo
from neurofit.models import deepdraw
from neurofit.pipelines import extract


def _info(n_time=64, channels=2, **kw):
    base = dict(input_shape=(n_time, 25, channels), n_neurons={"all": 0}, provides=("labels",), modality="sequence",
                input_axes=("time", "space", "channel"), n_classes=20)
    return DataInfo(**{**base, **kw})


@pytest.mark.parametrize("config,published", deepdraw.PUBLISHED)
def test_parameter_counts_match_deepdraws_table(config, published):
    # The table counts conv kernels only, with one input channel: build such a network and count.
    model = deepdraw.build_deepdraw_conv(_info(320, channels=1), 0, **config)
    conv = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d) for p in m.parameters())
    assert conv == published == deepdraw.published_parameter_count(config)


@pytest.mark.parametrize("arch", deepdraw.ARCHITECTURES)
def test_families_use_same_padding_no_bias_and_layer_norm(arch):
    model = deepdraw.build_deepdraw_conv(_info(), 0, **deepdraw.BEST_CONFIGS[arch])
    x = torch.randn(3, 64, 25, 2)
    assert model(x).shape == (3, 20)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert len(convs) == (4 if arch == "spatiotemporal" else 8)
    assert all(isinstance(getattr(model, n)[1], torch.nn.GroupNorm) and getattr(model, n)[1].num_groups == 1
               for n in model.analysis_layers)
    layers = extract.extract_activations(model.eval(), x.numpy())
    last = model.analysis_layers[-1]
    n_time = math.ceil(64 / 2 ** 4)
    assert layers[last].shape[1] % n_time == 0  # SAME: ceil(64 / 2) per strided layer


def test_strided_layers_get_time_centres_on_the_time_axis():
    model = deepdraw.build_deepdraw_conv(_info(), 0).eval()
    x = np.random.default_rng(0).normal(size=(4, 64, 25, 2)).astype(np.float32)
    described = extract.describe_layers(model, x, ["spatial0", "temporal1"])
    assert described["spatial0"].axes == ("channel", "space", "time") and described["spatial0"].n_time == 64
    centres = np.asarray(described["temporal1"].time_centres)
    assert described["temporal1"].n_time == 16
    np.testing.assert_allclose(np.diff(centres), 4.0)  # two stride-2 layers: one step per 4 samples


def test_recurrent_family_and_trajectory_head():
    model = deepdraw.build_deepdraw_recurrent(_info(), 0, n_recunits=16)
    assert model(torch.randn(2, 64, 25, 2)).shape == (2, 20)
    assert model.analysis_layers == ["spatial0", "spatial1", "recurrent"]
    regression = _info(provides=("targets",), n_classes=0, target_shape=(3,))
    head = deepdraw.build_deepdraw_conv(regression, 0)
    assert head(torch.randn(2, 64, 25, 2)).shape == (2, 64, 3)
    with pytest.raises(ValueError, match="arch_type"):
        deepdraw.build_deepdraw_conv(_info(), 0, arch_type="dense")

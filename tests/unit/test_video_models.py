"""Video encoding models: causal cores, per-session readouts, shifter and gain modulator (fast, no database)."""

from __future__ import annotations

import inspect

import pytest
import torch

from neurofit.datasets.info import DataInfo
from neurofit.models.video import VideoEncodingModel, build_conv_gru, build_factorized_3d
from neurofit.models.video_cores import ConvGRUCore, Factorized3dCore, laplace_smoothness

C, H, W, T, K = 1, 16, 24, 12, 2
N = {"a": 5, "b": 7}
SMALL = {
    build_factorized_3d: dict(
        hidden_channels=4, layers=2, first_spatial_kernel=5, spatial_kernel=3, first_temporal_kernel=4,
        temporal_kernel=3,
    ),
    build_conv_gru: dict(hidden_channels=4, feature_layers=1, first_kernel=5, kernel=3, gru_kernel=3),
}
BUILDERS = list(SMALL)
IDS = ["factorized_3d", "conv_gru"]
MODES = ("gain", "channels", "none")


def _info(*, has_optogenetic=True, n_behavior=K, mean_response=None, modality="video") -> DataInfo:
    return DataInfo(
        input_shape=(C, H, W), n_neurons=dict(N), modality=modality,
        behavior_names=tuple(f"behavior_{i}" for i in range(n_behavior)),
        has_optogenetic=has_optogenetic, conditions=("control", "optogenetic"),
        mean_response=mean_response or {},
    )


def _build(builder, info=None, seed=0, **kwargs):
    return builder(info if info is not None else _info(), seed, **{**SMALL[builder], **kwargs})


def _batch(b=3, t=T, seed=1, opto=True):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "inputs": torch.randn(b, C, t, H, W, generator=g),
        "behavior": torch.randn(b, t, K, generator=g),
        "pupil_center": 0.5 * torch.randn(b, t, 2, generator=g),
    }
    if opto:
        batch["optogenetic_signal"] = (torch.rand(b, t, generator=g) > 0.5).float()
    return batch


def _run(model, batch, session="a"):
    kwargs = {k: v for k, v in batch.items() if k != "inputs"}
    return model(batch["inputs"], session, **kwargs)


# ---- shapes, positivity, length ----------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shifter,opto", [(True, True), (False, False), (True, False)])
def test_output_shape_and_positivity(builder, mode, shifter, opto):
    model = _build(builder, _info(has_optogenetic=opto), behavior_mode=mode, shifter=shifter)
    assert isinstance(model, VideoEncodingModel)
    batch = _batch(opto=opto)
    batch["inputs"] = 10 * batch["inputs"]  # large drive: positivity must hold beyond the linear regime
    for train in (True, False):
        model.train(train)
        for session, n in N.items():
            y = _run(model, batch, session)
            assert y.shape == (3, T, n)
            assert torch.isfinite(y).all() and (y > 0).all()
    assert model.sessions == ["a", "b"]


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
@pytest.mark.parametrize("t", [1, 2, 7, 20])
def test_length_preserved_even_when_shorter_than_kernels(builder, t):
    model = _build(builder, first_temporal_kernel=9) if builder is build_factorized_3d else _build(builder)
    assert _run(model.eval(), _batch(b=2, t=t)).shape == (2, t, 5)


# ---- causality ---------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
@pytest.mark.parametrize("mode", ["gain", "channels"])
def test_output_before_t0_ignores_every_input_from_t0_on(builder, mode):
    model = _build(builder, behavior_mode=mode).eval()
    t0 = 5
    batch = _batch()
    perturbed = {k: v.clone() for k, v in batch.items()}
    g = torch.Generator().manual_seed(7)
    for key, value in perturbed.items():
        future = value[:, :, t0:] if key == "inputs" else value[:, t0:]
        future += 3.0 * torch.randn(future.shape, generator=g) if key != "optogenetic_signal" else 0.0
    perturbed["optogenetic_signal"][:, t0:] = 1.0 - batch["optogenetic_signal"][:, t0:]
    with torch.no_grad():
        y, y_perturbed = _run(model, batch), _run(model, perturbed)
    torch.testing.assert_close(y_perturbed[:, :t0], y[:, :t0], rtol=0, atol=1e-6)
    # ... and the perturbation does reach the later frames (the test can fail).
    assert (y_perturbed[:, t0:] - y[:, t0:]).abs().amax(dim=(0, 2)).gt(1e-4).all()


@pytest.mark.parametrize("core_cls", [Factorized3dCore, ConvGRUCore])
def test_cores_are_causal_frame_by_frame(core_cls):
    core = core_cls(2, hidden_channels=3).eval()
    x = torch.randn(2, 2, 10, 11, 13)
    with torch.no_grad():
        y = core(x)
        assert y.shape == (2, 3, 10, 11, 13)
        for t0 in (1, 4, 9):
            x2 = x.clone()
            x2[:, :, t0:] = torch.randn_like(x2[:, :, t0:])
            torch.testing.assert_close(core(x2)[:, :, :t0], y[:, :, :t0], rtol=0, atol=1e-6)


# ---- seeding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_same_seed_same_model_other_seed_other_model(builder):
    first, second, other = _build(builder, seed=3), _build(builder, seed=3), _build(builder, seed=4)
    s1, s2, s3 = first.state_dict(), second.state_dict(), other.state_dict()
    assert s1.keys() == s2.keys() == s3.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    batch = _batch()
    torch.testing.assert_close(_run(first.eval(), batch), _run(second.eval(), batch), rtol=0, atol=0)


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_building_leaves_global_rng_alone(builder):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _build(builder)
    assert torch.equal(torch.rand(3), expected)


# ---- gain modulator ----------------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_initial_gain_is_exactly_one(builder):
    model = _build(builder, behavior_mode="gain").eval()
    batch = _batch()
    on = {**batch, "optogenetic_signal": torch.ones(3, T)}
    off = {**batch, "optogenetic_signal": torch.zeros(3, T)}
    other_behavior = {**off, "behavior": 5 * torch.randn(3, T, K)}
    with torch.no_grad():
        y_off = _run(model, off)
        assert torch.equal(_run(model, on), y_off)
        assert torch.equal(_run(model, other_behavior), y_off)
    assert torch.equal(model.optogenetic_gain("b"), torch.ones(7))


def test_learns_which_neuron_the_laser_modulates():
    """Target: the initial model's own output with neuron 0 halved while the laser is on."""
    model = _build(build_factorized_3d).eval()  # eval: deterministic readout and batch norm
    g = torch.Generator().manual_seed(0)
    batch = _batch(b=6)
    # Laser on in blocks of 4 frames, so every trial has both conditions.
    batch["optogenetic_signal"] = (torch.rand(6, T // 4, generator=g) > 0.5).float().repeat_interleave(4, dim=1)
    with torch.no_grad():
        factor = torch.ones(5)
        factor[0] = 0.5
        laser = batch["optogenetic_signal"][..., None]
        target = _run(model, {**batch, "optogenetic_signal": torch.zeros(6, T)}) * (1 + laser * (factor - 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.poisson_nll_loss(_run(model, batch), target, log_input=False)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        on = _run(model, {**batch, "optogenetic_signal": torch.ones(6, T)})
        off = _run(model, {**batch, "optogenetic_signal": torch.zeros(6, T)})
    ratio = (on / off).mean(dim=(0, 1))
    assert ratio[0] < 0.7
    assert ((ratio[1:] > 0.9) & (ratio[1:] < 1.1)).all(), ratio
    # The laser enters the log gain linearly, so the ratio is the same for every frame and
    # optogenetic_gain reports it.
    torch.testing.assert_close(model.optogenetic_gain("a"), ratio)


def test_optogenetic_gain_is_per_session_and_needs_optogenetic_data():
    model = _build(build_factorized_3d)
    assert model.optogenetic_gain("a").shape == (5,)
    with pytest.raises(KeyError, match="unknown session"):
        model.optogenetic_gain("zzz")
    with pytest.raises(ValueError, match="has_optogenetic"):
        _build(build_factorized_3d, _info(has_optogenetic=False)).optogenetic_gain("a")


def test_no_modulator_without_behavior_to_gain_and_without_laser():
    assert _build(build_factorized_3d, _info(has_optogenetic=False), behavior_mode="none").modulator is None
    assert _build(build_factorized_3d, _info(has_optogenetic=False), behavior_mode="channels").modulator is None
    assert _build(build_factorized_3d, _info(has_optogenetic=False, n_behavior=0)).modulator is None


# ---- behaviour modes ---------------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_behavior_modes(builder):
    batch = _batch()
    changed = {**batch, "behavior": batch["behavior"] + 2.0}
    # "channels": behaviour is input to the core, so it changes the output even untrained.
    channels = _build(builder, behavior_mode="channels").eval()
    assert channels.core.input_channels == C + K
    with torch.no_grad():
        assert not torch.allclose(_run(channels, batch), _run(channels, changed))
    # "none": behaviour is ignored (and may be left out).
    none = _build(builder, behavior_mode="none").eval()
    assert none.core.input_channels == C
    with torch.no_grad():
        y = _run(none, batch)
        assert torch.equal(_run(none, changed), y)
        assert torch.equal(_run(none, {k: v for k, v in batch.items() if k != "behavior"}), y)
    # "gain": behaviour reaches the gain once the modulator's output layer is non-zero.
    gain = _build(builder, behavior_mode="gain").eval()
    with torch.no_grad():
        gain.modulator["a"].linear.weight.fill_(0.1)
        assert not torch.allclose(_run(gain, batch), _run(gain, changed))


def test_per_frame_signals_broadcast_over_a_batch_of_one():
    model = _build(build_factorized_3d).eval()
    batch = _batch()
    single = {k: (v if k == "inputs" else v[:1]) for k, v in batch.items()}
    tiled = {k: (v if k == "inputs" else v[:1].expand_as(v)) for k, v in batch.items()}
    with torch.no_grad():
        torch.testing.assert_close(_run(model, single), _run(model, tiled), rtol=0, atol=0)


# ---- shifter -----------------------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_shifter_moves_the_readout_with_the_pupil(builder):
    model = _build(builder, shifter=True).eval()
    batch = _batch()
    moved = {**batch, "pupil_center": batch["pupil_center"] + 1.0}
    with torch.no_grad():
        assert not torch.allclose(_run(model, batch), _run(model, moved))
        # A shifter whose output layer is zero shifts nothing: same output as without a shifter.
        last = [m for m in model.shifter["a"].modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.zero_()
        y = _run(model, batch)
        assert torch.equal(_run(model, moved), y)
        model.shifter = None
        torch.testing.assert_close(_run(model, batch), y, rtol=0, atol=1e-6)


def test_without_shifter_pupil_is_ignored():
    model = _build(build_factorized_3d, shifter=False).eval()
    assert model.shifter is None
    batch = _batch()
    with torch.no_grad():
        y = _run(model, batch)
        assert torch.equal(_run(model, {**batch, "pupil_center": batch["pupil_center"] + 1}), y)
        assert torch.equal(_run(model, {k: v for k, v in batch.items() if k != "pupil_center"}), y)


# ---- regularizer and training ------------------------------------------------------------------
@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_regularizer_is_a_finite_differentiable_scalar(builder):
    model = _build(builder, modulator_l2=0.1)
    penalty = model.regularizer("a")
    assert penalty.ndim == 0 and torch.isfinite(penalty) and penalty.requires_grad
    penalty.backward()
    first = model.core.features[0]
    weight = first.spatial.weight if builder is build_factorized_3d else first.conv.weight
    assert weight.grad.abs().sum() > 0
    assert model.readout["a"]._features.grad.abs().sum() > 0
    assert model.readout["b"]._features.grad is None  # the penalty is session specific
    with pytest.raises(KeyError, match="unknown session"):
        model.regularizer("zzz")


def test_regularizer_terms_scale_with_their_weights():
    quiet = dict(core_l2=0.0, readout_l1=0.0)
    weak = _build(build_factorized_3d, core_smoothness=0.1, **quiet).regularizer("a")
    strong = _build(build_factorized_3d, core_smoothness=1.0, **quiet).regularizer("a")
    torch.testing.assert_close(strong, 10 * weak)
    # Readout features start at 1 / channels, so the L1 sum is the number of neurons.
    readout_only = dict(core_smoothness=0.0, core_l2=0.0, readout_l1=1.0)
    assert _build(build_conv_gru, **readout_only).regularizer("b").item() == pytest.approx(7.0)


def test_laplace_smoothness_matches_neuralpredictors():
    from neuralpredictors.regularizers import LaplaceL2norm

    from neurofit.models import _neuralpredictors_compat  # noqa: F401

    w = torch.randn(4, 3, 7, 7)
    torch.testing.assert_close(laplace_smoothness(w), LaplaceL2norm(padding=None)(w))


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_backward_reaches_every_part(builder):
    model = _build(builder).train()
    y = _run(model, _batch(), "b")
    loss = torch.nn.functional.poisson_nll_loss(y, torch.ones_like(y), log_input=False) + model.regularizer("b")
    loss.backward()
    parts = {
        "core": model.core.features[0],
        "readout": model.readout["b"],
        "shifter": model.shifter["b"],
        "modulator": model.modulator["b"].linear,
    }
    for name, part in parts.items():
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name


# ---- initialisation and introspection ----------------------------------------------------------
def test_readout_bias_starts_at_mean_response():
    means = {"a": [0.2, 0.5, 1.0, 2.0, 7.5], "b": [3.0, 0.1, 1.5, 1.0, 1.0, 2.0, 0.7]}
    model = _build(build_conv_gru, _info(mean_response=means))
    for session, mean in means.items():
        bias = model.readout[session].bias.detach()
        torch.testing.assert_close(torch.nn.functional.elu(bias) + 1, torch.tensor(mean), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_analysis_layers_output_batch_first_per_frame_features(builder):
    model = _build(builder).eval()
    modules = dict(model.named_modules())
    shapes = {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape))
        for name in model.analysis_layers
    ]
    with torch.no_grad():
        _run(model, _batch(b=2))
    for handle in handles:
        handle.remove()
    assert list(shapes) == model.analysis_layers and len(shapes) >= 2
    assert all(shape == (2, 4, T, H, W) for shape in shapes.values()), shapes


def test_factorized_core_can_stack_all_layers_for_the_readout():
    model = _build(build_factorized_3d, readout_all_layers=True)
    assert model.core.outchannels == 8 and model.readout["a"].in_shape == (8, H, W)
    assert _run(model.eval(), _batch()).shape == (3, T, 5)


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_signature_is_keyword_only_without_kwargs(builder):
    params = list(inspect.signature(builder).parameters.values())
    assert [p.name for p in params[:2]] == ["data_info", "seed"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
    assert all(p.default is not inspect.Parameter.empty for p in params[2:])


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "builder,kwargs,match",
    [
        (build_factorized_3d, dict(hidden_channels=0), "hidden_channels"),
        (build_factorized_3d, dict(layers=1.5), "layers"),
        (build_factorized_3d, dict(first_spatial_kernel=4), "first_spatial_kernel must be odd"),
        (build_factorized_3d, dict(temporal_kernel=0), "temporal_kernel"),
        (build_factorized_3d, dict(readout_all_layers="yes"), "readout_all_layers"),
        (build_factorized_3d, dict(core_smoothness=-1.0), "core_smoothness"),
        (build_factorized_3d, dict(batch_norm_momentum=0.0), "batch_norm_momentum"),
        (build_conv_gru, dict(feature_layers=0), "feature_layers"),
        (build_conv_gru, dict(gru_kernel=2), "gru_kernel must be odd"),
        (build_conv_gru, dict(hidden_channels=True), "hidden_channels"),
        (build_conv_gru, dict(core_l2=float("nan")), "core_l2"),
        (build_conv_gru, dict(behavior_mode="both"), "behavior_mode"),
        (build_conv_gru, dict(shifter=1), "shifter"),
        (build_conv_gru, dict(readout_l1=-0.1), "readout_l1"),
        (build_conv_gru, dict(init_mu_range=1.5), "init_mu_range"),
        (build_conv_gru, dict(init_sigma=0.0), "init_sigma"),
        (build_conv_gru, dict(gauss_type="round"), "gauss_type"),
        (build_conv_gru, dict(shifter_layers=0), "shifter_layers"),
        (build_conv_gru, dict(modulator_hidden=-1), "modulator_hidden"),
        (build_conv_gru, dict(elu_offset=float("inf")), "elu_offset"),
    ],
)
def test_bad_hyperparameters_are_named(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(builder, **kwargs)


@pytest.mark.parametrize("builder", BUILDERS, ids=IDS)
def test_bad_seed_and_data_info_are_named(builder):
    with pytest.raises(ValueError, match="seed"):
        _build(builder, seed=1.0)
    with pytest.raises(ValueError, match="modality 'image'"):
        _build(builder, _info(modality="image"))
    with pytest.raises(ValueError, match="neural responses"):
        _build(builder, DataInfo(input_shape=(C, H, W), n_neurons={"a": 0}, modality="video",
                                 provides=("labels",), n_classes=3))
    with pytest.raises(ValueError, match="mean_response"):
        _build(builder, _info(mean_response={"a": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="input_shape is one frame"):
        builder(DataInfo(input_shape=(C, T, H, W), n_neurons=dict(N), modality="video"), 0)


def test_forward_errors_name_the_problem():
    model = _build(build_factorized_3d).eval()
    batch = _batch()
    x = batch["inputs"]
    rest = {k: v for k, v in batch.items() if k != "inputs"}
    with pytest.raises(KeyError, match="unknown session 'c'"):
        model(x, "c", **rest)
    with pytest.raises(ValueError, match="behavior is required"):
        model(x, "a", **{**rest, "behavior": None})
    with pytest.raises(ValueError, match=r"behavior must have shape \(3, 12, 2\)"):
        model(x, "a", **{**rest, "behavior": rest["behavior"][:, :-1]})
    with pytest.raises(ValueError, match="pupil_center is required.*shifter"):
        model(x, "a", **{**rest, "pupil_center": None})
    with pytest.raises(ValueError, match="optogenetic_signal is required"):
        model(x, "a", **{**rest, "optogenetic_signal": None})
    with pytest.raises(ValueError, match="optogenetic_signal must have shape"):
        model(x, "a", **{**rest, "optogenetic_signal": rest["optogenetic_signal"][..., None]})
    with pytest.raises(ValueError, match="5 dimensions.*add a batch axis"):
        model(x[0], "a", **rest)
    with pytest.raises(ValueError, match="transpose"):
        model(x.transpose(1, 2), "a", **rest)
    with pytest.raises(ValueError, match=r"\(batch, 1, time, 16, 24\)"):
        model(x[..., :-1], "a", **rest)
    with pytest.raises(TypeError, match="floating point"):
        model(x.to(torch.uint8), "a", **rest)
    no_laser = _build(build_factorized_3d, _info(has_optogenetic=False)).eval()
    with pytest.raises(ValueError, match="built without one"):
        no_laser(x, "a", **rest)

"""Task RNNs, SAE and LFADS: shapes, regularisers, coordinated dropout, metrics additions."""

import numpy as np
import pytest
import torch

from neurofit.datasets.info import DataInfo
from neurofit.models import latent_models, task_rnns
from neurofit.pipelines.analysis import dynamics

SPIKES = DataInfo(input_shape=(10, 2), n_neurons={"all": 7}, provides=("responses",), modality="sequence",
                  extra={"n_heldin": 5, "n_heldout": 2})
TASK = DataInfo(input_shape=(10, 3), n_neurons={"all": 0}, provides=("targets", "mask"), modality="sequence",
                target_shape=(3,))


@pytest.mark.parametrize("builder", [task_rnns.build_noisy_gru, task_rnns.build_gru, task_rnns.build_vanilla_rnn,
                                     task_rnns.build_node])
def test_task_rnns(builder):
    model = builder(TASK, 0, latent_size=6)
    x = torch.randn(4, 10, 3)
    model.train()
    assert model(x, "all").shape == (4, 10, 3)
    assert model.regularizer("all").ndim == 0
    model.eval()
    outputs, latents = model.run(x)
    assert latents.shape == (4, 10, 6)
    torch.testing.assert_close(model.step(latents[:, 3], x[:, 4]), latents[:, 4])  # step is the recurrence


def test_noisy_gru_noise_only_while_training():
    model = task_rnns.build_noisy_gru(TASK, 0, latent_size=6, latent_noise=0.5, l2=1.0)
    x = torch.randn(2, 10, 3)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
    assert model.regularizer("all") > 0


@pytest.mark.parametrize("decoder", ["gru", "node", "linear"])
def test_sae_shapes(decoder):
    model = latent_models.build_sae(SPIKES, 0, latent_size=4, encoder_size=8, decoder=decoder)
    rates, latents = model.run(torch.randn(3, 10, 2), torch.poisson(torch.ones(3, 10, 5)))
    assert rates.shape == (3, 10, 7) and latents.shape == (3, 10, 4) and (rates > 0).all()


def test_lfads_controller_and_coordinated_dropout():
    model = latent_models.build_lfads(SPIKES, 0, ic_encoder=8, generator=8, factors=4, controller=4,
                                      controller_outputs=2, ci_encoder=4, cd_rate=0.5)
    spikes = torch.poisson(torch.ones(3, 10, 5))
    model.train()
    rates = model(torch.randn(3, 10, 2), encod_data=spikes)
    weights = model.loss_weights()
    assert rates.shape == (3, 10, 7) and weights.shape == (3, 10, 7)
    assert torch.all(weights[..., 5:] == 1) and 0.2 < weights[..., :5].mean() < 0.8  # dropped entries only
    assert model.regularizer("all") > 0
    model.eval()
    model(torch.randn(3, 10, 2), encod_data=spikes)
    assert model.loss_weights() is None


def test_co_bps_variants_and_state_r2_directions():
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 0.5, (20, 30, 8))
    spikes = rng.poisson(rates).astype(float)
    nlb = dynamics.co_bps(rates, spikes, 5)
    assert nlb > 0.05 and abs(nlb - dynamics.co_bps(rates, spikes, 5, variant="ctd")) < 1e-4
    assert dynamics.co_bps(np.broadcast_to(spikes.mean((0, 1)), spikes.shape), spikes, 5) == pytest.approx(0, abs=1e-9)
    true = rng.normal(size=(400, 2))
    inferred = np.c_[true, rng.normal(size=(400, 3))]  # true dims plus spurious ones
    both = dynamics.state_r2_both(true[:300], inferred[:300], true[300:], inferred[300:])
    assert both["inferred_to_true"] > 0.99 and both["true_to_inferred"] < 0.5
    assert dynamics.bit_accuracy(np.array([[[0.9, 0.2]]]), np.array([[[1.0, 1.0]]])) == 0.5

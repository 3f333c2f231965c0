"""train_poisson: determinism, learning, early stopping, reporting (no database, CPU, ~10 s)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from neurofit.datasets.synthetic_responses import build_synthetic_responses, simulate_sessions
from neurofit.models.encoding import build_gaussian_cnn
from neurofit.pipelines.analysis.prediction import correlation
from neurofit.pipelines.evaluation import predict
from neurofit.pipelines.trainers import train_poisson
from neurofit.pipelines.trainers.poisson import validation_correlation
from neurofit.pipelines.training import TrainingContext, TrainResult

DATA = dict(
    n_sessions=2, n_neurons=20, image_size=16, n_train_images=300, n_validation_images=100,
    n_test_images=20, n_repeats=4,
)
MODEL = dict(hidden_channels=8, layers=2, input_kernel=7, hidden_kernel=5)
EPOCHS = 6


@pytest.fixture(scope="module")
def data():
    return build_synthetic_responses(0, **DATA, batch_size=32)


@pytest.fixture(scope="module")
def truth():
    return simulate_sessions(0, **DATA)


def _train(data, seed, **kwargs):
    rows = []
    model = build_gaussian_cnn(data.info, seed, **MODEL)
    result = train_poisson(
        model, data, seed, TrainingContext(device="cpu", on_epoch=rows.append),
        max_epochs=EPOCHS, **kwargs,
    )
    return result, rows


@pytest.fixture(scope="module")
def trained(data):
    return _train(data, 0)


def _correlation_with_truth(model, data, truth):
    predictions = predict(model, data.loaders["test"], "cpu")
    return float(np.mean(np.concatenate([
        correlation(truth[s].tiers["test"].rates, p["predictions"]) for s, p in predictions.items()
    ])))


def test_two_runs_with_one_seed_are_identical(data, trained):
    first, first_rows = trained
    second, second_rows = _train(data, 0)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rows]
             for rows in (first_rows, second_rows)]
    assert strip[0] == strip[1]
    assert first.score == second.score


def test_another_seed_gives_other_weights(data, trained):
    other, _ = _train(data, 1)
    conv = "core.features.layer0.conv.weight"
    assert not torch.equal(other.model.state_dict()[conv], trained[0].model.state_dict()[conv])


def test_short_training_recovers_the_ground_truth(data, truth, trained):
    result, _ = trained
    untrained = build_gaussian_cnn(data.info, 0, **MODEL)
    before = _correlation_with_truth(untrained, data, truth)
    after = _correlation_with_truth(result.model, data, truth)
    # Chance is 0; six epochs on 300 images reach about 0.74 with these settings.
    assert abs(before) < 0.2
    assert after > 0.6
    # Against noisy single trials the model cannot beat the perfect model's ceiling.
    assert 0.3 < result.score < data.info.ceiling["single_trial_correlation"] + 0.05


def test_history_rows_and_callback(trained):
    result, rows = trained
    assert isinstance(result, TrainResult)
    assert rows == result.history
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert set(row) == {"epoch", "train_loss", "validation_score", "seconds"}
        assert all(isinstance(row[k], float) for k in ("train_loss", "validation_score", "seconds"))
        assert row["seconds"] > 0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_returns_the_best_weights_and_their_score(data, trained):
    result, rows = trained
    assert result.score == pytest.approx(max(r["validation_score"] for r in rows))
    assert not result.model.training
    # The returned model really holds the weights the score belongs to.
    recomputed = validation_correlation(result.model, data.loaders["validation"], "cpu")
    assert recomputed == pytest.approx(result.score, abs=1e-6)


class _Linear(torch.nn.Module):
    """A model without regularizer or batch norm: lr=0 freezes its validation score."""

    def __init__(self, n_pixels, n_neurons):
        super().__init__()
        torch.manual_seed(0)
        self.maps = torch.nn.ModuleDict(
            {s: torch.nn.Linear(n_pixels, n) for s, n in n_neurons.items()}
        )

    def forward(self, inputs, session):
        return torch.nn.functional.softplus(self.maps[session](inputs.flatten(1)))


def test_stalls_lead_to_decay_then_stop(data):
    model = _Linear(16 * 16, data.info.n_neurons)
    result = train_poisson(
        model, data, 0, TrainingContext(), max_epochs=50, lr=0.0, patience=2, lr_decay_steps=1
    )
    # 2 stalled epochs -> decay, 2 more -> stop.
    assert len(result.history) == 4
    scores = {round(r["validation_score"], 12) for r in result.history}
    assert len(scores) == 1 and result.score == pytest.approx(scores.pop())


def test_non_finite_loss_raises(data):
    class _Nan(_Linear):
        def forward(self, inputs, session):
            # Finite in eval mode, so the initial validation passes and training must catch it.
            scale = float("nan") if self.training else 1.0
            return super().forward(inputs, session) * scale

    with pytest.raises(FloatingPointError, match="epoch 1"):
        train_poisson(_Nan(16 * 16, data.info.n_neurons), data, 0, TrainingContext(), max_epochs=1)


def test_signature_is_keyword_only_without_kwargs():
    params = list(inspect.signature(train_poisson).parameters.values())
    assert [p.name for p in params[:4]] == ["model", "data", "seed", "context"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[4:])
    assert all(p.default is not inspect.Parameter.empty for p in params[4:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_the_context_device(data):
    model = build_gaussian_cnn(data.info, 0, **MODEL)
    result = train_poisson(model, data, 0, TrainingContext(device="cuda"), max_epochs=2)
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    assert 0 < result.score < 1

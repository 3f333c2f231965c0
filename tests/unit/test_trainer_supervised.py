"""neurofit.supervised: cross-entropy for labels, masked MSE for targets, on the shared loop."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from neurofit.pipelines.task_scores import evaluate_task
from neurofit.pipelines.trainers.supervised import task_loss, train_supervised
from neurofit.pipelines.training import RunContext

_spec = importlib.util.spec_from_file_location(
    "supervised_fixtures", Path(__file__).parent / "resume_cases" / "supervised_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_classifier_learns_blobs_and_the_untrained_control_does_not():
    data = fixtures.build_blobs(0)
    trained = train_supervised(fixtures.build_linear(data.info, 0), data, 0, RunContext(), max_epochs=20, lr=0.05)
    control = train_supervised(fixtures.build_linear(data.info, 0), data, 0, RunContext(), max_epochs=0)
    assert evaluate_task(trained.model, data).accuracy > 0.9
    assert evaluate_task(control.model, data).accuracy < 0.7
    assert control.history == [] and trained.history[0]["epoch"] == 1


def test_masked_entries_and_the_burn_in_do_not_reach_the_fit():
    clean = fixtures.build_masked_sequences(0, burn_in=2)
    dirty = fixtures.build_masked_sequences(0, burn_in=2, garbage=1e3)  # same data, huge values where masked
    fits = [train_supervised(fixtures.build_linear(d.info, 0), d, 0, RunContext(), max_epochs=6, lr=0.05)
            for d in (clean, dirty)]
    a, b = (f.model.state_dict() for f in fits)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert evaluate_task(fits[0].model, clean).r2 > 0.95


def test_the_loss_is_the_masked_mean_squared_error():
    data = fixtures.build_masked_sequences(1)
    batch = next(iter(data.loaders["train"]["all"]))
    outputs = torch.zeros_like(batch["targets"])
    loss, n_rows = task_loss(outputs, batch, data.info, "cpu")
    w = batch["weights"].numpy()[..., None]
    expected = (w * batch["targets"].numpy() ** 2).sum() / np.broadcast_to(w, batch["targets"].shape).sum()
    assert loss.item() == pytest.approx(expected, rel=1e-6) and n_rows == len(batch["targets"])


def test_neural_responses_and_unknown_optimizers_are_refused():
    data = fixtures.build_blobs(0)
    with pytest.raises(ValueError, match="optimizer 'sgd': choose one of"):
        train_supervised(fixtures.build_linear(data.info, 0), data, 0, RunContext(), optimizer="sgd")
    from neurofit.datasets.synthetic_responses import build_synthetic_responses

    responses = build_synthetic_responses(0, n_neurons=3, n_train_images=8, n_validation_images=4, n_test_images=4)
    with pytest.raises(ValueError, match="fit neural responses with neurofit.poisson"):
        train_supervised(torch.nn.Linear(1, 1), responses, 0, RunContext())

"""Every registered neurofit trainer: interrupted and resumed equals uninterrupted, bit for bit (CPU).

A trainer registered without a case below fails `test_every_registered_trainer_has_a_case`:
add a small dataset, model and settings for it here.
"""

from __future__ import annotations

import io

import pytest
import torch

from neurofit.pipelines import registry
from neurofit.pipelines.training import Preempted, RunContext, build_data, build_model

#: trainer name -> (dataset builder, config), (model builder, config), trainer settings, epoch to stop after
CASES = {
    "neurofit.poisson": (
        ("neurofit.synthetic_responses", dict(n_neurons=6, n_train_images=64, n_validation_images=16,
                                              n_test_images=8, n_repeats=2, image_size=12, batch_size=16)),
        ("neurofit.gaussian_cnn", dict(hidden_channels=3, layers=1, input_kernel=5)),
        dict(max_epochs=4, lr=0.01, patience=1, tolerance=1e-4, lr_decay_steps=1),
        2,
    ),
}


def _neurofit_trainers() -> list[str]:
    return [name for name in registry.available("trainer") if name.startswith("neurofit.")]


def test_every_registered_trainer_has_a_case():
    assert sorted(_neurofit_trainers()) == sorted(CASES)


class _Memory:
    def __init__(self):
        self.blobs = []

    def save(self, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.blobs.append(buffer.getvalue())

    def load(self):
        return torch.load(io.BytesIO(self.blobs[-1]), weights_only=True) if self.blobs else None


def _train(name, context):
    (dataset_fn, dataset_config), (model_fn, model_config), settings, _ = CASES[name]
    data = build_data(dataset_fn, dataset_config, 0)
    model = build_model(model_fn, model_config, data.info, 0)
    trainer = registry.resolve("trainer", name)
    return trainer.function(model, data, 0, context, **trainer.complete_config(settings))


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_and_resumed_equals_uninterrupted(name):
    stop_after = CASES[name][3]
    reference = _train(name, RunContext())
    rows = []
    memory = _Memory()
    with pytest.raises(Preempted):
        _train(name, RunContext(checkpoint=memory, on_epoch=rows.append, stop_requested=lambda: len(rows) >= stop_after))
    resumed = _train(name, RunContext(checkpoint=memory))
    strip = [[{k: v for k, v in row.items() if k != "seconds"} for row in r.history] for r in (reference, resumed)]
    assert strip[0] == strip[1] and len(strip[0]) > stop_after
    assert resumed.score == reference.score
    a, b = reference.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

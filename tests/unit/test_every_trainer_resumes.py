"""Every registered neurofit trainer: interrupted and resumed equals uninterrupted, bit for bit (CPU).

A trainer registered without a case below fails `test_every_registered_trainer_has_a_case`:
add a small dataset, model and settings for it in a file of resume_cases/.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch

from neurofit.pipelines import registry
from neurofit.pipelines.training import Preempted, RunContext, build_data, build_model

RESUME_CASES = Path(__file__).parent / "resume_cases"


def _load_cases() -> dict:
    """Every ``CASES`` dict of ``resume_cases/*.py`` (not ``*_fixtures.py``): one file per workflow.

    A case is trainer name -> ((dataset builder, config), (model builder, config), trainer settings,
    epoch to stop after).
    """
    cases = {}
    for path in sorted(RESUME_CASES.glob("*.py")):
        if path.stem.endswith("_fixtures"):
            continue
        spec = importlib.util.spec_from_file_location(f"resume_cases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        clash = cases.keys() & module.CASES.keys()
        assert not clash, f"{path.name} repeats the cases of {sorted(clash)}"
        cases.update(module.CASES)
    return cases


CASES = _load_cases()


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

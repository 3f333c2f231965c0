"""The shared training loop: early stopping, exact resume at and inside epochs, preemption."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from neurofit.pipelines.loop import EarlyStopping, IncompatibleCheckpoint, StepResult, fit
from neurofit.pipelines.training import Preempted, RunContext


class _Pairs(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 5, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"inputs": self.x[i], "targets": self.y[i]}


class _Bundle:
    def __init__(self):
        self.loaders = {
            "train": {"a": DataLoader(_Pairs(96, 0), batch_size=8, shuffle=True),
                      "b": DataLoader(_Pairs(40, 1), batch_size=8, shuffle=True)},
            "validation": {"a": DataLoader(_Pairs(32, 2), batch_size=16)},
        }


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))

    def forward(self, x):
        return self.layer(x).squeeze(-1)


def _step(model, session, batch):
    error = model(batch["inputs"]) - batch["targets"]
    return StepResult(loss=(error**2).mean(), total=float((error.detach() ** 2).sum()), count=len(error))


def _validate(data):
    def score(model):
        batch = next(iter(data.loaders["validation"]["a"]))
        return -float(((model(batch["inputs"]) - batch["targets"]) ** 2).mean())

    return score


class Memory:
    """Checkpointer keeping serialised states, loaded as a worker would."""

    def __init__(self):
        self.blobs = []

    def save(self, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.blobs.append(buffer.getvalue())

    def load(self):
        return torch.load(io.BytesIO(self.blobs[-1]), weights_only=True) if self.blobs else None


SETTINGS = dict(max_epochs=7, steps_per_epoch=None)


def _fit(context, *, stopping=True, **overrides):
    data = _Bundle()
    settings = {**SETTINGS, **overrides}
    return fit(
        _Net(), data, 3, context, trainer="test_mse", config=settings, step=_step,
        validate=_validate(data), optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
        stopping=EarlyStopping(patience=1, tolerance=0.05, lr_decay_factor=0.5, lr_decay_steps=2) if stopping else None,
        **settings,
    )


def _same(a, b):
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a.history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in b.history]
    assert a.score == b.score
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name


class _StopAfter:
    """Asks for a stop after ``n`` polls (epoch-boundary checks, or step checks mid-epoch)."""

    def __init__(self, n):
        self.n = n

    def __call__(self):
        self.n -= 1
        return self.n < 0


@pytest.mark.parametrize("stopping", [True, False])
@pytest.mark.parametrize("stop_after", [0, 2, 4])
def test_interrupted_at_epoch_boundaries_equals_uninterrupted(stopping, stop_after):
    reference = _fit(RunContext(), stopping=stopping)
    memory = Memory()
    with pytest.raises(Preempted):
        _fit(RunContext(checkpoint=memory, stop_requested=_StopAfter(stop_after)), stopping=stopping)
    _same(_fit(RunContext(checkpoint=memory), stopping=stopping), reference)


@pytest.mark.parametrize("stop_after", [0, 3, 16, 17])  # 17 steps per epoch: 16 is the epoch's last step
def test_interrupted_inside_an_epoch_resumes_the_remaining_batches_exactly(stop_after):
    reference = _fit(RunContext())
    memory = Memory()
    with pytest.raises(Preempted):
        _fit(RunContext(checkpoint=memory, stop_requested=_StopAfter(stop_after), step_interval=1))
    # Polls 1..17 come after each step of epoch 1; poll 18 is the epoch-boundary check.
    assert memory.load()["step"] == (stop_after + 1 if stop_after < 17 else 0)
    _same(_fit(RunContext(checkpoint=memory, step_interval=1)), reference)


def test_steps_per_epoch_takes_the_first_batches_of_a_fresh_pass():
    rows = []
    result = _fit(RunContext(on_epoch=rows.append), stopping=False, steps_per_epoch=3, max_epochs=2)
    assert [r["epoch"] for r in rows] == [1, 2] and len(result.history) == 2
    memory = Memory()
    with pytest.raises(Preempted):
        _fit(RunContext(checkpoint=memory, stop_requested=_StopAfter(1), step_interval=1), stopping=False,
             steps_per_epoch=3, max_epochs=2)
    _same(_fit(RunContext(checkpoint=memory), stopping=False, steps_per_epoch=3, max_epochs=2), result)


def test_zero_epochs_returns_the_untrained_model_with_its_score():
    result = _fit(RunContext(), max_epochs=0)
    assert result.history == [] and result.score < 0
    _same(result, _fit(RunContext(), max_epochs=0, stopping=False))
    for x, y in zip(result.model.state_dict().values(), _Net().state_dict().values()):
        assert torch.equal(x, y)


def test_early_stopping_decays_restores_best_and_respects_min_epochs():
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    rule = EarlyStopping(patience=2, lr_decay_factor=0.25, lr_decay_steps=1, min_epochs=6)
    rule.start(model, 0.5)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.layer[0].weight.add_(1.0)
    assert [rule.update(e, 0.4, model, optimizer) for e in (1, 2)] == [False, False]
    assert optimizer.param_groups[0]["lr"] == 0.25 and rule.decays == 1
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)  # best weights back
    assert [rule.update(e, 0.4, model, optimizer) for e in (3, 4, 5, 6)] == [False, False, False, True]
    minimise = EarlyStopping(patience=1, lr_decay_steps=0, maximize=False)
    minimise.start(model, 1.0)
    assert not minimise.update(1, 0.5, model, optimizer) and minimise.update(2, 0.9, model, optimizer)


def test_a_checkpoint_of_other_settings_or_another_trainer_is_refused():
    memory = Memory()
    with pytest.raises(Preempted):
        _fit(RunContext(checkpoint=memory, stop_requested=_StopAfter(0)))
    with pytest.raises(IncompatibleCheckpoint, match="max_epochs=7 .now 8"):
        _fit(RunContext(checkpoint=memory), max_epochs=8)
    state = memory.load()
    state["trainer"] = "other"
    memory.save(state)
    with pytest.raises(IncompatibleCheckpoint, match="written by trainer 'other'"):
        _fit(RunContext(checkpoint=memory))


def test_a_nan_loss_names_the_epoch():
    data = _Bundle()

    def bad_step(model, session, batch):
        loss = model(batch["inputs"]).sum() * float("nan")
        return StepResult(loss, 0.0, 1)

    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(_Net(), data, 0, RunContext(), trainer="t", config={}, step=bad_step, validate=_validate(data),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.1), max_epochs=1)

"""train_poisson on the shared loop: its checkpoint envelope, resumed bit-identically (no database, CPU, ~10 s)."""

from __future__ import annotations

import io

import pytest
import torch

from neurofit.datasets.synthetic_responses import build_synthetic_responses
from neurofit.models.encoding import build_gaussian_cnn
from neurofit.pipelines.loop import CHECKPOINT_FORMAT
from neurofit.pipelines.trainers import train_poisson
from neurofit.pipelines.training import Preempted, TrainingContext

DATA = dict(
    n_neurons=8, n_train_images=120, n_validation_images=30, n_test_images=10, n_repeats=2,
    image_size=16, batch_size=32,
)
MODEL = dict(hidden_channels=4, layers=1, input_kernel=5)
LR, FACTOR = 0.01, 0.3
# With this tolerance epochs 1-3 improve, 4 stalls (decay 1: best weights back, lr 0.003), 5
# stalls (decay 2, lr 0.0009) and 6 stalls again, which stops training before MAX_EPOCHS.
TRAINER = dict(max_epochs=8, lr=LR, patience=1, tolerance=0.02, lr_decay_factor=FACTOR,
               lr_decay_steps=2)
N_EPOCHS = 6


class MemoryCheckpointer:
    """Keeps every saved state, raw and serialised; ``load`` reads the last one as a worker does."""

    def __init__(self):
        self.raw: list[dict] = []
        self.blobs: list[bytes] = []

    def save(self, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.raw.append(state)
        self.blobs.append(buffer.getvalue())

    def load(self):
        if not self.blobs:
            return None
        return torch.load(io.BytesIO(self.blobs[-1]), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def data():
    return build_synthetic_responses(0, **DATA)


def _run(data, checkpoint=None, stop_requested=None, model=MODEL, **overrides):
    """Trains a freshly built model (seed 0); returns the result and the reported rows."""
    rows = []
    context = TrainingContext(
        on_epoch=rows.append, checkpoint=checkpoint, stop_requested=stop_requested
    )
    result = train_poisson(
        build_gaussian_cnn(data.info, 0, **model), data, 0, context, **{**TRAINER, **overrides}
    )
    return result, rows


@pytest.fixture(scope="module")
def uninterrupted(data):
    """The reference: no checkpointer at all, as before checkpoints existed."""
    return _run(data)


def _strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same_weights(a, b):
    a, b = a.state_dict(), b.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_settings_exercise_decay_and_stopping_rule(uninterrupted):
    result, rows = uninterrupted
    assert len(rows) == N_EPOCHS < TRAINER["max_epochs"]


@pytest.mark.parametrize("k, decays", [(4, 1), (5, 2)])
def test_interrupted_run_resumes_bit_identically(data, uninterrupted, k, decays):
    reference, reference_rows = uninterrupted
    checkpointer = MemoryCheckpointer()

    rows_before = []
    with pytest.raises(Preempted, match=f"after epoch {k}"):
        train_poisson(
            build_gaussian_cnn(data.info, 0, **MODEL), data, 0,
            TrainingContext(on_epoch=rows_before.append, checkpoint=checkpointer,
                            stop_requested=lambda: len(rows_before) >= k),
            **TRAINER,
        )
    assert [r["epoch"] for r in rows_before] == list(range(1, k + 1))
    saved = checkpointer.load()
    assert (saved["epoch"], saved["finished"], saved["stopping"]["decays"]) == (k, False, decays)
    # The decayed learning rate is in the checkpoint (k = 4, 5: after a decay and weight restore).
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == [
        pytest.approx(LR * FACTOR**decays)
    ]

    resumed, rows_after = _run(data, checkpoint=checkpointer)

    # (b) epochs 1..k are neither re-run nor re-reported.
    assert [r["epoch"] for r in rows_after] == list(range(k + 1, N_EPOCHS + 1))
    # (a) the same weights, score and history as the uninterrupted run.
    _assert_same_weights(resumed.model, reference.model)
    assert resumed.score == reference.score
    assert _strip(resumed.history) == _strip(reference.history)
    assert resumed.history[:k] == rows_before  # saved rows as they were, seconds included
    assert resumed.history[k:] == rows_after
    assert not resumed.model.training

    # The last checkpoint says training finished; resuming from it trains no further.
    assert checkpointer.load()["finished"]
    n_saved = len(checkpointer.blobs)
    again, rows_again = _run(data, checkpoint=checkpointer, stop_requested=lambda: True)
    assert rows_again == [] and len(checkpointer.blobs) == n_saved
    _assert_same_weights(again.model, reference.model)
    assert again.score == reference.score and again.history == resumed.history


class _Linear(torch.nn.Module):
    """No batch norm and no regularizer: with lr=0 every epoch has the same validation score."""

    def __init__(self, n_neurons):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.maps = torch.nn.ModuleDict(
            {s: torch.nn.Linear(16 * 16, n) for s, n in n_neurons.items()}
        )
        for parameter in self.parameters():
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.05

    def forward(self, inputs, session):
        return torch.nn.functional.softplus(self.maps[session](inputs.flatten(1)))


@pytest.mark.parametrize("k", [1, 3])
def test_stall_counter_survives_resumption(data, k):
    # Every epoch stalls: 1, 2 -> decay, 3, 4 -> stop. Interrupted after a first stall (k = 1,
    # 3), the resumed run must still stop after epoch 4.
    settings = dict(max_epochs=10, lr=0.0, patience=2, lr_decay_steps=1)
    checkpointer = MemoryCheckpointer()
    rows = []
    context = TrainingContext(on_epoch=rows.append, checkpoint=checkpointer,
                              stop_requested=lambda: len(rows) >= k)
    with pytest.raises(Preempted):
        train_poisson(_Linear(data.info.n_neurons), data, 0, context, **settings)
    assert checkpointer.load()["stopping"]["stalled"] == 1
    rows = []
    result = train_poisson(_Linear(data.info.n_neurons), data, 0,
                           TrainingContext(on_epoch=rows.append, checkpoint=checkpointer),
                           **settings)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert [r["epoch"] for r in rows] == list(range(k + 1, 5))


def test_max_epochs_finishes_even_when_stop_is_requested(data):
    checkpointer = MemoryCheckpointer()
    with pytest.raises(Preempted):
        _run(data, checkpointer, stop_requested=lambda: True, max_epochs=2)
    # The last epoch saves a finished checkpoint and returns instead of raising.
    result, rows = _run(data, checkpointer, stop_requested=lambda: True, max_epochs=2)
    assert [r["epoch"] for r in rows] == [2] and len(result.history) == 2
    assert [s["finished"] for s in checkpointer.raw] == [False, True]
    again, rows = _run(data, checkpointer, max_epochs=2)
    assert rows == [] and again.history == result.history
    _assert_same_weights(again.model, result.model)


@pytest.fixture(scope="module")
def one_epoch(data):
    checkpointer = MemoryCheckpointer()
    with pytest.raises(Preempted):
        _run(data, checkpointer, max_epochs=2, stop_requested=lambda: True)
    return checkpointer


class _Fixed:
    def __init__(self, state):
        self.state = state

    def save(self, state):
        raise AssertionError("an incompatible checkpoint must fail before training")

    def load(self):
        return self.state


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(format=CHECKPOINT_FORMAT + 1), "format"),
        (lambda s: s.update(trainer="train_other"), "train_other"),
        (lambda s: s.pop("rng"), "missing keys \\['rng'\\]"),
        (lambda s: s["config"].update(lr=0.5), "lr=0.5 \\(now 0.01\\)"),
        (lambda s: s["config"].update(seed=3), "seed=3 \\(now 0\\)"),
    ],
)
def test_incompatible_checkpoint_is_refused(data, one_epoch, change, message):
    state = one_epoch.load()
    change(state)
    with pytest.raises(ValueError, match=f"incompatible.*{message}"):
        _run(data, _Fixed(state), max_epochs=2)


def test_checkpoint_of_another_architecture_is_refused(data, one_epoch):
    with pytest.raises(ValueError, match="does not fit this model"):
        _run(data, _Fixed(one_epoch.load()), max_epochs=2, model={**MODEL, "hidden_channels": 5})


def test_not_a_checkpoint_is_refused(data):
    with pytest.raises(ValueError, match="incompatible checkpoint: expected a dict"):
        _run(data, _Fixed([1, 2]), max_epochs=2)


def _plain(value):
    """Whether ``value`` is built only of tensors and plain Python values."""
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (torch.Tensor, bool, int, float, str))


def test_checkpoint_is_weights_only_safe_and_a_snapshot(data, one_epoch):
    raw = one_epoch.raw[-1]
    assert _plain(raw)
    assert all(t.device.type == "cpu" for t in raw["model"].values())
    buffer = io.BytesIO()
    torch.save(raw, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert loaded.keys() == raw.keys()
    assert (loaded["format"], loaded["trainer"], loaded["epoch"]) == (CHECKPOINT_FORMAT,
                                                                      "train_poisson", 1)
    assert set(loaded["rng"]) == {"torch", "cuda", "python", "numpy"}
    assert torch.equal(loaded["rng"]["torch"], raw["rng"]["torch"])
    assert loaded["history"] == raw["history"] and len(loaded["history"]) == 1
    for key, tensor in raw["model"].items():
        assert torch.equal(loaded["model"][key], tensor)


def test_saved_state_does_not_alias_live_tensors(data):
    checkpointer = MemoryCheckpointer()
    _run(data, checkpointer, max_epochs=2)
    first = torch.load(io.BytesIO(checkpointer.blobs[0]), weights_only=True)
    # Epoch 2 changed the model and Adam's moments in place; epoch 1's state must not follow.
    raw = checkpointer.raw[0]
    for live, saved in ((raw["model"], first["model"]), (raw["stopping"]["best_state"], first["stopping"]["best_state"])):
        assert all(torch.equal(live[k], saved[k]) for k in saved)
    for index, moments in first["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(raw["optimizer"]["state"][index][name], value)

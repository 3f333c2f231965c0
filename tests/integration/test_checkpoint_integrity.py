"""Damaged checkpoints: never trained on; the job restarts from scratch with a warning.

Each test leaves a real checkpoint by interrupting a training after epoch 2 (the sleepy trainer
of `chaos_builders`, no sleep), damages the stored file or row the way a disk, a copy or a person
might, and then runs the job in-process with `schemas.run_worker`. The sleepy trainer logs the
epochs it starts, so a resume (epoch 3 first) and a restart (epoch 1 again) are told apart.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from itertools import count
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
DATA = ("chaos_builders.build_tiny_data", {})
MODEL = ("chaos_builders.build_tiny_model", {})
EPOCHS = 4
STOP_AFTER = 2
CHECKPOINT_LOG = "neurofit.schemas.checkpoints"


@pytest.fixture(autouse=True)
def chaos_builders(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")


def select(seeds, tmp_path):
    from neurofit import schemas

    dataset = schemas.Dataset.add(*DATA)
    model = schemas.Model.add(*MODEL)
    trainer = schemas.Trainer.add("chaos_builders.train_sleepy",
                                  {"epochs": EPOCHS, "seconds": 0.0, "log_dir": str(tmp_path)})
    return schemas.TrainingSelection.add_grid(dataset, model, trainer, seeds)


def configs(key):
    """The builder names and configs of one selection, as `pipelines.training.train` takes them."""
    from neurofit import schemas
    from neurofit.pipelines import hashing

    def config(table, kind):
        return hashing.decode_config(bytes((table & key).fetch1(f"{kind}_config")).decode())

    return (key["dataset_fn"], config(schemas.Dataset, "dataset"), key["model_fn"],
            config(schemas.Model, "model"), key["trainer_fn"], config(schemas.Trainer, "trainer"), key["seed"])


def interrupt(key, after=STOP_AFTER):
    """Trains ``key`` until a stop after epoch ``after``, as a SIGTERM would: a real checkpoint."""
    from neurofit import schemas
    from neurofit.pipelines import training
    from neurofit.pipelines.training import Preempted, RunContext
    from neurofit.schemas.checkpoints import DatabaseCheckpointer

    checks = count(1)
    with pytest.raises(Preempted):
        training.train(*configs(key), RunContext(checkpoint=DatabaseCheckpointer(key, interval=0),
                                                 stop_requested=lambda: next(checks) >= after))
    assert (schemas.Checkpoint & key).fetch1("epoch") == after


def reference_weights(key):
    """The weights of an uninterrupted run without any checkpointer."""
    from neurofit.pipelines import training
    from neurofit.pipelines.training import RunContext

    return torch.load(io.BytesIO(training.train(*configs(key), RunContext()).weights), weights_only=True)


def stored_file(key) -> Path:
    """The file holding ``key``'s checkpoint in the local object store."""
    import datajoint as dj

    from neurofit import schemas
    from neurofit.schemas.connection import STORE

    spec = dj.config["stores"][STORE]
    if spec.get("protocol") != "file":
        pytest.skip("damages the stored file on disk: needs a local object store")
    path = Path(spec["location"]) / (schemas.Checkpoint & key).fetch1("state").path
    assert path.is_file(), path
    return path


def starts(tmp_path, seed) -> list[int]:
    path = tmp_path / f"{seed}.log"
    return [int(n) for _, event, n in (line.split() for line in path.read_text().splitlines()) if event == "start"]


def run_job(key):
    from neurofit import schemas

    return schemas.run_worker("TrainedModel", key, device="cpu", max_attempts=1, progress=False)


def assert_restarted_from_scratch(key, tmp_path, caplog, reason):
    """The job finished, ran epoch 1 again, stored the weights of an uninterrupted run and warned."""
    from neurofit import schemas

    assert (schemas.TrainedModel & key), (schemas.TrainedModel.jobs & key).to_dicts()
    # Interrupted run: 1, 2; then the whole training again, not 3, 4 on top of the damaged state.
    assert starts(tmp_path, key["seed"]) == [1, 2, 1, 2, 3, 4]
    weights = torch.load(io.BytesIO(schemas.TrainedModel().fetch_weights(key)), weights_only=True)
    expected = reference_weights(key)
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    assert len(schemas.TrainedModel.Epoch & key) == EPOCHS
    assert not (schemas.Checkpoint & key)
    warnings = [r.getMessage() for r in caplog.records if r.name == CHECKPOINT_LOG and r.levelno == logging.WARNING
                and f"seed={key['seed']}) (epoch" in r.getMessage()]  # this job's own checkpoint
    assert len(warnings) == 1, caplog.text
    text = warnings[0]
    assert f"epoch {STOP_AFTER}" in text, text
    assert "from scratch" in text and reason in text, text
    return text


def _flip(path: Path, key) -> None:
    """Flip one bit of the model weights inside the file: torch.load does not notice."""
    import chaos_builders

    from neurofit.datasets.info import DataInfo

    info = DataInfo(input_shape=(4,), n_neurons={"s": 2})
    weight = chaos_builders.build_tiny_model(info, key["seed"]).weight.detach() + STOP_AFTER
    data = bytearray(path.read_bytes())
    at = data.find(weight.numpy().tobytes())
    assert at >= 0, "the checkpoint's weight tensor was not found in the file"
    data[at + 3] ^= 0x40  # the exponent of the first weight: a wrong value, not a crash
    path.write_bytes(bytes(data))


DAMAGES = {
    "flip": (_flip, "checksum"),
    "truncate": (lambda path, key: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]), "truncated"),
    "garbage": (lambda path, key: path.write_bytes(os.urandom(path.stat().st_size)), "not a neurofit checkpoint"),
    "empty": (lambda path, key: path.write_bytes(b""), "empty"),
    "missing": (lambda path, key: path.unlink(), "could not be read"),
}


@pytest.mark.db
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_discarded_and_the_job_restarts_from_scratch(db, tmp_path, caplog, damage):
    damage_file, reason = DAMAGES[damage]
    seed = 700 + list(DAMAGES).index(damage)
    key = select([seed], tmp_path)[0]
    interrupt(key)
    path = stored_file(key)
    damage_file(path, key)
    caplog.set_level(logging.WARNING, logger=CHECKPOINT_LOG)
    summary = run_job(key)
    assert summary.done["TrainedModel"] == 1 and summary.failed["TrainedModel"] == 0
    text = assert_restarted_from_scratch(key, tmp_path, caplog, reason)
    assert path.name in text  # the stored path is named


@pytest.mark.db
def test_swapped_checkpoints_are_refused_by_both_jobs(db, tmp_path, caplog):
    from neurofit import schemas

    first, second = select([720, 721], tmp_path)
    interrupt(first)
    interrupt(second)
    rows = {k["seed"]: (schemas.Checkpoint & k).fetch1("epoch", "state") for k in (first, second)}
    contents = {seed: (epoch, ref.read()) for seed, (epoch, ref) in rows.items()}
    (schemas.Checkpoint & [first, second]).delete_quick()
    for key, other in ((first, second), (second, first)):
        epoch, data = contents[other["seed"]]
        schemas.Checkpoint().insert1({**key, "epoch": epoch, "state": data})
    caplog.set_level(logging.WARNING, logger=CHECKPOINT_LOG)
    summary = schemas.run_worker("TrainedModel", [first, second], device="cpu", max_attempts=1, progress=False)
    assert summary.done["TrainedModel"] == 2
    for key in (first, second):
        assert_restarted_from_scratch(key, tmp_path, caplog, "another training")


@pytest.mark.db
def test_an_old_checkpoint_without_a_header_is_discarded(db, tmp_path, caplog):
    from neurofit import schemas
    from neurofit.schemas.checkpoints import DatabaseCheckpointer

    key = select([730], tmp_path)[0]
    interrupt(key)
    state = DatabaseCheckpointer(key).load()
    buffer = io.BytesIO()
    torch.save(state, buffer)  # what neurofit wrote before checkpoints had a header
    (schemas.Checkpoint & key).delete_quick()
    schemas.Checkpoint().insert1({**key, "epoch": STOP_AFTER, "state": buffer.getvalue()})
    caplog.set_level(logging.WARNING, logger=CHECKPOINT_LOG)
    assert run_job(key).done["TrainedModel"] == 1
    assert_restarted_from_scratch(key, tmp_path, caplog, "cannot be verified")


@pytest.mark.db
def test_an_intact_checkpoint_still_resumes(db, tmp_path, caplog):
    from neurofit import schemas

    key = select([740], tmp_path)[0]
    interrupt(key)
    caplog.set_level(logging.WARNING, logger=CHECKPOINT_LOG)
    assert run_job(key).done["TrainedModel"] == 1
    assert starts(tmp_path, key["seed"]) == [1, 2, 3, 4]
    weights = torch.load(io.BytesIO(schemas.TrainedModel().fetch_weights(key)), weights_only=True)
    expected = reference_weights(key)
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    assert not [r for r in caplog.records if r.name == CHECKPOINT_LOG]


POISSON_DATA = ("neurofit.synthetic_responses", {"n_neurons": 4, "n_train_images": 24, "n_validation_images": 8,
                                                 "n_test_images": 4, "n_repeats": 2, "image_size": 16,
                                                 "batch_size": 8})
POISSON_MODEL = ("neurofit.gaussian_cnn", {"hidden_channels": 2, "layers": 1, "input_kernel": 5})


@pytest.mark.db
def test_a_checkpoint_the_trainer_refuses_is_discarded_and_the_job_restarts(db, caplog):
    from neurofit import schemas
    from neurofit.schemas.checkpoints import DatabaseCheckpointer

    dataset, model = schemas.Dataset.add(*POISSON_DATA), schemas.Model.add(*POISSON_MODEL)
    trainer = schemas.Trainer.add("neurofit.poisson", {"max_epochs": 3})
    key = schemas.TrainingSelection.add_grid(dataset, model, trainer, [750])[0]
    interrupt(key, after=1)
    state = DatabaseCheckpointer(key).load()
    state["format"] = 0  # written by an older layout of the trainer, intact and with this key
    DatabaseCheckpointer(key, interval=0).save(state)
    caplog.set_level(logging.WARNING, logger=CHECKPOINT_LOG)
    assert run_job(key).done["TrainedModel"] == 1
    weights = torch.load(io.BytesIO(schemas.TrainedModel().fetch_weights(key)), weights_only=True)
    expected = reference_weights(key)
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    assert len(schemas.TrainedModel.Epoch & key) == 3 and not (schemas.Checkpoint & key)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == CHECKPOINT_LOG)
    assert "seed=750) (epoch 1," in text and "format 0" in text and "from scratch" in text, text


def test_a_checkpoint_of_another_architecture_does_not_leave_its_weights_behind():
    # load_state_dict copies the tensors that fit before it fails on those that do not: the
    # restarted training must begin from the freshly built weights, not from that mixture.
    from neurofit.datasets.synthetic_responses import build_synthetic_responses
    from neurofit.models.encoding import build_gaussian_cnn
    from neurofit.pipelines.trainers import train_poisson
    from neurofit.pipelines.training import Preempted, TrainingContext

    data = build_synthetic_responses(0, **{k: v for k, v in POISSON_DATA[1].items()})
    small, large = POISSON_MODEL[1], {**POISSON_MODEL[1], "hidden_channels": 3}

    class Memory:
        def __init__(self, state=None):
            self.state, self.discarded = state, []

        def save(self, state):
            self.state = state

        def load(self):
            return self.state

        def discard(self, reason):
            self.discarded.append(reason)
            self.state = None

    other = Memory()
    with pytest.raises(Preempted):
        train_poisson(build_gaussian_cnn(data.info, 0, **large), data, 0,
                      TrainingContext(checkpoint=other, stop_requested=lambda: True), max_epochs=2)
    reference = train_poisson(build_gaussian_cnn(data.info, 0, **small), data, 0, TrainingContext(), max_epochs=2)
    memory = Memory(other.state)
    result = train_poisson(build_gaussian_cnn(data.info, 0, **small), data, 0, TrainingContext(checkpoint=memory),
                           max_epochs=2)
    assert len(memory.discarded) == 1 and "does not fit this model" in memory.discarded[0]
    assert [r["epoch"] for r in result.history] == [1, 2]
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], tensor), name


def neurofit(*args):
    env = {**os.environ, "NEUROFIT_ALLOWED_MODULES": "chaos_builders",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", *args],
                          check=False, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.db
@pytest.mark.slow
def test_jobs_retry_fresh_drops_the_checkpoint_that_makes_a_job_fail(db, tmp_path, capsys):
    from neurofit import schemas
    from neurofit.schemas.checkpoints import DatabaseCheckpointer

    key = select([760], tmp_path)[0]
    interrupt(key)
    # Intact and verified, but the trainer cannot use it (no history): the job fails every time.
    state = DatabaseCheckpointer(key).load()
    DatabaseCheckpointer(key, interval=0).save({"epoch": state["epoch"], "model": state["model"]})
    assert run_job(key).failed["TrainedModel"] == 1
    assert (schemas.TrainedModel.jobs & key).fetch1("status") == "error"

    from neurofit.schemas.cli import _parser

    with pytest.raises(SystemExit):
        _parser().parse_args(["jobs", "retry", "--help"])
    assert "--fresh" in capsys.readouterr().out
    plain = neurofit("jobs", "retry", "TrainedModel")
    assert plain.returncode == 0, plain.stderr
    assert (schemas.Checkpoint & key) and run_job(key).failed["TrainedModel"] == 1  # retried, failed again

    fresh = neurofit("jobs", "retry", "TrainedModel", "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "1 checkpoint" in fresh.stdout, fresh.stdout
    assert not (schemas.Checkpoint & key)
    assert (schemas.TrainedModel.jobs & key).fetch1("status") == "pending"
    assert run_job(key).done["TrainedModel"] == 1
    assert starts(tmp_path, key["seed"])[-EPOCHS:] == [1, 2, 3, 4]

"""Bad configs give neurofit errors, the same on every backend, and never leave a row behind.

Run on the embedded PostgreSQL by default, and on the PostgreSQL and MariaDB servers with
NEUROFIT_TEST_BACKEND=postgres / mariadb: the point is that every backend accepts and refuses
exactly the same configs.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurofit.pipelines.hashing import ConfigError
from neurofit.pipelines.registry import RegistryError, register

pytestmark = pytest.mark.db

HERE = Path(__file__).resolve().parent


@register("model", "tests.anything")
def build_anything(data_info, seed, *, value=None, extra=None):
    """Unannotated: any value passes the type checks, so only the bounds and the database judge."""
    return


def _nested(depth: int) -> list:
    root = node = []
    for _ in range(depth - 1):
        node.append([])
        node = node[0]
    return root


def rows() -> list[int]:
    from neurofit import schemas

    return [len(table()) for table in (schemas.Dataset, schemas.Model, schemas.Trainer)]


# The config is {"value": ..., "extra": None}: 5 values besides the items of a list in "value".
REFUSED = {
    "NUL in a string": ({"value": "a\x00b"}, "contains a NUL character"),
    "NUL in a key": ({"value": {"a\x00": 1}}, "has a key that contains a NUL character"),
    "lone surrogate": ({"value": "x\ud800"}, "contains the lone surrogate '\\ud800'"),
    "lone surrogate in a key": ({"value": {"\udfff": 1}}, "lone surrogate"),
    "NaN in an array": ({"value": np.array([1.0, np.nan])}, "array holding NaN or infinity"),
    "inf in an array": ({"value": np.array([[np.inf]], dtype=np.float32)}, "array holding NaN or infinity"),
    "NaN": ({"value": [float("nan")]}, "NaN and infinity cannot be hashed"),
    "21 levels": ({"value": _nested(20)}, "is nested more than 20 levels deep"),
    "31 levels": ({"value": _nested(30)}, "is nested more than 20 levels deep"),
    "21 levels with an array": ({"value": [np.zeros((1,) * 19)]}, "is nested more than 20 levels deep"),
    "10,001 values": ({"value": [0] * 9_996}, "more than 10,000 values"),
    "64 KiB + 1": ({"value": "a" * (65_536 - 25 + 1)}, "more than 64 KiB of canonical text"),
    "huge integer": ({"value": 2**20_000}, "more than 14000 bits"),
}


@pytest.mark.parametrize("config, fragment", REFUSED.values(), ids=REFUSED.keys())
def test_values_a_backend_cannot_store_are_refused_on_every_backend(db, config, fragment):
    from neurofit import schemas

    before = rows()
    with pytest.raises(ConfigError) as error:
        schemas.Model.add("tests.anything", config)
    assert fragment in str(error.value)
    assert rows() == before


ACCEPTED = {
    "20 levels": {"value": _nested(19)},
    "20 levels with an array": {"value": [np.zeros((1,) * 18)]},
    "10,000 values": {"value": list(range(9_995))},
    "64 KiB": {"value": "a" * (65_536 - 25)},
    "unicode beyond the BMP": {"value": {"µ-cell 🧠": "Purkinje ✓ \U0001f9ea", "": "empty key"}},
    "numbers": {"value": [2**70, -(2**63), 1e-300, -0.0, 1.7976931348623157e308, True, None]},
    "arrays": {"value": np.arange(6, dtype=np.float32).reshape(2, 3), "extra": np.array([True])},
}


@pytest.mark.parametrize("config", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_configs_at_the_bounds_are_stored_exactly_on_every_backend(db, config):
    from neurofit import schemas
    from neurofit.pipelines import hashing

    key = schemas.Model.add("tests.anything", config, comment="at the bounds")
    stored = schemas.Model.config(key)
    assert hashing.config_hash(stored) == key["model_hash"]  # the hash recomputes from the row
    queryable = (schemas.Model & key).fetch1("model_json")
    assert same_json(queryable, hashing.to_queryable({"extra": None, **config}))


def same_json(a, b) -> bool:
    """Equal as JSON for queries: PostgreSQL's jsonb normalises numbers (1.8e308 comes back as an
    int of 309 digits), so numbers compare as floats. The exact value is the `_config` column."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b and type(a) is type(b)


def test_one_float_string_and_bool_stay_four_rows_where_the_builder_allows_them(db):
    from neurofit import schemas

    values = [1, 1.0, "1", True]
    keys = [schemas.Model.add("tests.anything", {"value": v}, comment="typed") for v in values]
    assert len({k["model_hash"] for k in keys}) == 4
    for key, value in zip(keys, values):
        stored = schemas.Model.config(key)["value"]
        assert stored == value and type(stored) is type(value)


def test_an_int_for_a_float_is_stored_as_the_int_it_is(db):
    """The int-for-float policy: accepted, not converted, so keys made before type checks hold."""
    from neurofit import schemas

    as_int = schemas.Trainer.add("neurofit.poisson", {"lr": 1})
    as_float = schemas.Trainer.add("neurofit.poisson", {"lr": 1.0})
    assert as_int != as_float
    assert type(schemas.Trainer.config(as_int)["lr"]) is int
    assert type(schemas.Trainer.config(as_float)["lr"]) is float
    with pytest.raises(RegistryError, match="'max_epochs' must be int, got True"):
        schemas.Trainer.add("neurofit.poisson", {"max_epochs": True})


def test_comments_are_checked_before_the_database(db):
    from neurofit import schemas

    before = rows()
    with pytest.raises(ConfigError, match="comment is 1,025 characters long; at most 1,024 fit"):
        schemas.Model.add("tests.anything", {"value": "c1"}, comment="x" * 1025)
    with pytest.raises(ConfigError, match="comment contains a NUL character"):
        schemas.Model.add("tests.anything", {"value": "c2"}, comment="a\x00")
    with pytest.raises(ConfigError, match="comment contains the lone surrogate"):
        schemas.Model.add("tests.anything", {"value": "c3"}, comment="\ud800")
    assert rows() == before
    comment = "Ωμέγα 🧠 " + "y" * (1024 - 8)
    key = schemas.Model.add("tests.anything", {"value": "c4"}, comment=comment)
    assert (schemas.Model & key).fetch1("comment") == comment


def test_unknown_keys_of_different_types_are_named(db):
    from neurofit import schemas

    before = rows()
    with pytest.raises(RegistryError, match=r"unknown argument\(s\) \[1, 'a'\]"):
        schemas.Model.add("neurofit.gaussian_cnn", {1: 2, "a": 3})
    assert rows() == before


def cli(capsys, *args) -> tuple[int, str, str]:
    from neurofit.schemas import cli as command

    code = command.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "content, fragments",
    [
        ("max_epochs: '1'\n", ["hyperparameter 'max_epochs' must be int, got '1' (str)"]),
        ("lr: 0.1\nlr: 0.01\n", ["the key 'lr' appears twice", "line 1, column 1 and line 2, column 1"]),
        ("patience: three\n", ["'patience' must be int, got 'three'"]),
        (b"max_epochs: 3 # caf\xe9\n", ["is not UTF-8 text: byte 0xe9 on line 1"]),
        ("grad_clip: [&a0 [1.0, 1.0, 1.0], " + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]"
                                                          for i in range(1, 6)) + "]\n", ["more than 10,000 values"]),
    ],
    ids=["string for int", "duplicate key", "word for int", "not UTF-8", "alias bomb"],
)
def test_neurofit_add_names_the_file_and_the_problem(db, tmp_path, capsys, content, fragments):
    path = tmp_path / "trainer.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = rows()
    code, _, err = cli(capsys, "add", "trainer", "neurofit.poisson", "--config", str(path))
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert all(fragment in err for fragment in fragments), err
    if "file" in err.split(":")[1]:
        assert str(path) in err
    assert rows() == before


def test_neurofit_add_refuses_a_long_comment(db, capsys):
    before = rows()
    code, _, err = cli(capsys, "add", "trainer", "neurofit.poisson", "--comment", "z" * 1025)
    assert code == 2 and "error: --comment is 1,025 characters long; at most 1,024 fit" in err, err
    assert rows() == before


def test_1e_minus_3_is_a_float_at_neurofit_add(db, tmp_path, capsys):
    from neurofit import schemas

    path = tmp_path / "lr.yaml"
    path.write_text("lr: 1e-3\nmax_epochs: 2\n")
    code, out, err = cli(capsys, "add", "trainer", "neurofit.poisson", "--config", str(path))
    assert code == 0, err
    trainer_hash = out.split("trainer_hash=")[1].split()[0]
    stored = schemas.Trainer.config({"trainer_hash": trainer_hash})["lr"]
    assert stored == 0.001 and type(stored) is float
    key = schemas.Trainer.key_for("neurofit.poisson", {"lr": 0.001, "max_epochs": 2})[0]
    assert key["trainer_hash"] == trainer_hash


@pytest.mark.slow
def test_max_epochs_as_a_string_is_refused_by_the_neurofit_command(db, tmp_path):
    """As a user runs it: a separate process, a clear message, exit code 2, no row."""
    path = tmp_path / "trainer.yaml"
    path.write_text('max_epochs: "1"\n')
    before = rows()
    result = subprocess.run(
        [sys.executable, "-m", "neurofit.schemas.cli", "add", "trainer", "neurofit.poisson", "--config", str(path)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: config for trainer 'neurofit.poisson': hyperparameter 'max_epochs' "
                                    "must be int, got '1' (str)"), result.stderr
    assert "Traceback" not in result.stderr
    assert rows() == before


BROKEN_LAB = "nf_broken_lab"
HEALTHY = textwrap.dedent("""
    def train(model, data, seed, context, *, epochs=1):
        raise RuntimeError("never runs: this module is broken before any worker starts")
""")
BROKEN = "RATE = 1 / 0  # a bug at import, not an ImportError\n" + HEALTHY


def test_neurofit_add_on_a_module_that_fails_at_import_is_a_clear_error(db, tmp_path, monkeypatch, capsys):
    (tmp_path / f"{BROKEN_LAB}.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", BROKEN_LAB)
    before = rows()
    try:
        code, _, err = cli(capsys, "add", "trainer", f"{BROKEN_LAB}.train")
    finally:
        sys.modules.pop(BROKEN_LAB, None)
    assert code == 2, err
    assert (f"error: trainer '{BROKEN_LAB}.train': importing module '{BROKEN_LAB}' failed with "
            "ZeroDivisionError: division by zero. Fix that module.") in err
    assert rows() == before


@pytest.mark.slow
def test_one_broken_module_fails_only_its_own_jobs(db, tmp_path, monkeypatch):
    """A Trainer row whose module now raises at import: the worker starts, runs the healthy job,
    and the broken job fails with a message naming the module."""
    from neurofit import schemas

    (tmp_path / f"{BROKEN_LAB}.py").write_text(HEALTHY)  # healthy when the row is inserted
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", f"chaos_builders,{BROKEN_LAB}")
    dataset = schemas.Dataset.add("chaos_builders.build_tiny_data", {})
    model = schemas.Model.add("chaos_builders.build_tiny_model", {})
    healthy = schemas.Trainer.add("chaos_builders.train_sleepy", {"epochs": 1, "seconds": 0.0, "log_dir": str(tmp_path)})
    broken = schemas.Trainer.add(f"{BROKEN_LAB}.train", {})
    sys.modules.pop(BROKEN_LAB, None)
    (tmp_path / f"{BROKEN_LAB}.py").write_text(BROKEN)  # then a bug is pushed
    for cache in tmp_path.glob("__pycache__"):
        for compiled in cache.iterdir():
            compiled.unlink()
    keys = schemas.TrainingSelection.add_grid(dataset, model, [healthy, broken], [41])
    good = next(k for k in keys if k["trainer_hash"] == healthy["trainer_hash"])
    bad = next(k for k in keys if k["trainer_hash"] == broken["trainer_hash"])
    where = f"trainer_hash in ('{healthy['trainer_hash']}', '{broken['trainer_hash']}')"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEUROFIT_ALLOWED_MODULES": f"chaos_builders,{BROKEN_LAB}",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    try:
        worker = subprocess.run(
            [sys.executable, "-m", "neurofit.schemas.cli", "worker", "TrainedModel", "--device", "cpu",
             "--max-attempts", "1", "--poll", "1", "--heartbeat", "0.5", "--where", where],
            capture_output=True, text=True, env=env, timeout=240,
        )
        output = worker.stdout + worker.stderr
        assert worker.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert schemas.TrainedModel & good, output[-3000:]
        assert not schemas.TrainedModel & bad
        message = (schemas.TrainedModel.jobs.errors & bad).fetch1("error_message")
        assert f"importing module '{BROKEN_LAB}' failed with ZeroDivisionError" in message, message
        print(f"worker ran both jobs in {time.monotonic() - started:.1f} s: {worker.stdout.strip().splitlines()[-1]}")
    finally:
        sys.modules.pop(BROKEN_LAB, None)
        (schemas.TrainingSelection & keys).delete(prompt=False)
        (schemas.TrainedModel.jobs & bad).delete_quick()
        (schemas.Trainer & broken).delete(prompt=False)  # other tests' workers must not meet it

"""The `neurofit` command, run as a user would (a subprocess against the test database)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.db


def neurofit(*args):
    return subprocess.run(
        [sys.executable, "-m", "neurofit.schemas.cli", *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )


def test_add_from_yaml_is_idempotent(db, tmp_path):
    from neurofit import schemas

    config = tmp_path / "model.yaml"
    config.write_text("hidden_channels: 6\nlayers: 1\n")
    first = neurofit("add", "model", "neurofit.gaussian_cnn", "--config", str(config), "--comment", "cli")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("added")
    second = neurofit("add", "model", "neurofit.gaussian_cnn", "--config", str(config))
    assert second.stdout.startswith("exists")
    model_hash = first.stdout.split("model_hash=")[1].split()[0]
    assert second.stdout.split("model_hash=")[1].split()[0] == model_hash
    assert schemas.Model.config({"model_hash": model_hash})["hidden_channels"] == 6


def test_os_system_is_refused_with_a_clear_error(db):
    from neurofit import schemas

    before = len(schemas.Model())
    result = neurofit("add", "model", "os.system")
    assert result.returncode == 2
    assert "no model builder named 'os.system'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(schemas.Model()) == before


def test_bad_config_file_is_named(db, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    result = neurofit("add", "trainer", "neurofit.poisson", "--config", str(bad))
    assert result.returncode == 2
    assert "must hold a mapping" in result.stderr and "bad.yaml" in result.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_epoch: 3\n")
    result = neurofit("add", "trainer", "neurofit.poisson", "--config", str(typo))
    assert result.returncode == 2 and "unknown argument(s) ['max_epoch']" in result.stderr


def test_failed_jobs_are_visible_in_status(db):
    from neurofit import schemas
    from neurofit.pipelines.registry import register

    @register("trainer", "tests.always_fails")
    def always_fails(model, data, seed, context, *, message="boom"):
        raise RuntimeError(f"planted failure: {message}")

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", {"n_neurons": 4, "n_train_images": 20,
                                  "n_validation_images": 10, "n_test_images": 5, "n_repeats": 2})
    model = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 4, "layers": 1})
    trainer = schemas.Trainer.add("tests.always_fails", {})
    key = schemas.TrainingSelection.add_grid(dataset, model, trainer, [3])[0]
    result = schemas.populate("TrainedModel", key, display_progress=False)
    assert len(result["TrainedModel"]["error_list"]) == 1
    assert not (schemas.TrainedModel & key)  # nothing half-written
    assert schemas.status().loc["TrainedModel", "error"] >= 1
    errors = schemas.errors()
    assert errors["error_message"].str.contains("planted failure: boom").any()
    # The CLI shows the message too (the trainer is unknown in that process, but the error row is there).
    shown = neurofit("status")
    assert shown.returncode == 0 and "planted failure: boom" in shown.stdout
    (schemas.TrainingSelection & key).delete(prompt=False)
    schemas.TrainedModel.jobs.errors.delete()


def test_select_by_hash_prefix(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", {"n_neurons": 5})
    model = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 5})
    trainer = schemas.Trainer.add("neurofit.poisson", {"max_epochs": 5})
    result = neurofit("select", "--dataset", dataset["dataset_hash"][:10], "--model", model["model_hash"][:10],
                      "--trainer", trainer["trainer_hash"][:10], "--seed", "11", "12")
    assert result.returncode == 0, result.stderr
    assert "selected 2 combination(s)" in result.stdout
    assert len(schemas.TrainingSelection & dataset & model & trainer) == 2
    bad = neurofit("select", "--dataset", "zz'; drop", "--model", "0", "--trainer", "0", "--seed", "1")
    assert bad.returncode == 2 and "hexadecimal" in bad.stderr
    (schemas.TrainingSelection & dataset & model & trainer).delete(prompt=False)


def _canary_table() -> str:
    """A table outside neurofit's definitions in the test schema, as a target for injected SQL."""
    import datajoint as dj

    from neurofit import schemas

    connection = dj.conn()
    quote = '"' if connection.adapter.backend == "postgresql" else "`"
    name = f"{quote}{schemas.schema.database}{quote}.{quote}canary{quote}"
    connection.query(f"CREATE TABLE IF NOT EXISTS {name} (x int)")
    return name


def _canary_exists() -> bool:
    import datajoint as dj

    from neurofit import schemas

    found = dj.conn().query(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'canary'",
        args=(schemas.schema.database,),
    ).fetchone()[0]
    return bool(found)


@pytest.mark.parametrize("command", ["worker", "submit"])
def test_where_cannot_run_stacked_sql(db, command):
    canary = _canary_table()
    try:
        hostile = f"seed = 1))); DROP TABLE {canary}; --"
        extra = ["--workers", "1", "--executor", "local"] if command == "submit" else ["--max-jobs", "1"]
        result = neurofit(command, *extra, "--where", hostile)
        assert _canary_exists(), "the --where text ran as SQL and dropped a table"
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--where" in result.stderr and "';" in result.stderr and "Traceback" not in result.stderr
        ok = neurofit("worker", "TrainedModel", "--max-jobs", "0", "--where", "seed IN (987654) AND model_fn LIKE 'x%'")
        assert ok.returncode == 0, ok.stdout + ok.stderr
    finally:
        import datajoint as dj

        dj.conn().query(f"DROP TABLE IF EXISTS {canary}")

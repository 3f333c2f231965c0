"""The object store on a real S3 server over HTTP (moto's standalone server on 127.0.0.1).

Training (weights, checkpoints, dataset artefacts), `load_model`, `gc --delete` and the
unreachable-bucket check all run through it, in a process whose ``neurofit`` store is the
bucket. The store's secret key never reaches a database row.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]
SECRET = f"secret-{uuid.uuid4().hex}"  # a credential no row may ever hold

SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    import boto3
    from neurofit import schemas
    from neurofit.schemas import cli, extensions
    endpoint, secret = sys.argv[1], sys.argv[2]
    backend = schemas.activate()
    data = schemas.Dataset.add("neurofit.synthetic_responses", {"n_neurons": 8, "image_size": 16, "n_train_images": 64,
                               "n_validation_images": 32, "n_test_images": 16, "n_repeats": 2})
    model = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 4, "layers": 1})
    trainer = schemas.Trainer.add("neurofit.poisson", {"max_epochs": 1})
    keys = schemas.TrainingSelection.add_grid(data, model, trainer, [1, 2])
    schemas.populate("TrainedModel", display_progress=False)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="lab", aws_secret_access_key=secret,
                      region_name="us-east-1")
    def objects():
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="neurofit").get("Contents", []))
    report = {"store": backend.store, "trained": len(schemas.TrainedModel & keys), "objects_after_training": objects()}
    report["load_model_params"] = sum(p.numel() for p in schemas.load_model(keys[0], device="cpu").parameters())
    weights = (schemas.TrainedModel & keys[1]).fetch1("weights").path
    (schemas.TrainedModel & keys[1]).delete(prompt=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["gc", "--delete", "--grace", "0"])
    report["gc"] = out.getvalue()
    report["objects_after_gc"] = objects()
    report["deleted_weights"] = weights
    # Every stored value of every table, as text: the secret must be in none of them.
    texts = []
    for schema in extensions.active_schemas():
        for name in schema.list_tables():
            texts.append(schema.get_table(name).to_pandas().to_string())
    report["secret_in_rows"] = any(secret in text for text in texts)
    for schema in reversed(extensions.active_schemas()):
        schema.drop(prompt=False)
    print("REPORT " + json.dumps(report))
""")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free port of 127.0.0.1, with an empty bucket ``neurofit``."""
    import boto3

    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="lab", aws_secret_access_key=SECRET,
                          region_name="us-east-1")
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket="neurofit")
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.3)
    yield endpoint, port
    server.terminate()
    server.wait(10)
    log.close()


def _env(port, bucket="neurofit"):
    # The secret travels in DJ_STORES here on purpose: even then no row may hold it.
    stores = {"neurofit": {"protocol": "s3", "endpoint": f"127.0.0.1:{port}", "bucket": bucket, "location": "objects",
                           "access_key": "lab", "secret_key": SECRET, "secure": False}}
    return {**os.environ, "DJ_STORES": json.dumps(stores), "NEUROFIT_PREFIX": f"s3_{uuid.uuid4().hex[:8]}_",
            "OMP_NUM_THREADS": "1", "NEUROFIT_CHECKPOINT_INTERVAL": "0", "NEUROFIT_WANDB": "disabled"}


def test_training_loading_and_gc_through_s3(db, s3_server):
    endpoint, port = s3_server
    result = subprocess.run([sys.executable, "-c", SCRIPT, endpoint, SECRET], env=_env(port), capture_output=True,
                            text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report["store"].startswith("s3://neurofit/objects")
    assert report["trained"] == 2 and report["load_model_params"] > 0
    before, after = report["objects_after_training"], report["objects_after_gc"]
    # Streamed weights (DataJoint's staged insert) lie under the class name, bytes under the table name.
    assert any(("/TrainedModel/" in key or "/__trained_model/" in key) and "/weights_" in key for key in before)
    assert any("/dataset_artefact/" in key for key in before)
    assert any("/checkpoint/" in key for key in before)  # checkpoints were written there, then orphaned
    assert "objects/" + report["deleted_weights"] in before and "objects/" + report["deleted_weights"] not in after
    assert not any("/checkpoint/" in key for key in after)
    assert sum("/weights_" in key for key in after) == 1 and "deleted" in report["gc"]
    assert report["secret_in_rows"] is False


def test_unreachable_bucket_fails_before_any_job(db, s3_server):
    _, port = s3_server
    cases = ((_env(port, bucket="no-such-bucket"), "bucket 'no-such-bucket' does not exist"),
             (_env(_free_port()), "cannot reach the 'neurofit' store"))
    # Both workers at once: each spends its time importing, not waiting on the other.
    workers = [(subprocess.Popen([sys.executable, "-m", "neurofit.schemas.cli", "worker", "--max-jobs", "1"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), expected)
               for env, expected in cases]
    for worker, expected in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 2, stderr[-2000:]
        assert expected in stderr and "DJ_STORES" in stderr
        assert "Traceback" not in stderr

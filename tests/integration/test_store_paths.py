"""A row's stored path is data: one that leaves the store is refused before any file is opened.

The rows are forged the way an attacker (or a buggy script) would: by editing the JSON metadata of
the store-backed column with SQL, on whichever backend runs the tests.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent

# Opens seen by the interpreter while a test records them. Audit hooks cannot be removed, so one
# hook is installed for the module and records only between `_recording` on and off.
_opened: list = []
_recording = [False]


def _audit(event, args):
    if _recording[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(args[0])


sys.addaudithook(_audit)


def _opened_files() -> set[str]:
    return {os.path.realpath(os.fsdecode(path)) for path in _opened}


def _store_root() -> Path:
    import datajoint as dj

    return Path(dj.config.get_store_spec("neurofit")["location"]).resolve()


@pytest.fixture(autouse=True)
def chaos_builders(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")


@pytest.fixture(scope="module")
def trained(db):
    """One tiny trained model of this module's own (its trainer hash is unique)."""
    from neurofit import schemas

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        patch.setenv("NEUROFIT_ALLOWED_MODULES", "chaos_builders")
        dataset = schemas.Dataset.add("chaos_builders.build_tiny_data", {})
        model = schemas.Model.add("chaos_builders.build_tiny_model", {})
        trainer = schemas.Trainer.add("chaos_builders.train_sleepy", {"log_dir": "", "epochs": 1, "seconds": 0.01})
        key = schemas.TrainingSelection.add_grid(dataset, model, trainer, [950])[0]
        schemas.populate(["TrainedModel"], key, display_progress=False, suppress_errors=False)
    yield key
    (schemas.TrainingSelection & key).delete(prompt=False)


def _raw(table, key, column) -> dict:
    """The column's stored JSON metadata, read past the codec."""
    (value,) = [row[column] for row in (table & key).proj(column).cursor(as_dict=True)]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _forge(table, key, values: dict) -> None:
    """UPDATE one row's columns directly with SQL; dict values are written as JSON."""
    import datajoint as dj

    quote = dj.conn().adapter.quote_identifier  # `values` is a reserved word in MySQL
    key = {k: v for k, v in key.items() if k in table.primary_key}
    assignments = ", ".join(f"{quote(column)} = %s" for column in values)
    where = " AND ".join(f"{quote(column)} = %s" for column in key)
    args = [json.dumps(v) if isinstance(v, dict) else v for v in values.values()] + list(key.values())
    dj.conn().query(f"UPDATE {table.full_table_name} SET {assignments} WHERE {where}", args=args)


def _forged_paths(secret: Path, store: Path) -> dict[str, str]:
    link = store / "forged_link_to_secret"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(secret)
    return {
        "climbs out with ..": os.path.relpath(secret, store),
        "absolute": str(secret),
        "symbolic link inside the store": link.name,
    }


@pytest.mark.db
def test_forged_weights_paths_are_refused_and_the_file_is_never_opened(db, trained, tmp_path):
    from neurofit import schemas
    from neurofit.pipelines.weights import checksum
    from neurofit.schemas.storage import StoredPathError

    secret = tmp_path / "secret_outside_the_store.bin"
    secret.write_bytes(b"not weights: a file outside the store\n")
    # The checksum matches the secret, so only the path check can stop the read.
    original = {"weights": _raw(schemas.TrainedModel, trained, "weights"),
                "weights_sha256": (schemas.TrainedModel & trained).fetch1("weights_sha256")}
    try:
        for case, forged in _forged_paths(secret, _store_root()).items():
            _forge(schemas.TrainedModel, trained, {"weights": {**original["weights"], "path": forged},
                                                   "weights_sha256": checksum(secret.read_bytes())})
            _opened.clear()
            _recording[0] = True
            try:
                with pytest.raises(StoredPathError) as refused:
                    schemas.TrainedModel().fetch_weights(trained)
                with pytest.raises(StoredPathError):
                    schemas.load_model(trained, device="cpu")
            finally:
                _recording[0] = False
            message = str(refused.value)
            assert forged in message and "outside the 'neurofit' store" in message, (case, message)
            assert "delete the row" in message, case
            assert str(secret.resolve()) not in _opened_files(), f"{case}: the file outside the store was opened"
    finally:
        _forge(schemas.TrainedModel, trained, original)
        (_store_root() / "forged_link_to_secret").unlink(missing_ok=True)
    # The recorder does see a real read: the restored row's weights file is opened and loads.
    _opened.clear()
    _recording[0] = True
    try:
        data = schemas.TrainedModel().fetch_weights(trained)
    finally:
        _recording[0] = False
    assert len(data) == (schemas.TrainedModel & trained).fetch1("weights_bytes")
    assert str(Path((schemas.TrainedModel & trained).fetch1("weights").full_path).resolve()) in _opened_files()


@pytest.mark.db
def test_a_forged_array_path_is_refused_by_the_analysis_readers(db, tmp_path):
    from neurofit import schemas
    from neurofit.schemas.storage import StoredPathError

    key = schemas.StimulusSet.add("forged_paths", np.zeros((4, 1, 2, 2), np.float32), {"label": np.arange(4.0)})
    secret = tmp_path / "secret.npy"
    np.save(secret, np.full(4, 7.0))  # same shape and dtype: only the path check can stop it
    feature = {**key, "feature": "label"}
    original = _raw(schemas.StimulusSet.Feature, feature, "values")
    try:
        _forge(schemas.StimulusSet.Feature, feature, {"values": {**original, "path": os.path.relpath(secret, _store_root())}})
        _opened.clear()
        _recording[0] = True
        try:
            with pytest.raises(StoredPathError, match="outside the 'neurofit' store"):
                schemas.StimulusSet.features(key)
        finally:
            _recording[0] = False
        assert str(secret.resolve()) not in _opened_files()
    finally:
        _forge(schemas.StimulusSet.Feature, feature, {"values": original})
    np.testing.assert_array_equal(schemas.StimulusSet.features(key)["label"], np.arange(4.0))
    (schemas.StimulusSet & key).delete(prompt=False)


@pytest.mark.parametrize("path", ["../objects2/x", "_schema/../../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a\\..\\b"])
def test_bucket_keys_that_leave_the_store_location_are_refused(path):
    from datajoint.objectref import ObjectRef
    from datajoint.storage import StorageBackend

    from neurofit.schemas.storage import StoredPathError, check_stored_path

    spec = {"protocol": "s3", "endpoint": "s3.example.org", "bucket": "lab", "location": "objects"}
    ref = ObjectRef.from_json({"path": path, "size": 1, "store": "neurofit"}, backend=StorageBackend(spec))
    with pytest.raises(StoredPathError, match="plain key"):
        check_stored_path(ref, spec)
    good = ObjectRef.from_json({"path": "_schema/s/t/k/weights_ab12.bin", "size": 1}, backend=StorageBackend(spec))
    assert check_stored_path(good, spec) == "lab/objects/_schema/s/t/k/weights_ab12.bin"
    elsewhere = StorageBackend({**spec, "bucket": "other"})
    with pytest.raises(StoredPathError, match="another bucket"):
        check_stored_path(ObjectRef.from_json({"path": "_schema/x", "size": 1}, backend=elsewhere), spec)

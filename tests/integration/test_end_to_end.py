"""The whole foundation slice on a real database: configs -> selection -> training -> scores."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.db

# Small enough for seconds per training, big enough that a trained model beats chance clearly.
DATA = {"n_neurons": 12, "n_train_images": 300, "n_validation_images": 60, "n_test_images": 30, "n_repeats": 4}
MODEL = {"hidden_channels": 8, "layers": 2}
TRAINER = {"max_epochs": 6}


@pytest.fixture(scope="module")
def trained(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", DATA)
    model = schemas.Model.add("neurofit.gaussian_cnn", MODEL)
    trainer = schemas.Trainer.add("neurofit.poisson", TRAINER)
    keys = schemas.TrainingSelection.add_grid(dataset, model, trainer, [7, 8])
    results = schemas.populate(["TrainedModel", "Performance"], keys, display_progress=False, suppress_errors=False)
    return {"keys": keys, "results": results, "dataset": dataset, "model": model, "trainer": trainer}


def test_populate_trains_exactly_the_selection(db, trained):
    from neurofit import schemas

    assert trained["results"]["TrainedModel"]["success_count"] == 2
    assert trained["results"]["Performance"]["success_count"] == 2
    assert len(schemas.TrainedModel & trained["keys"]) == 2
    # An unselected config is never trained.
    schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 4, "layers": 1})
    unselected = {"model_hash": schemas.Model.key_for("neurofit.gaussian_cnn", {"hidden_channels": 4, "layers": 1})[0]["model_hash"]}
    assert not (schemas.TrainingSelection & unselected)
    again = schemas.populate(["TrainedModel"], trained["keys"], display_progress=False)
    assert again["TrainedModel"]["success_count"] == 0
    assert not (schemas.TrainedModel & unselected)
    status = schemas.status("TrainedModel")
    assert status.loc["TrainedModel", "done"] >= 2


def test_rows_hold_history_provenance_and_weights_outside_the_table(db, trained):
    from neurofit import schemas

    key = trained["keys"][0]
    row = (schemas.TrainedModel & key).fetch1()
    epochs = (schemas.TrainedModel.Epoch & key).to_pandas()
    assert row["n_epochs"] == len(epochs) >= 1
    assert list(epochs.reset_index()["epoch"]) == list(range(1, len(epochs) + 1))
    assert np.isclose(row["score"], epochs["validation_score"].max())
    assert row["versions"]["torch_version"] == torch.__version__
    assert row["device"] == "cpu" and row["host"]
    assert row["weights_bytes"] > 1000
    # The weights are a file in the object store, not a blob in the row.
    assert row["weights"].exists()
    assert len(row["weights"].read()) == row["weights_bytes"]


def test_load_model_reproduces_the_trained_predictions(db, trained):
    from neurofit import schemas
    from neurofit.pipelines import performance, training

    key = trained["keys"][0]
    model = schemas.load_model(key, device="cpu")
    assert not model.training
    data = training.build_data("neurofit.synthetic_responses", schemas.Dataset.config(key), key["seed"])
    scores = performance.evaluate(model, data, device="cpu")
    stored = (schemas.Performance.Session & key).to_dicts()
    assert len(stored) == len(scores)
    for row in stored:
        np.testing.assert_allclose(scores[row["session"]]["single_trial_correlation"], row["single_trial_correlation"], rtol=1e-6, atol=1e-9)


def test_trained_models_beat_chance_and_stay_below_the_ceiling(db, trained):
    from neurofit import schemas

    frame = (schemas.Performance & trained["keys"]).to_pandas()
    ceiling = (schemas.TrainedModel & trained["keys"][0]).fetch1("data_info")["ceiling"]
    assert (frame["single_trial_correlation"] > 0.15).all(), frame
    assert (frame["single_trial_correlation"] <= ceiling["single_trial_correlation"] + 0.05).all()
    assert (frame["oracle_correlation"] > 0).all()


def test_same_seed_same_weights(db, trained):
    """A second training of a selected key (after deleting it) gives bit-identical weights on CPU."""
    from neurofit import schemas

    key = trained["keys"][1]
    before = (schemas.TrainedModel & key).fetch1("weights_sha256")
    (schemas.TrainedModel & key).delete(prompt=False)
    assert not (schemas.Performance & key)  # deleting a model removes what was computed from it
    schemas.populate("TrainedModel", key, display_progress=False, suppress_errors=False)
    assert (schemas.TrainedModel & key).fetch1("weights_sha256") == before


def test_adding_the_same_config_twice_writes_nothing(db, trained):
    from neurofit import schemas

    n = len(schemas.Model())
    key_default_omitted = schemas.Model.add("neurofit.gaussian_cnn", MODEL)
    full = schemas.Model.config(key_default_omitted)
    key_spelled_out = schemas.Model.add("neurofit.gaussian_cnn", full)
    assert key_default_omitted == key_spelled_out == trained["model"]
    assert len(schemas.Model()) == n


def test_os_system_is_rejected_and_nothing_is_inserted(db):
    from neurofit import schemas
    from neurofit.pipelines.registry import RegistryError

    before = [len(t()) for t in (schemas.Dataset, schemas.Model, schemas.Trainer)]
    for table in (schemas.Dataset, schemas.Model, schemas.Trainer):
        with pytest.raises(RegistryError, match="os.system"):
            table.add("os.system", {"command": "echo pwned"})
    with pytest.raises(RegistryError, match="unknown argument"):
        schemas.Model.add("neurofit.gaussian_cnn", {"hiden_channels": 3})
    assert [len(t()) for t in (schemas.Dataset, schemas.Model, schemas.Trainer)] == before


def test_json_column_is_queryable(db, trained):
    from neurofit import schemas

    # JSON-path restrictions compare as text on every backend.
    matches = schemas.Model & {"model_json.hidden_channels": str(MODEL["hidden_channels"]), "model_json.layers": "2"}
    assert trained["model"] in matches.keys()
    assert all(schemas.Model.config(k)["hidden_channels"] == MODEL["hidden_channels"] for k in matches.keys())
    assert not (schemas.Model & {"model_json.hidden_channels": "999"})

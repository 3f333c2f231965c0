"""Synthetic ground truth is stored once per dataset as an artefact, not in every TrainedModel row."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.db

DATA = {
    "n_sessions": 2,
    "n_neurons": 4,
    "image_size": 12,
    "n_train_images": 16,
    "n_validation_images": 4,
    "n_test_images": 3,
    "n_repeats": 2,
    "batch_size": 8,
}
MODEL = {"hidden_channels": 2, "layers": 1}
TRAINER = {"max_epochs": 1}


@pytest.fixture(scope="module")
def trained(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", DATA)
    model = schemas.Model.add("neurofit.gaussian_cnn", MODEL)
    trainer = schemas.Trainer.add("neurofit.poisson", TRAINER)
    keys = schemas.TrainingSelection.add_grid(dataset, model, trainer, [3, 4])
    schemas.populate(["TrainedModel"], keys, display_progress=False, suppress_errors=False)
    return {"keys": keys, "dataset": dataset}


def test_two_seeds_store_each_artefact_once(trained):
    from neurofit import schemas

    assert len(schemas.TrainedModel & trained["keys"]) == 2
    rows = (schemas.DatasetArtefact & trained["dataset"]).to_dicts()
    names = sorted(row["artefact_name"] for row in rows)
    assert names == ["ceiling_by_session", "ground_truth", "session_0.filters", "session_1.filters"]
    formats = {row["artefact_name"]: row["artefact_format"] for row in rows}
    assert formats["session_0.filters"] == "npy" and formats["ground_truth"] == "json"
    filters = next(row for row in rows if row["artefact_name"] == "session_0.filters")
    assert (
        filters["description"] == "float64 (4, 2, 12, 12)"
        and filters["artefact_bytes"] > 4 * 2 * 144 * 8
    )


def test_ground_truth_is_not_in_the_trained_models_json(trained):
    from neurofit import schemas

    for info in (schemas.TrainedModel & trained["keys"]).to_arrays("data_info"):
        text = json.dumps(info)
        assert "ground_truth" not in text and "ceiling_by_session" not in text
        assert info["extra"] == {} and set(info["ceiling"]) == {
            "single_trial_correlation",
            "correlation_to_average",
        }


def test_artefacts_round_trip_from_a_trained_model_key(trained):
    from neurofit import schemas
    from neurofit.pipelines.training import build_data

    bundle = build_data(
        "neurofit.synthetic_responses", DATA, 99
    )  # any seed: the artefacts ignore it
    key = trained["keys"][1]
    stored = schemas.DatasetArtefact.fetch_artefacts(key)
    assert set(stored) == set(bundle.artefacts)
    np.testing.assert_array_equal(
        stored["session_1.filters"], bundle.artefacts["session_1.filters"]
    )
    truth = schemas.DatasetArtefact.fetch_artefact(key, "ground_truth")
    assert truth == json.loads(json.dumps(bundle.artefacts["ground_truth"]))
    assert (
        truth["sessions"]["session_0"]["gain"]
        == bundle.artefacts["ground_truth"]["sessions"]["session_0"]["gain"]
    )
    with pytest.raises(KeyError, match="stored: .*ground_truth"):
        schemas.DatasetArtefact.fetch_artefact(key, "true_rates")
    with pytest.raises(ValueError, match="has no"):
        schemas.DatasetArtefact.fetch_artefact({"seed": 3}, "ground_truth")


def test_other_content_under_a_stored_name_is_refused(trained):
    from neurofit import schemas
    from neurofit.datasets.artefacts import encode_artefact

    def stored():
        return (
            (schemas.DatasetArtefact & trained["dataset"])
            .proj("artefact_sha256", "stored")
            .to_dicts()
        )

    before = stored()
    other = {"ground_truth": encode_artefact("ground_truth", {"model": "something else"})}
    with pytest.raises(schemas.ArtefactConflict, match="must depend only on the dataset config"):
        schemas.DatasetArtefact.store(trained["keys"][0], other)
    assert stored() == before
    # The same content again stores nothing.
    from neurofit.pipelines.training import build_data

    same = {
        name: encode_artefact(name, value)
        for name, value in build_data("neurofit.synthetic_responses", DATA, 1).artefacts.items()
    }
    assert schemas.DatasetArtefact.store(trained["dataset"], same) == []


def test_load_model_reads_a_row_in_the_previous_layout(trained):
    """Rows written before the typed contract kept their facts under extra; they still load."""
    from neurofit import schemas

    key = trained["keys"][0]
    new = (schemas.TrainedModel & key).fetch1("data_info")
    legacy = {
        "input_shape": new["input_shape"],
        "n_neurons": new["n_neurons"],
        "input_unit": new["input_unit"],
        "response_unit": new["response_unit"],
        "extra": {
            "mean_response": new["mean_response"],
            "ceiling": new["ceiling"],
            "ground_truth": {"model": "poisson_ln_gabor"},
        },
    }
    expected = schemas.load_model(key, device="cpu").state_dict()
    schemas.TrainedModel.update1({**key, "data_info": legacy})
    try:
        model = schemas.load_model(key, device="cpu")
        for name, value in expected.items():
            assert np.array_equal(model.state_dict()[name].numpy(), value.numpy()), name
    finally:
        schemas.TrainedModel.update1({**key, "data_info": new})

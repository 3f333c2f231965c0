"""The leaderboard is not auditory-only: it ranks the image workflow's CNNs from their Performance rows."""

import numpy as np
import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

DATA = {"n_neurons": 6, "n_train_images": 120, "n_validation_images": 30, "n_test_images": 20, "n_repeats": 4}
MODELS = [{"hidden_channels": 4, "layers": 1}, {"hidden_channels": 8, "layers": 2}]
TRAINER = {"max_epochs": 3}


@pytest.fixture(scope="module")
def images(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", DATA)
    models = [schemas.Model.add("neurofit.gaussian_cnn", config) for config in MODELS]
    trainer = schemas.Trainer.add("neurofit.poisson", TRAINER)
    keys = schemas.TrainingSelection.add_grid(dataset, models, trainer, [1, 2])
    schemas.populate(["TrainedModel", "Performance"], keys, display_progress=False, suppress_errors=False)
    return dataset, models, keys


def test_the_image_workflow_gets_a_leaderboard(images):
    from neurofit import schemas
    from neurofit.schemas.leaderboard import LEADERBOARD_COLUMNS, leaderboard

    dataset, models, keys = images
    table = leaderboard(dataset)
    assert list(table.columns) == list(LEADERBOARD_COLUMNS) and len(table) == 2
    assert list(table["rank"]) == [1, 2] and table["cc_norm_mean"].is_monotonic_decreasing
    assert set(table["model_hash"]) == {m["model_hash"] for m in models}
    for row in table.itertuples():
        rows = (schemas.Performance * schemas.TrainedModel.proj("n_parameters") & keys
                & {"model_hash": row.model_hash}).to_dicts()
        assert row.n_seeds == len(rows) == 2
        cc_norm = np.array([r["cc_norm"] for r in rows], dtype=float)
        np.testing.assert_allclose(row.cc_norm_mean, cc_norm.mean(), rtol=1e-12)
        np.testing.assert_allclose(row.cc_norm_sd, cc_norm.std(ddof=1), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(row.cc_raw_mean, np.mean([r["cc_abs"] for r in rows]), rtol=1e-12)
        assert row.n_parameters == rows[0]["n_parameters"] > 0
        assert row.parameters_per_neuron == row.n_parameters / DATA["n_neurons"]
    bigger = table.set_index("model_hash").loc[models[1]["model_hash"]]
    smaller = table.set_index("model_hash").loc[models[0]["model_hash"]]
    assert bigger.n_parameters > smaller.n_parameters
    by_raw = leaderboard(dataset["dataset_hash"][:10], score="cc_raw")
    assert by_raw["cc_raw_mean"].is_monotonic_decreasing and set(by_raw["model_hash"]) == set(table["model_hash"])
    with pytest.raises(ValueError, match="rank by 'cc_norm' or 'cc_raw'"):
        leaderboard(dataset, score="fev")
    untrained = schemas.Dataset.add("neurofit.synthetic_responses", {**DATA, "n_neurons": 5})
    assert leaderboard(untrained).empty  # nothing trained yet: the columns, no rows

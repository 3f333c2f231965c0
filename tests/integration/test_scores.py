"""Applicability, TaskPerformance, registered analyses (Score), lab score tables and provenance on
a real database."""

from __future__ import annotations

import os
import socket
from importlib import metadata

import numpy as np
import pytest

pytestmark = pytest.mark.db

RESPONSES = {"n_neurons": 6, "n_train_images": 80, "n_validation_images": 20, "n_test_images": 10,
             "n_repeats": 4, "image_size": 16}
CNN = {"hidden_channels": 4, "layers": 2, "input_kernel": 5, "hidden_kernel": 3}


@pytest.fixture(scope="module")
def trained(db):
    import task_builders  # noqa: F401  (registers the tests.* builders)

    from neurofit import schemas

    task_trainer = schemas.Trainer.add("tests.task", {"max_epochs": 6})
    linear = schemas.Model.add("tests.linear", {})

    def select(dataset, model, trainer):
        return schemas.TrainingSelection.add_grid(dataset, model, trainer, [1])[0]

    keys = {
        "classifier": select(schemas.Dataset.add("tests.blobs", {}), linear, task_trainer),
        "no_test": select(schemas.Dataset.add("tests.blobs", {"with_test": False}), linear, task_trainer),
        "sequences": select(schemas.Dataset.add("tests.masked_sequences", {}), linear, task_trainer),
        "responses": select(schemas.Dataset.add("neurofit.synthetic_responses", RESPONSES),
                            schemas.Model.add("neurofit.gaussian_cnn", CNN),
                            schemas.Trainer.add("neurofit.poisson", {"max_epochs": 1})),
    }
    schemas.populate("TrainedModel", list(keys.values()), display_progress=False, suppress_errors=False)
    yield keys
    # Leave nothing for later tests' workers, which cannot resolve the tests.* builders.
    (schemas.TrainingSelection & list(keys.values())).delete(prompt=False)


def _populate(table, restriction):
    result = table.populate(restriction, reserve_jobs=True, suppress_errors=False, display_progress=False)
    return result["success_count"]


def _direct_task_scores(key):
    from neurofit import schemas
    from neurofit.pipelines import task_scores, training

    model = schemas.load_model(key, device="cpu")
    data = training.build_data(key["dataset_fn"], schemas.Dataset.config(key), key["seed"])
    return task_scores.evaluate_task(model, data, device="cpu")


def test_a_classifier_gets_task_performance_and_no_performance_job(db, trained):
    from neurofit import schemas

    key = trained["classifier"]
    assert (schemas.TrainedModel & key).fetch1("provides") == "labels"
    assert _populate(schemas.TaskPerformance, key) == 1
    row = (schemas.TaskPerformance & key).fetch1()
    direct = _direct_task_scores(key)
    assert row["tier"] == "test" and row["n_trials"] == 60 == row["n_labels"]
    assert row["accuracy"] > 0.8  # separable blobs; chance is 1/3
    np.testing.assert_allclose([row["accuracy"], row["cross_entropy"]], [direct.accuracy, direct.cross_entropy], rtol=1e-6)
    assert row["mse"] is None and row["r2"] is None and not (schemas.TaskPerformance.Target & key)
    # Performance never sees it: not in its key source, no job after populate, nothing pending.
    assert not (schemas.Performance.key_source & key)
    results = schemas.populate(["Performance"], key, display_progress=False, suppress_errors=False)
    assert results["Performance"]["success_count"] == 0
    schemas.Performance.jobs.refresh()
    assert not (schemas.Performance.jobs & key)
    assert not (schemas.Performance & key)


def test_data_without_a_test_tier_are_scored_on_validation(db, trained):
    from neurofit import schemas

    key = trained["no_test"]
    assert _populate(schemas.TaskPerformance, key) == 1
    assert (schemas.TaskPerformance & key).fetch1("tier", "n_trials") == ("validation", 60)


def test_masked_sequence_targets_get_mse_and_r2_per_dimension(db, trained):
    from neurofit import schemas

    key = trained["sequences"]
    assert (schemas.TrainedModel & key).fetch1("provides") == "targets,mask"
    assert not (schemas.Performance.key_source & key)
    assert _populate(schemas.TaskPerformance, key) == 1
    row = (schemas.TaskPerformance & key).fetch1()
    direct = _direct_task_scores(key)
    assert row["accuracy"] is None and row["n_labels"] == 0
    np.testing.assert_allclose([row["mse"], row["r2"]], [direct.mse, direct.r2], rtol=1e-6)
    assert row["r2"] > 0.5 and 0 < row["n_target_values"] < 30 * 20 * 2  # the mask drops entries
    dims = (schemas.TaskPerformance.Target & key).to_dicts(order_by="target")
    assert [d["target_name"] for d in dims] == ["x", "y"]
    np.testing.assert_allclose([d["r2"] for d in dims], direct.per_target["r2"], rtol=1e-6)
    assert sum(d["n_values"] for d in dims) == row["n_target_values"]


def test_a_responses_model_gets_performance_and_no_task_performance_job(db, trained):
    from neurofit import schemas

    key = trained["responses"]
    assert (schemas.TrainedModel & key).fetch1("provides") == "responses"
    assert not (schemas.TaskPerformance.key_source & key)
    assert _populate(schemas.TaskPerformance, key) == 0
    schemas.TaskPerformance.jobs.refresh()
    assert not (schemas.TaskPerformance.jobs & key)
    results = schemas.populate(["Performance"], key, display_progress=False, suppress_errors=False)
    assert results["Performance"]["success_count"] == 1
    # The README's query: provenance columns must not collide with TrainedModel's.
    assert len(schemas.TrainedModel * schemas.Performance & key) == 1
    assert len(schemas.TrainedModel * schemas.TaskPerformance & trained["classifier"]) == 1


def _check_provenance(table, restriction):
    from neurofit.schemas import provenance

    duration, version, found = provenance.columns(table.__name__)
    rows = (table & restriction).to_dicts()
    assert rows, table.__name__
    for row in rows:
        assert row[duration] is not None and row[duration] >= 0, table.__name__
        assert row[version] == metadata.version("neurofit")
        assert row[found]["host"] == socket.gethostname() and row[found]["device"]
        assert row[found]["numpy_version"] == np.__version__


def test_a_registered_analysis_scores_only_the_models_it_applies_to(db, trained):
    from neurofit import schemas

    cc_norm = schemas.Analysis.add("neurofit.neuron_scores", {"score": "cc_norm"})
    selected = schemas.ScoreSelection.add(schemas.TrainedModel & list(trained.values()), cc_norm)
    assert [{k: s[k] for k in trained["responses"]} for s in selected] == [trained["responses"]]
    with pytest.raises(ValueError, match=r"any of \['responses'\].*provide \['labels'\]"):
        schemas.ScoreSelection.add(trained["classifier"], cc_norm)
    # A pair inserted by hand that cannot work gets no job either.
    schemas.ScoreSelection.insert1({**trained["classifier"], **cc_norm})
    assert not (schemas.Score.key_source & trained["classifier"])
    accuracy = schemas.Analysis.add("neurofit.class_accuracy", {})
    assert len(schemas.ScoreSelection.add(schemas.TrainedModel & list(trained.values()), accuracy)) == 2

    assert _populate(schemas.Score, list(trained.values())) == 3
    schemas.Score.jobs.refresh()
    assert not (schemas.Score.jobs & trained["classifier"] & cc_norm)
    # CCnorm per neuron: the same numbers as Performance computes.
    response = {**trained["responses"], **cc_norm}
    _populate(schemas.Performance, trained["responses"])  # a no-op when the test above ran
    expected = np.concatenate([r["cc_norm"] for r in (schemas.Performance.Session & trained["responses"]).to_dicts(order_by="session")])
    units = (schemas.Score.Unit & response).to_dicts(order_by=("session", "unit"))
    assert [u["unit"] for u in units] == list(range(RESPONSES["n_neurons"]))
    values = np.array([np.nan if u["value"] is None else u["value"] for u in units])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    row = (schemas.Score & response).fetch1()
    assert row["n_units"] == 6
    np.testing.assert_allclose(row["aggregate"], np.nanmean(expected), rtol=1e-6)
    per_class = (schemas.Score.Unit & trained["classifier"] & accuracy).to_dicts()
    assert len(per_class) == 3 and all(0 <= u["value"] <= 1 for u in per_class)
    _check_provenance(schemas.Score, list(trained.values()))
    assert len(schemas.TrainedModel * schemas.Score & response) == 1


def test_trainings_selected_before_training_are_scored_once_trained(db, trained):
    from neurofit import schemas

    keys = schemas.TrainingSelection.add_grid(
        schemas.Dataset.add("tests.blobs", {}), schemas.Model.add("tests.linear", {}),
        schemas.Trainer.add("tests.task", {"max_epochs": 6}), [2])
    accuracy = schemas.Analysis.add("neurofit.class_accuracy", {})
    cc_norm = schemas.Analysis.add("neurofit.neuron_scores", {"score": "cc_norm"})
    try:
        # Untrained: what the data provide is not known yet, so both are selected ...
        assert len(schemas.ScoreSelection.add(keys, accuracy)) == len(schemas.ScoreSelection.add(keys, cc_norm)) == 1
        assert not (schemas.Score.key_source & keys)  # ... and nothing runs before training
        schemas.populate("TrainedModel", keys, display_progress=False, suppress_errors=False)
        # ... and once trained, only the analysis that applies gets a job.
        assert len(schemas.Score.key_source & keys) == 1 and schemas.Score.key_source & keys & accuracy
        assert _populate(schemas.Score, keys) == 1
        schemas.Score.jobs.refresh()
        assert not (schemas.Score.jobs & keys & cc_norm)
        # Deleting the trained model deletes its scores; the selection stays for a retraining.
        (schemas.TrainedModel & keys).delete(prompt=False)
        assert not (schemas.Score & keys) and len(schemas.ScoreSelection & keys) == 2
    finally:
        (schemas.TrainingSelection & keys).delete(prompt=False)


def mean_prediction(model, data, seed, context, *, tier: str = "test"):
    """Mean predicted response per neuron: a lab's measure, written as a plain function."""
    from neurofit.pipelines.evaluation import predict
    from neurofit.pipelines.scoring import Measure

    arrays = predict(model, data.loaders[tier], context.device)
    return Measure({session: a["predictions"].mean(axis=0) for session, a in arrays.items()}, aggregate=0.0)


@pytest.fixture(scope="module")
def lab_tables(db):
    import datajoint as dj

    from neurofit.schemas import ScoreTable

    lab = dj.Schema(f"{os.environ['NEUROFIT_PREFIX']}score_lab")

    @lab
    class MeanPrediction(ScoreTable):
        """A lab's dedicated table with its own measure function."""

        measure = mean_prediction
        measure_config = {"tier": "test"}  # noqa: RUF012
        applies_to = ("responses",)

    @lab
    class PerClassAccuracy(ScoreTable):
        """A lab's table naming a registered analysis: it applies to what that analysis declares."""

        measure = "neurofit.class_accuracy"

    yield MeanPrediction, PerClassAccuracy
    lab.drop(prompt=False)
    lab.connection.dependencies.clear()  # later cascades must not look for the dropped tables


def test_a_lab_subclass_of_the_template_is_a_score_table(db, trained, lab_tables):
    from neurofit import schemas

    mean_table, accuracy_table = lab_tables
    everything = list(trained.values())
    assert len(mean_table.key_source & everything) == 1 and mean_table.key_source & trained["responses"]
    assert not (accuracy_table.key_source & trained["responses"])
    assert len(accuracy_table.key_source & everything) == 2
    assert _populate(mean_table, everything) == 1
    assert _populate(accuracy_table, everything) == 2
    model = schemas.load_model(trained["responses"], device="cpu")
    from neurofit.pipelines import training

    data = training.build_data("neurofit.synthetic_responses", schemas.Dataset.config(trained["responses"]), 1)
    expected = mean_prediction(model, data, 1, training.RunContext()).per_unit
    units = (mean_table.Unit & trained["responses"]).to_dicts(order_by=("session", "unit"))
    np.testing.assert_allclose([u["value"] for u in units], np.concatenate(list(expected.values())), rtol=1e-5)
    assert (mean_table & trained["responses"]).fetch1("aggregate") == 0.0  # the measure's own aggregate
    _check_provenance(mean_table, trained["responses"])
    _check_provenance(accuracy_table, trained["classifier"])
    # Same numbers as the generic Score of the same registered analysis.
    score = schemas.Score.Unit & trained["classifier"] & {"analysis_fn": "neurofit.class_accuracy"}
    if score:
        assert sorted(u["value"] for u in score.to_dicts()) == sorted(
            u["value"] for u in (accuracy_table.Unit & trained["classifier"]).to_dicts())


def gratings(size=16, n_directions=8):
    theta = np.linspace(-np.pi, np.pi, n_directions * 2, endpoint=False)
    y, x = np.mgrid[0:size, 0:size] / size
    images = np.sin(2 * np.pi * 3 * (np.cos(theta)[:, None, None] * x + np.sin(theta)[:, None, None] * y))
    return images[:, None].astype(np.float32), np.stack([np.cos(theta), np.sin(theta)], axis=1)


def test_every_analysis_row_records_its_provenance(db, trained):
    from neurofit import schemas

    key = trained["responses"]
    images, direction = gratings()
    schemas.StimulusSet.add("scores_gratings", images, {"direction": direction})
    schemas.ProbeSelection.add(key, "scores_gratings")
    probe = {**key, "stimulus_set": "scores_gratings"}
    schemas.populate(["Activations", "RDM"], probe, display_progress=False, suppress_errors=False)
    output = (schemas.RDM & probe & {"layer": "output", "rdm_method": "correlation"}).fetch1("rdm").load()
    rng = np.random.default_rng(0)
    schemas.ReferenceRDM.add("scores_brain", "scores_gratings",
                             subjects={f"s{i}": output + rng.normal(0, 0.1, output.shape) for i in range(3)})
    schemas.CKASelection.add_pairs(key, "scores_gratings", across=False)
    schemas.populate(["ReferenceNoiseCeiling"], {"reference_rdm": "scores_brain"}, display_progress=False,
                     suppress_errors=False)
    schemas.populate(["RDMComparison", "CKA", "Tuning"], probe, display_progress=False, suppress_errors=False)
    for table in (schemas.Activations, schemas.RDM, schemas.RDMComparison, schemas.CKA, schemas.Tuning):
        _check_provenance(table, probe)
    _check_provenance(schemas.ReferenceNoiseCeiling, {"reference_rdm": "scores_brain"})
    _populate(schemas.Performance, key)  # no-ops when the tests above ran
    _populate(schemas.TaskPerformance, trained["classifier"])
    _check_provenance(schemas.Performance, key)
    _check_provenance(schemas.TaskPerformance, trained["classifier"])
    (schemas.ReferenceRDM & {"reference_rdm": "scores_brain"}).delete(prompt=False)
    (schemas.StimulusSet & {"stimulus_set": "scores_gratings"}).delete(prompt=False)

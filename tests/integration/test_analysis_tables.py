"""Analysis tables on real trained models: activations, RDMs, comparisons, CKA, tuning, cleanup."""

import numpy as np
import pytest

pytestmark = pytest.mark.db

DATA = {"n_neurons": 10, "n_train_images": 200, "n_validation_images": 40, "n_test_images": 20, "n_repeats": 4,
        "image_size": 16}
MODEL = {"hidden_channels": 4, "layers": 2, "input_kernel": 5, "hidden_kernel": 3}
TRAINER = {"max_epochs": 3}
N_DIRECTIONS, N_PHASES = 12, 3


def gratings(size=16):
    """Drifting-grating snapshots: 12 directions x 3 phases, with the direction as a unit vector."""
    theta = np.repeat(np.linspace(-np.pi, np.pi, N_DIRECTIONS, endpoint=False), N_PHASES)
    phase = np.tile(np.linspace(0, 2 * np.pi, N_PHASES, endpoint=False), N_DIRECTIONS)
    y, x = np.mgrid[0:size, 0:size] / size
    images = np.sin(2 * np.pi * 3 * (np.cos(theta)[:, None, None] * x + np.sin(theta)[:, None, None] * y) + phase[:, None, None])
    return images[:, None].astype(np.float32), np.stack([np.cos(theta), np.sin(theta)], axis=1)


@pytest.fixture(scope="module")
def probed(db):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.synthetic_responses", DATA, comment="analysis test")
    model = schemas.Model.add("neurofit.gaussian_cnn", MODEL)
    trainer = schemas.Trainer.add("neurofit.poisson", TRAINER)
    trained = schemas.TrainingSelection.add_grid(dataset, model, trainer, [1, 2])
    schemas.populate("TrainedModel", trained, display_progress=False, suppress_errors=False)
    images, direction = gratings()
    schemas.StimulusSet.add("test_gratings", images, {"direction": direction}, description="gratings")
    schemas.ProbeSelection.add(trained, "test_gratings")
    keys = [{**k, "stimulus_set": "test_gratings"} for k in trained]
    schemas.populate(["Activations", "RDM"], keys, display_progress=False, suppress_errors=False)
    return {"trained": trained, "keys": keys, "images": images}


def test_activations_match_a_direct_forward_pass(db, probed):
    from neurofit import schemas
    from neurofit.pipelines import extract

    key = probed["keys"][0]
    layers = (schemas.Activations & key).fetch1("layers")
    assert layers == ["core.features.layer0", "core.features.layer1", "output"]
    model = schemas.load_model(probed["trained"][0], device="cpu")
    direct = extract.extract_activations(model, probed["images"], forward_kwargs={"session": "session_0"})
    for row in (schemas.Activations.Layer & key).to_dicts():
        stored = row["activations"].load()
        assert stored.shape == (N_DIRECTIONS * N_PHASES, row["n_units"])
        np.testing.assert_allclose(stored, direct[row["layer"]], rtol=1e-5, atol=1e-6)
    assert (schemas.Activations.Layer & key & {"layer": "output"}).fetch1("n_units") == DATA["n_neurons"]


def test_rdms_are_stored_per_layer_and_method(db, probed):
    from neurofit import schemas
    from neurofit.pipelines.analysis import rdm

    n = N_DIRECTIONS * N_PHASES
    rows = schemas.RDM & probed["keys"]
    assert len(rows) == 2 * 3 * 2  # models x layers x methods
    row = (rows & {"layer": "core.features.layer1", "rdm_method": "correlation"} & probed["keys"][0]).fetch1()
    stored = row["rdm"].load()
    assert stored.shape == (n * (n - 1) // 2,) and row["n_stimuli"] == n
    activations = (schemas.Activations.Layer & row).fetch1("activations").load()
    np.testing.assert_allclose(stored, rdm.rdm(activations.astype(np.float64), method="correlation"), atol=1e-12)


def test_comparison_to_a_reference_with_a_noise_ceiling(db, probed):
    from neurofit import schemas

    rng = np.random.default_rng(0)
    truth = (schemas.RDM & probed["keys"][0] & {"layer": "output", "rdm_method": "correlation"}).fetch1("rdm").load()
    subjects = {f"s{i}": truth + rng.normal(0, 0.3 * truth.std(), truth.shape) for i in range(4)}
    schemas.ReferenceRDM.add("test_brain", "test_gratings", subjects=subjects)
    with pytest.raises(ValueError, match="36 stimuli"):
        schemas.ReferenceRDM.add("bad", "test_gratings", rdm=np.zeros(10))
    schemas.populate(["ReferenceNoiseCeiling", "RDMComparison"], display_progress=False, suppress_errors=False)
    comparisons = (schemas.RDMComparison & {"reference_rdm": "test_brain"}).to_pandas().reset_index()
    from neurofit.pipelines.analysis.rdm_comparison import COMPARISON_METHODS

    assert len(comparisons) == 12 * len(COMPARISON_METHODS)  # RDMs x comparison methods
    spearman = comparisons[(comparisons.comparison_method == "spearman") & (comparisons.rdm_method == "correlation")]
    best = spearman.loc[spearman.similarity.idxmax()]
    assert best.layer == "output" and best.seed == probed["keys"][0]["seed"]
    lower, upper = (schemas.ReferenceNoiseCeiling & {"reference_rdm": "test_brain", "comparison_method": "spearman"}).fetch1("lower", "upper")
    assert 0 < lower < upper <= 1
    # The model whose RDM generated the subjects is the true model: in expectation it scores
    # between the bounds (the upper bound overestimates it, the lower underestimates it).
    assert lower - 0.03 <= best.similarity <= upper + 0.03
    assert best.similarity_to_mean > best.similarity  # averaging subjects removes noise
    tidy = schemas.layer_comparisons({"reference_rdm": "test_brain"})
    assert {"layer_index", "lower", "upper", "similarity"} <= set(tidy.columns)


def test_cka_within_and_across_models(db, probed):
    from neurofit import schemas

    assert schemas.CKASelection.add_pairs(probed["trained"], "test_gratings") == 3
    schemas.populate("CKA", display_progress=False, suppress_errors=False)
    rows = (schemas.CKA & {"cka_method": "linear"} & probed["keys"]).to_dicts()
    assert len(rows) == 3
    for row in rows:
        matrix = row["cka"]
        assert matrix.shape == (len(row["layers_a"]), len(row["layers_b"])) == (3, 3)
        assert np.all(matrix <= 1 + 1e-9) and np.all(matrix >= -1e-9)
        if row["seed"] == row["seed_b"]:
            np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
            np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)


def test_tuning_per_layer(db, probed):
    from neurofit import schemas

    schemas.populate("Tuning", display_progress=False, suppress_errors=False)
    rows = (schemas.Tuning & probed["keys"]).to_dicts()
    assert len(rows) == 2 * 3
    for row in rows:
        n_units = (schemas.Activations.Layer & row).fetch1("n_units")
        assert row["r2_test"].shape == (n_units, len(row["model_names"]))
        assert row["direction_feature"] == "direction"
        assert 0 <= row["fraction_tuned"] <= 1
        assert row["preferred_direction"].shape == (n_units,)


def test_deleting_a_model_removes_its_results_and_gc_their_files(db, probed):
    from neurofit import schemas

    key = probed["trained"][1]
    assert schemas.RDM & key
    schemas.collect_garbage(dry_run=False, grace=0)  # start clean: earlier tests may have left orphans
    (schemas.TrainedModel & key).delete(prompt=False)
    for table in (schemas.Performance, schemas.Activations, schemas.RDM, schemas.RDMComparison, schemas.Tuning):
        assert not (table & key), table.__name__
    assert not (schemas.CKA & {f"{k}_b": v for k, v in key.items()})
    report = schemas.collect_garbage(dry_run=True, grace=0)  # no worker runs: no grace period needed
    assert report["orphaned_files"] >= 1 + 3 + 6  # weights, 3 layers of activations, 6 RDMs
    deleted = schemas.collect_garbage(dry_run=False, grace=0)
    assert deleted["orphaned_files"] == report["orphaned_files"]
    assert schemas.collect_garbage(dry_run=True, grace=0)["orphaned_files"] == 0
    # What remains still loads.
    assert (schemas.RDM & probed["keys"][0]).to_dicts()[0]["rdm"].load().size > 0

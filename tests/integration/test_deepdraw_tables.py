"""DeepDraw's workflow on a real database: train and untrained control, probe, oracle RDM, CKA,
kinematic and label tuning, paired tests. Small sizes; the demo runs the full scale."""

import numpy as np
import pytest

pytestmark = [pytest.mark.db, pytest.mark.slow]

DATA = {"n_per_class": 10, "n_time": 40, "n_classes": 4, "planes": ["horizontal"], "n_start_points": 1,
        "max_noise": 0.0, "batch_size": 16}
MODEL = {"n_skernels": [4, 8], "n_tkernels": [8, 8]}


@pytest.fixture(scope="module")
def analysed(db):
    from neurofit.schemas import demo_deepdraw
    from neurofit.schemas.populating import populate

    configs = demo_deepdraw.insert_configs(DATA, MODEL, {"max_epochs": 15, "lr": 3e-3}, [1, 2], comment="deepdraw test")
    populate(["TrainedModel"], display_progress=False, suppress_errors=False)
    demo_deepdraw.analyse(configs, stimulus_set="deepdraw_test")
    return configs, demo_deepdraw.summary(configs, stimulus_set="deepdraw_test")


def test_trained_networks_beat_chance_and_their_untrained_controls(analysed):
    _, result = analysed
    accuracy = result["accuracy"].groupby("network")["accuracy"].mean()
    assert accuracy["trained"] > 0.6 and accuracy["untrained"] < 0.5  # chance is 0.25


def test_every_layer_has_oracle_similarity_tuning_and_label_tuning(analysed):
    _, result = analysed
    layers = result["layers"]
    assert set(layers["layer"]) == {"spatial0", "spatial1", "temporal0", "temporal1", "output"}
    conv = layers[layers["layer"] != "output"]
    assert conv[["similarity", "fraction_tuned", "fraction_label_tuned"]].notna().all().all()
    trained = layers[layers.network == "trained"].groupby("layer_index")["similarity"].mean()
    untrained = layers[layers.network == "untrained"].groupby("layer_index")["similarity"].mean()
    assert trained.iloc[-1] > untrained.iloc[-1]  # the output's RDM is closer to the class oracle


def test_cka_and_paired_tests_compare_trained_with_untrained(analysed):
    from neurofit.schemas.deepdraw import ControlComparison, ControlPair

    configs, result = analysed
    assert len(result["cka"]) == 2  # one trained-vs-untrained matrix per seed
    matrix = result["cka"][0]["cka"]
    assert matrix.shape == (5, 5) and np.all((matrix >= -1e-9) & (matrix <= 1 + 1e-9))
    tests = result["tests"]
    assert {"oracle_similarity", "fraction_direction_tuned", "fraction_label_tuned"} <= set(tests["metric"])
    assert (tests["n_seeds"] == 2).all()
    pair = ControlPair & configs["model"] & {"stimulus_set": "deepdraw_test"}
    assert len(ControlComparison.Row & pair.proj()) == len(tests)


def test_paper_tuning_crops_each_layer_in_its_own_steps(analysed):
    """PaperTuning fits what fit_tuning fits with DeepDraw's crop of the layer's own steps."""
    from neurofit.pipelines.analysis import tuning
    from neurofit.schemas import Tuning
    from neurofit.schemas.deepdraw import PaperTuning
    from neurofit.schemas.probing import Activations, StimulusSet
    from neurofit.schemas.storage import read_stored
    from neurofit.schemas.tuning import at_centres, time_major

    configs, result = analysed
    assert result["layers"].loc[result["layers"]["layer"] != "output", "fraction_tuned_paper"].notna().all()
    key = (PaperTuning & configs["keys"] & {"layer": "temporal1", "seed": 1}).keys()[0]
    layer = (Activations.Layer & key).fetch1()
    n_time = (StimulusSet & key).fetch1("n_time")
    centres = np.asarray(layer["time_centres"])
    values = time_major(np.asarray(read_stored(layer["activations"]), dtype=np.float64), layer["unit_shape"],
                        Activations.layer_axes(layer))
    assert centres.size == values.shape[1] < n_time  # a strided layer
    tcoff = int(np.sum(centres <= n_time / 10))
    # the paper's end index lies beyond a strided layer's last step: only its start is cropped
    kept = tuning.deepdraw_kept_steps(centres, n_time)
    assert tcoff > 0 and kept.tolist() == [j >= tcoff for j in range(centres.size)]
    features = {name: at_centres(StimulusSet.features(key)[name], centres)
                for name in ("position", "velocity", "acceleration")}
    expected = tuning.fit_tuning(values, features, crop=tcoff, crop_reference=n_time)
    names, r2_test = (PaperTuning & key).fetch1("model_names", "r2_test")
    columns = [expected.index(name) for name in names]
    np.testing.assert_allclose(r2_test, expected.r2_test[:, columns], rtol=1e-9, atol=1e-10)
    assert not np.allclose((Tuning & key).fetch1("r2_test"), r2_test)  # Tuning fits every step

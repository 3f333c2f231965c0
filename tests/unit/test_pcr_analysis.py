"""DeepDraw's analysis options: the paper's crop of strided layers, label tuning, paired tests."""

import numpy as np
import pytest

from neurofit.pipelines.analysis import tuning


def test_deepdraws_crop_keeps_the_end_of_strided_layers():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 20, 2))
    y = v[..., :1] + 0.01 * rng.normal(size=(40, 20, 1))
    symmetric = tuning.fit_tuning(y, {"velocity": v}, crop=3, models=["velocity/cartesian"])
    paper = tuning.fit_tuning(y, {"velocity": v}, crop=3, crop_reference=80, models=["velocity/cartesian"])
    # a 20-step (strided) layer of an 80-sample input: the paper crops [3 : 77], so only the start
    assert (symmetric.n_train + symmetric.n_test)[0] == 40 * 14
    assert (paper.n_train + paper.n_test)[0] == 40 * 17
    same = tuning.fit_tuning(y, {"velocity": v}, crop=3, crop_reference=20, models=["velocity/cartesian"])
    assert (same.n_train + same.n_test)[0] == 40 * 14  # unstrided: both crops agree
    with pytest.raises(ValueError, match="crop_reference"):
        tuning.fit_tuning(y, {"velocity": v}, crop_reference=0)


def test_label_tuning_finds_the_unit_that_codes_a_class():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 40)
    coding = (labels == 2) * 2.0 + rng.normal(size=200)  # responds to class 2
    negative = (labels == 4) * -3.0 + rng.normal(size=200)  # suppressed by class 4
    noise = rng.normal(size=200)
    train = rng.random(200) < 0.8
    score, auc = tuning.label_tuning(np.stack([coding, negative, noise], 1), labels, train)
    assert auc.shape == (3, 5)
    assert auc[0, 2] > 0.85 and auc[1, 4] > 0.9  # the sign is learned on the training split
    assert score[0] > 0.15 and score[1] > 0.15 and abs(score[2]) < 0.15
    # against a per-class reference: sklearn's definition of the ROC AUC
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(labels[~train] == 2, coding[~train])
    assert auc[0, 2] == pytest.approx(expected)


def test_paired_test_reports_t_and_wilcoxon():
    out = tuning.paired_test([0.5, 0.6, 0.7, 0.65], [0.1, 0.15, 0.1, 0.2])
    assert out["n"] == 4 and out["mean_difference"] == pytest.approx(0.475)
    assert out["p_t"] < 0.01 and out["p_wilcoxon"] == pytest.approx(0.125)
    two = tuning.paired_test([0.5, 0.6], [0.1, 0.1])
    assert two["p_wilcoxon"] == pytest.approx(0.5)  # two seeds cannot reach significance
    with pytest.raises(ValueError, match="one value per seed"):
        tuning.paired_test([1.0], [1.0, 2.0])

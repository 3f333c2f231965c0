"""Batched regression, variance partitioning and the statistics around them (no database).

References: an explicit-intercept ``np.linalg.lstsq`` fit per target, the single-target
functions of the same module, scipy's t-tests and ``false_discovery_control``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from neurofit.pipelines.analysis import rsa_regression as rr

N = 50
N_PAIRS = N * (N - 1) // 2


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _lstsq_adjusted(y, x):
    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    r2 = 1 - residual @ residual / np.sum((y - y.mean()) ** 2)
    return r2, 1 - (1 - r2) * (len(y) - 1) / (len(y) - x.shape[1] - 1), beta


def _groups(rng):
    latent = rng.standard_normal((5, N_PAIRS))
    return latent, {
        "2D": np.column_stack([latent[0] + 0.3 * latent[3], latent[0] - latent[1]]),
        "3D": np.column_stack([latent[1] + 5.0, 2 * latent[1] + 0.3 * latent[4]]),
        "semantic": latent[2],
    }


def test_batched_regression_matches_lstsq_to_1e10(rng):
    _, groups = _groups(rng)
    x = np.column_stack(list(groups.values()))
    targets = x @ rng.standard_normal((x.shape[1], 12)) + 3 * rng.standard_normal((N_PAIRS, 12)) + 2.0
    fit = rr.batched_regression(targets.T.reshape(3, 4, N_PAIRS), x)
    assert fit["r2"].shape == (3, 4) and fit["coefficients"].shape == (3, 4, x.shape[1])
    for k in range(12):
        r2, adjusted, beta = _lstsq_adjusted(targets[:, k], x)
        i, j = divmod(k, 4)
        assert abs(fit["r2"][i, j] - r2) < 1e-10 and abs(fit["adjusted_r2"][i, j] - adjusted) < 1e-10
        np.testing.assert_allclose(fit["coefficients"][i, j], beta[1:], rtol=1e-9, atol=1e-10)
        assert abs(fit["intercept"][i, j] - beta[0]) < 1e-9


def test_batched_partitioning_matches_lstsq_and_the_single_target_function(rng):
    latent, groups = _groups(rng)
    targets = np.stack([latent[0] + latent[1] + latent[2] + rng.standard_normal(N_PAIRS) * s for s in (0.5, 1, 2, 4)])
    out = rr.batched_variance_partitioning(targets, groups)
    names = tuple(groups)
    assert out["subsets"] == rr.group_subsets(names) and out["partition"].shape == (7, 4)
    for t, y in enumerate(targets):
        single = rr.variance_partitioning(y, groups)
        for s, subset in enumerate(out["subsets"]):
            # every subset model against an independent lstsq fit
            _, adjusted, _ = _lstsq_adjusted(y, np.column_stack([groups[g] for g in subset]))
            assert abs(out["adjusted_r2"][s, t] - adjusted) < 1e-10
            assert abs(out["partition"][s, t] - single["partition"][subset]) < 1e-10
        for g, name in enumerate(names):
            rest = np.column_stack([groups[o] for o in names if o != name])
            whole_group_removed = _lstsq_adjusted(y, np.column_stack(list(groups.values())))[1] - _lstsq_adjusted(y, rest)[1]
            assert abs(out["unique"][g, t] - whole_group_removed) < 1e-10
        assert abs(out["partition"][:, t].sum() - out["total"][t]) < 1e-12


def test_planted_unique_variance_is_recovered(rng):
    latent, groups = _groups(rng)
    target = 2 * latent[2] + 0.5 * rng.standard_normal(N_PAIRS)  # only the semantic group
    out = rr.batched_variance_partitioning(target, groups)
    unique = dict(zip(out["groups"], out["unique"]))
    assert unique["semantic"] > 0.5 and max(unique["2D"], unique["3D"]) < 0.01


def test_bad_targets_name_the_index(rng):
    targets = rng.standard_normal((3, N_PAIRS))
    targets[1] = 4.0
    with pytest.raises(ValueError, match=r"index \(1,\) is constant"):
        rr.batched_regression(targets, rng.standard_normal(N_PAIRS))
    targets[1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        rr.batched_variance_partitioning(targets, {"a": rng.standard_normal(N_PAIRS)})


def test_noise_ceiling_against_a_loop(rng):
    subjects = rng.standard_normal(N_PAIRS) + rng.standard_normal((5, 3, N_PAIRS))
    lower, upper = rr.r2_noise_ceiling(subjects)
    assert lower.shape == (3,)
    for region in range(3):
        rdms = subjects[:, region]
        expected_lower = np.mean([np.corrcoef(rdms[s], np.delete(rdms, s, 0).mean(0))[0, 1] ** 2 for s in range(5)])
        expected_upper = np.mean([np.corrcoef(rdms[s], rdms.mean(0))[0, 1] ** 2 for s in range(5)])
        assert lower[region] == pytest.approx(expected_lower, abs=1e-12)
        assert upper[region] == pytest.approx(expected_upper, abs=1e-12)
    assert np.all(lower < upper)


def test_fdr_matches_scipy_and_keeps_nan(rng):
    p = rng.uniform(0, 0.2, (4, 30))
    np.testing.assert_allclose(rr.fdr_correction(p, axis=1), np.stack([stats.false_discovery_control(row) for row in p]),
                               atol=1e-14)
    np.testing.assert_allclose(rr.fdr_correction(p.T, axis=0), rr.fdr_correction(p, axis=1).T, atol=1e-14)
    with_nan = p[0].copy()
    with_nan[[3, 7]] = np.nan
    adjusted = rr.fdr_correction(with_nan)
    assert np.isnan(adjusted[[3, 7]]).all()
    np.testing.assert_allclose(np.delete(adjusted, [3, 7]), stats.false_discovery_control(np.delete(with_nan, [3, 7])))


def test_t_tests_match_scipy(rng):
    values = rng.normal(0.05, 0.1, (8, 6))
    t, p = rr.ttest_greater(values)
    reference = stats.ttest_1samp(values, 0.0, alternative="greater")
    np.testing.assert_allclose(t, reference.statistic)
    np.testing.assert_allclose(p, reference.pvalue)
    _, p_paired = rr.ttest_paired_greater(values[:, :3], values[:, 3:])
    np.testing.assert_allclose(p_paired, stats.ttest_rel(values[:, :3], values[:, 3:], alternative="greater").pvalue)


def test_condition_permutations_relabel_rows_and_columns(rng):
    positions = rr.condition_permutations(6, 20, seed=1)
    assert positions.shape == (20, 15)
    square = rng.standard_normal((6, 6))
    square = square + square.T
    rows, cols = np.triu_indices(6, 1)
    condensed = square[rows, cols]
    def row_sums(vector):
        matrix = np.zeros((6, 6))
        matrix[rows, cols] = vector
        return np.sort((matrix + matrix.T).sum(axis=1))

    for k in range(20):
        # a relabelling of conditions, not a shuffle of entries: each condition keeps its
        # dissimilarities, so the multiset of row sums survives
        np.testing.assert_allclose(row_sums(condensed[positions[k]]), row_sums(condensed), atol=1e-12)
    assert not np.all(positions == np.arange(15))


def test_permutation_test_separates_signal_from_noise(rng):
    latent, groups = _groups(rng)
    signal = 2 * latent[2] + rng.standard_normal(N_PAIRS)
    pure_noise = rng.standard_normal(N_PAIRS)
    # a target with condition structure: the RDM of random patterns
    out = rr.permutation_test(np.stack([signal, pure_noise]), groups, n_permutations=99, seed=3)
    assert out["unique_p"].shape == (3, 2) and out["difference_p"].shape == (3, 3, 2)
    semantic = out["observed"]["groups"].index("semantic")
    assert out["unique_p"][semantic, 0] == pytest.approx(0.01)  # nothing in the null reaches it
    assert out["unique_p"][semantic, 1] > 0.05
    # One target RDM (no leading axes) gives scalars per group, the same as in the batch.
    single = rr.permutation_test(signal, groups, n_permutations=99, seed=3)
    assert single["unique_p"].shape == (3,) and single["total_p"].shape == ()
    np.testing.assert_array_equal(single["unique_p"], out["unique_p"][:, 0])


def test_condition_bootstrap_is_reproducible_and_spreads(rng):
    latent, groups = _groups(rng)
    targets = np.stack([latent[1] + rng.standard_normal(N_PAIRS) for _ in range(3)])
    a = rr.condition_bootstrap(targets, groups, n_bootstrap=20, ratio=0.9, seed=5)
    b = rr.condition_bootstrap(targets, groups, n_bootstrap=20, ratio=0.9, seed=5)
    np.testing.assert_array_equal(a["unique"], b["unique"])
    assert a["unique"].shape == (20, 3, 3) and np.all(a["unique_std"] > 0)
    full = rr.batched_variance_partitioning(targets, groups)["unique"]
    assert np.all(np.abs(a["unique"].mean(0) - full) < 5 * a["unique_std"] + 0.05)
    with pytest.raises(ValueError, match="ratio"):
        rr.condition_bootstrap(targets, groups, ratio=0.0)


def test_more_groups_than_three(rng):
    latent = rng.standard_normal((5, N_PAIRS))
    groups = {f"g{k}": latent[k] for k in range(5)}
    y = np.arange(1, 6) @ latent + rng.standard_normal(N_PAIRS)
    out = rr.batched_variance_partitioning(np.stack([y, y]), groups)
    assert len(out["subsets"]) == 31
    for k, name in enumerate(groups):
        rest = [groups[g] for g in groups if g != name]
        expected = _lstsq_adjusted(y, latent.T)[1] - _lstsq_adjusted(y, np.column_stack(rest))[1]
        assert abs(out["unique"][k, 0] - expected) < 1e-10
    assert list(itertools.chain(*[s for s in out["subsets"] if len(s) == 1])) == list(groups)

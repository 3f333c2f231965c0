"""Method lookup tables are generated from the pipelines' method lists (one source of truth)."""

from neurofit import schemas
from neurofit.pipelines.analysis import cka, rdm, rdm_comparison


def _names(table, attribute):
    return [row[attribute] for row in table.contents]


def test_lookups_list_exactly_the_methods_the_functions_understand():
    assert _names(schemas.RDMMethod, "rdm_method") == list(rdm.METHODS)
    assert _names(schemas.ComparisonMethod, "comparison_method") == list(rdm_comparison.COMPARISON_METHODS)
    assert _names(schemas.CKAMethod, "cka_method") == list(cka.METHODS)
    for table in (schemas.RDMMethod, schemas.ComparisonMethod, schemas.CKAMethod):
        assert all(row["description"] for row in table.contents)


def test_every_listed_method_runs():
    import numpy as np

    patterns = np.random.default_rng(0).standard_normal((6, 4))
    for method in rdm.METHODS:
        extra = {"conditions": np.repeat(np.arange(3), 2)} if method == "crossnobis" else {}
        assert np.all(np.isfinite(rdm.rdm(patterns, method, **extra)))
    a, b = rdm.rdm(patterns), rdm.rdm(patterns[::-1])
    for method in rdm_comparison.COMPARISON_METHODS:
        assert np.isfinite(rdm_comparison.compare_rdms(a, b, method)).all()
    for method in cka.METHODS:
        assert np.isfinite(cka.cka(patterns, patterns[:, ::-1], method))

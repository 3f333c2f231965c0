"""The analysis builder kind, measures, applicability declarations and provenance (no database)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from neurofit.pipelines import provenance, registry, scoring
from neurofit.pipelines.registry import RegistryError, register


def test_analyses_are_a_builder_kind_with_their_own_entry_point_group():
    assert "analysis" in registry.KINDS
    assert registry.ENTRY_POINT_GROUPS["analysis"] == "neurofit.analyses"
    assert registry.LEADING_PARAMETERS["analysis"] == ("model", "data", "seed", "context")
    assert {"neurofit.neuron_scores", "neurofit.class_accuracy"} <= set(registry.available("analysis"))
    assert registry.applies_to("neurofit.neuron_scores") == ("responses",)
    assert registry.applies_to("neurofit.class_accuracy") == ("labels",)


def test_applies_to_is_checked_and_only_for_analyses():
    def measure(model, data, seed, context, *, tier: str = "test"):
        return scoring.Measure({"all": [1.0]})

    with pytest.raises(RegistryError, match="must list what the data provide"):
        register("analysis", "tests.bad_needs", applies_to=("spikes",))(measure)
    with pytest.raises(RegistryError, match="applies_to is for analyses"):
        register("trainer", "tests.bad_trainer", applies_to=("labels",))(measure)
    register("analysis", "tests.any_data")(measure)
    assert registry.applies_to("tests.any_data") is None
    with pytest.raises(RegistryError, match="signature"):
        register("analysis", "tests.bad_signature")(lambda model, data: None)


def test_a_measure_defaults_to_the_mean_of_its_finite_units():
    measure = scoring.Measure({"a": [1.0, np.nan, 3.0], "b": np.array([5.0])})
    assert measure.aggregate == pytest.approx(3.0) and measure.n_units == 4
    assert scoring.Measure({"a": [np.nan]}).aggregate != scoring.Measure({"a": [np.nan]}).aggregate  # NaN
    assert scoring.Measure({"a": [1.0, 2.0]}, aggregate=7).aggregate == 7.0
    with pytest.raises(ValueError, match="1-D"):
        scoring.Measure({"a": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="session"):
        scoring.Measure({"": [1.0]})
    with pytest.raises(TypeError, match="aggregate"):
        scoring.Measure({"a": [1.0]}, aggregate="high")


def test_run_measure_refuses_what_is_not_a_measure():
    with pytest.raises(TypeError, match="must return a neurofit.pipelines.scoring.Measure"):
        scoring.run_measure(lambda model, data, seed, context: {"a": [1.0]}, None, None, 1, None, {})


def test_class_accuracy_is_per_class_recall_with_balanced_accuracy():
    from neurofit.datasets.info import DataBundle, DataInfo
    from neurofit.pipelines.training import RunContext

    info = DataInfo(input_shape=(3,), n_neurons={"all": 0}, provides=("labels",), n_classes=3)
    inputs = torch.eye(3).repeat(2, 1)  # 6 trials, labels 0,1,2,0,1,2
    labels = torch.tensor([0, 1, 2, 0, 1, 1])  # the last trial's input says 2, its label is 1

    class Identity(torch.nn.Module):
        def forward(self, x, session):
            return x

    data = DataBundle(loaders={"test": {"all": [{"inputs": inputs, "labels": labels}]}}, info=info)
    measure = scoring.class_accuracy(Identity(), data, 0, RunContext())
    np.testing.assert_allclose(measure.per_unit["all"], [1.0, 2 / 3, 1.0])
    assert measure.aggregate == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_every_builtin_analysis_takes_the_context_device():
    for name in registry.available("analysis"):
        if name.startswith("neurofit."):
            parameters = list(inspect.signature(registry.resolve("analysis", name).function).parameters)
            assert parameters[:4] == ["model", "data", "seed", "context"]


def test_the_provenance_record_has_the_declared_fields():
    found = provenance.record("cpu", 1.5)
    assert tuple(found) == provenance.RECORD_FIELDS
    assert found["duration"] == 1.5 and found["provenance"]["device"] == "cpu"
    assert found["provenance"]["torch_version"] == torch.__version__


def test_every_computed_table_declares_and_records_provenance():
    import datajoint as dj

    from neurofit import schemas
    from neurofit.schemas import provenance as table_provenance
    from neurofit.schemas._schema import declare_tables

    declare_tables()  # the table modules, as activate() imports them (alone, no test has yet)
    computed = [cls for cls, _ in schemas.schema.declare_list
                if issubclass(cls, dj.Computed) and cls.__name__ != "TrainedModel"]
    assert {"Performance", "TaskPerformance", "Score", "Activations", "RDM", "ReferenceNoiseCeiling",
            "RDMComparison", "CKA", "Tuning"} <= {cls.__name__ for cls in computed}
    for cls in computed:
        assert table_provenance.attributes(cls.__name__) in cls.definition, cls.__name__
        assert hasattr(cls.make_compute, "__wrapped__"), f"{cls.__name__}.make_compute is not @provenance.recorded"


def test_provenance_columns_never_share_a_name_with_trained_model():
    from neurofit import schemas
    from neurofit.schemas import provenance as table_provenance

    trained = {line.split("=")[0].split(":")[0].strip() for line in schemas.TrainedModel.definition.splitlines()}
    for name in ("Performance", "Score", "RDMComparison"):
        assert not set(table_provenance.columns(name)) & trained
    assert table_provenance.columns("RDMComparison")[0] == "rdm_comparison_duration"


def test_applicability_declarations():
    from neurofit import schemas
    from neurofit.schemas.applicability import provides_condition

    assert schemas.Performance.applies_to == ("responses",)
    assert set(schemas.TaskPerformance.applies_to) == {"labels", "targets"}
    assert "',mask,'" in provides_condition(("mask",))
    with pytest.raises(RegistryError):
        provides_condition(("x'; DROP TABLE t; --",))


def test_a_template_with_a_bad_measure_fails_where_it_is_written():
    from neurofit.schemas import ScoreTable

    def zero(model, data, seed, context, *, tier: str = "test"):
        return scoring.Measure({"all": [0.0]})

    with pytest.raises(RegistryError, match="signature"):
        class Broken(ScoreTable):
            measure = staticmethod(lambda model, data: None)
    with pytest.raises(RegistryError, match="unknown argument"):
        class Misconfigured(ScoreTable):
            measure = staticmethod(zero)
            measure_config = {"tierr": "test"}  # noqa: RUF012

    class Fine(ScoreTable):
        applies_to = ("labels",)
        measure = staticmethod(zero)

    assert Fine.Unit is not ScoreTable.__dict__.get("Unit") and Fine.Unit.__qualname__.endswith("Fine.Unit")
    assert "fine_duration" in Fine.definition and "-> self.score_parent" in Fine.definition
    assert Fine().required_provides() == ("labels",)

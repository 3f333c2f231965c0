"""Scores of trained models by registered analyses: one template, the generic `Score` table, and
the pieces a lab uses to add a metric without writing a table by hand.

A lab registers a measure (`neurofit.pipelines.scoring`) and selects what it scores::

    from neurofit.pipelines.registry import register
    from neurofit.pipelines.scoring import Measure

    @register("analysis", "mylab.mean_rate", applies_to=("responses",))
    def mean_rate(model, data, seed, context, *, tier: str = "test") -> Measure: ...

    analysis = Analysis.add("mylab.mean_rate", {"tier": "test"})
    ScoreSelection.add(keys, analysis)     # keys of add_grid: scored once trained, if it applies
    populate()                                                 # Score rows, one Score.Unit per unit

A lab that wants a dedicated table (its own name, its own parent) subclasses `ScoreTable`::

    @schema                                # the lab's own dj.Schema()
    class MeanRate(ScoreTable):
        measure = "mylab.mean_rate"        # a registered name, or the function itself
        measure_config = {"tier": "test"}

It gets the same columns (``aggregate``, ``n_units``, provenance), a ``MeanRate.Unit`` part and
the same fetch/compute/insert logic; ``applies_to`` comes from the measure's registration unless
the class sets it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import datajoint as dj
import numpy as np

from neurofit.pipelines import hashing, registry, scoring, training

from . import _runtime, provenance
from ._schema import schema
from .applicability import Applicable, provides_condition, trained_models_for
from .config import ConfigTable, Dataset, Model, _definition
from .selection import TrainingSelection
from .training import TrainedModel

__all__ = ["Analysis", "Score", "ScoreSelection", "ScoreTable", "load_trained_and_data"]


def trained_model_fetch(key: dict[str, Any]) -> list[str]:
    """What a make_fetch of a table scoring a trained model returns: small texts only.

    The dataset and model config texts and the weights' checksum (DataJoint hashes make_fetch's
    result twice per key, so weights and data are loaded in make_compute instead).
    """
    return [
        bytes((Dataset & key).fetch1("dataset_config")).decode(),
        bytes((Model & key).fetch1("model_config")).decode(),
        (TrainedModel & key).fetch1("weights_sha256"),
    ]


def load_trained_and_data(key: dict[str, Any], dataset_config: str, model_config: str, device: str):
    """The trained model of ``key`` (eval mode, on ``device``) and the data it was trained on.

    Args:
        key: holds a `TrainedModel` key.
        dataset_config, model_config: the canonical config texts (as make_fetch returns them).

    Returns:
        ``(model, data)``: the `torch.nn.Module` and its `DataBundle`.
    """
    from neurofit.datasets.info import DataInfo

    trained = TrainedModel & {name: key[name] for name in TrainedModel.primary_key}
    data = training.build_data(key["dataset_fn"], hashing.decode_config(dataset_config), key["seed"])
    model = training.load_trained(
        key["model_fn"], hashing.decode_config(model_config),
        DataInfo.from_dict(trained.fetch1("data_info")), key["seed"], trained.fetch_weights(), device=device,
    )
    return model, data


def _none_if_nan(value: float) -> float | None:
    # MySQL float columns cannot hold NaN; NULL says "undefined" on every backend.
    return None if not np.isfinite(value) else float(value)


@schema
class Analysis(ConfigTable, dj.Manual):
    """One analysis configuration: a registered analysis (measure) with complete hyperparameters."""

    kind = "analysis"
    definition = _definition("analysis")


def _one_key(table, item, name: str) -> dict[str, Any]:
    rows = table() & item
    if len(rows) != 1:
        raise ValueError(
            f"{name} {item!r} matches {len(rows)} rows of {table.__name__}; pass the key returned "
            f"by {table.__name__}.add(...)"
        )
    return rows.keys()[0]


@schema
class ScoreSelection(dj.Manual):
    """One training (trained or not yet) chosen to be scored by one analysis config.

    `Score` computes a selected pair once its model is trained, and only if the analysis applies
    to it (what the trained model's data provide): selecting before training is fine.
    """

    definition = """
    -> TrainingSelection
    -> Analysis
    """

    @classmethod
    def add(cls, models: Any, analysis: dict[str, Any]) -> list[dict[str, Any]]:
        """Select trainings for an analysis; trained models it does not apply to are left out.

        Args:
            models: a restriction of `TrainingSelection` or `TrainedModel` (keys, a list of
                keys, a query), e.g. the keys `TrainingSelection.add_grid` returned.
            analysis: the key `Analysis.add` returned.

        Returns:
            The selected keys (existing selections are kept). Models not yet trained are
            selected; `Score` skips those the analysis turns out not to apply to.

        Raises:
            ValueError: the analysis matches no row, or every given model is trained and the
                analysis applies to none of them (the message says what it needs and what they
                provide).
        """
        analysis_key = _one_key(Analysis, analysis, "analysis")
        needs = registry.applies_to(analysis_key["analysis_fn"])
        if isinstance(models, dj.expression.QueryExpression):
            models = models.proj()  # by key only: secondary namesakes cannot be matched
        chosen = (TrainingSelection & models).proj()
        trained = TrainedModel & chosen
        unfit = trained.proj() - trained_models_for(needs)
        fitting = (chosen - unfit).keys()
        if len(chosen) and not fitting:
            provided = sorted({str(p) for p in trained.to_arrays("provides")})
            raise ValueError(
                f"analysis {analysis_key['analysis_fn']!r} applies to data that provide any of "
                f"{list(needs)}; the {len(chosen)} trained model(s) given provide {provided}. "
                "Choose other models or another analysis."
            )
        rows = [{**key, **analysis_key} for key in fitting]
        cls().insert(rows, skip_duplicates=True)
        return rows


_UNIT_DEFINITION = """
    -> master
    session: varchar(64)               # session of the unit (the measure's name for pooled units, e.g. all)
    unit: int32                        # index of the unit within its session, from 0
    ---
    value = null: float64              # the measure's value for this unit (NULL: undefined)
    """


def _definition_for(table_name: str, *parents: str) -> str:
    references = "\n    ".join(f"-> {parent}" for parent in parents)
    return f"""
    {references}
    ---
    aggregate = null: float64          # the measure over all units (its own rule; default: mean of the finite units); NULL: undefined
    n_units: int32                     # unit rows in the Unit part
    {provenance.attributes(table_name)}
    """


class ScoreTable(Applicable, dj.Computed):
    """Template for "score a trained model" tables: a measure, per-unit part rows, an aggregate.

    Subclass it and decorate the subclass with a schema. Unless the subclass writes its own,
    it gets the definition ``-> score_parent`` (default `TrainedModel`) with ``aggregate``,
    ``n_units`` and its provenance columns, and a ``Unit`` part (``session``, ``unit`` ->
    ``value``). Each row: the trained model is rebuilt (eval mode, on the worker's device) with
    its data, ``measure(model, data, seed, context, **measure_config)`` returns a
    `neurofit.pipelines.scoring.Measure`, and the master row and all unit rows are inserted in
    one transaction (units as one list).

    Attributes:
        measure: the registered analysis name (resolved where the job runs: registry, entry
            points, allowed modules) or the function itself, with the analysis signature
            ``(model, data, seed, context, *, <hyperparameters>)``.
        measure_config: its hyperparameters (checked against its signature and annotations).
        score_parent: the table each row hangs on; its key must hold a `TrainedModel` key.
        applies_to: what the data must provide (see `neurofit.schemas.applicability`); None
            takes the measure's registered ``applies_to``.
    """

    measure: ClassVar[Callable[..., Any] | str | None] = None
    measure_config: ClassVar[dict[str, Any]] = {}
    score_parent: ClassVar[Any] = TrainedModel

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "definition" not in cls.__dict__:
            cls.definition = _definition_for(cls.__name__, "self.score_parent")
        if "Unit" not in cls.__dict__:
            # Each table needs its own part class: DataJoint binds a part to one master.
            cls.Unit = type("Unit", (dj.Part,), {
                "__doc__": f"One unit's value of {cls.__name__}'s measure.",
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.Unit",
                "definition": _UNIT_DEFINITION,
            })
        if callable(cls.__dict__.get("measure")):
            # A bad signature or config fails where the class is written, not in every job.
            cls.measure_builder(None).validate(cls.measure_config)

    # ---- which measure scores a key (the hooks `Score` overrides) ------------------------------

    @classmethod
    def measure_builder(cls, name: str | None) -> registry.Builder:
        """The analysis scoring this table's rows (``name``: what `measure_spec` returned)."""
        measure = cls.measure
        if measure is None:
            raise TypeError(f"{cls.__name__} has no measure: set measure = <registered analysis name or function>")
        if isinstance(measure, str):
            return registry.resolve("analysis", measure)
        return registry.builder_for("analysis", measure)

    def measure_spec(self, key: dict[str, Any]) -> tuple[str, str]:
        """(analysis name, canonical config text) scoring ``key``: small, fetched in make_fetch."""
        builder = self.measure_builder(None)
        return builder.name, hashing.encode_config(builder.validate(self.measure_config))

    def required_provides(self) -> tuple[str, ...] | None:
        """``applies_to`` if the class sets it, else the measure's registered ``applies_to``."""
        if self.applies_to is not None:
            return self.applies_to
        try:
            declared = registry.requirements_of(self.measure_builder(None).function).get("applies_to")
        except registry.RegistryError:
            return None  # unresolvable here: its jobs fail with the registry's message, not silently
        return None if declared is None else registry.check_applies_to(declared, type(self).__name__)

    # ---- the three parts of make -----------------------------------------------------------

    def make_fetch(self, key):
        return [*trained_model_fetch(key), *self.measure_spec(key)]

    @provenance.recorded()
    def make_compute(self, key, dataset_config, model_config, weights_sha256, measure_name, measure_config):
        builder = self.measure_builder(measure_name)
        device = _runtime.context().device
        model, data = load_trained_and_data(key, dataset_config, model_config, device)
        context = _runtime.context()
        return [scoring.run_measure(builder.function, model, data, key["seed"], context,
                                    hashing.decode_config(measure_config))]

    def make_insert(self, key, measure: scoring.Measure, record):
        self.insert1({**key, "aggregate": _none_if_nan(measure.aggregate), "n_units": measure.n_units, **record})
        self.Unit.insert([
            {**key, "session": session, "unit": index, "value": _none_if_nan(value)}
            for session, values in measure.per_unit.items()
            for index, value in enumerate(values.tolist())
        ])


@schema
class Score(ScoreTable):
    """A trained model scored by a registered analysis config (selected in `ScoreSelection`).

    ``aggregate`` is the analysis's summary; per-unit values are in `Score.Unit`. Only pairs the
    analysis applies to (its registered ``applies_to``) are computed.
    """

    # TrainedModel as a parent too: no job before training, and deleting a trained model deletes
    # its scores (the selection stays, so a retrained model is scored again).
    definition = _definition_for("Score", "TrainedModel", "ScoreSelection")

    def measure_spec(self, key):
        return key["analysis_fn"], bytes((Analysis & key).fetch1("analysis_config")).decode()

    @classmethod
    def measure_builder(cls, name):
        return registry.resolve("analysis", name)

    @property
    def key_source(self):
        # Per analysis: its own applies_to. An analysis that cannot be resolved keeps its rows,
        # so the job fails with the registry's message instead of vanishing.
        conditions: list[Any] = []
        for name in sorted(set((dj.U("analysis_fn") & ScoreSelection).to_arrays("analysis_fn"))):
            try:
                needs = registry.applies_to(name)
            except registry.RegistryError:
                needs = None
            if needs is None or not registry.valid_name(name):
                conditions.append({"analysis_fn": name})
            else:
                conditions.append(f"analysis_fn = '{name}' AND {provides_condition(needs)}")
        if not conditions:
            return ScoreSelection.proj()
        return (ScoreSelection.proj() * TrainedModel.proj("provides") & conditions).proj()

"""Analyses: registered measures over a trained model and its data, with per-unit results.

An analysis is registered under kind ``"analysis"`` with the signature::

    @register("analysis", "mylab.mean_rate", applies_to=("responses",))
    def mean_rate(model, data, seed, context, *, tier: str = "test") -> Measure:
        ...

``model`` is the trained network in eval mode on ``context.device`` (a
`neurofit.pipelines.training.RunContext`), ``data`` the `DataBundle` its dataset builder makes
with ``seed``; call the model as ``model(inputs, session, **other_inputs)``
(`neurofit.pipelines.batches.model_inputs`). It returns a `Measure`: one value per unit (neuron,
class, target dimension, ...) per session and an aggregate. `neurofit.schemas.Score` stores
one row per trained model x analysis config, with the units in its part table; a lab's own
table can use the same machinery (`neurofit.schemas.scoring.ScoreTable`). No database here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["Measure", "class_accuracy", "neuron_scores", "run_measure"]


@dataclass
class Measure:
    """What an analysis returns.

    Attributes:
        per_unit: ``{session: (n_units,) float}``, one value per unit; NaN where undefined.
        aggregate: the summary over all units; None takes the mean of the finite unit values.
    """

    per_unit: Mapping[str, Any]
    aggregate: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.per_unit, Mapping):
            raise TypeError(f"Measure.per_unit must be a dict {{session: values}}, got {type(self.per_unit).__name__}")
        checked = {}
        for session, values in self.per_unit.items():
            if not isinstance(session, str) or not 0 < len(session) <= 64:
                raise ValueError(f"Measure.per_unit: session {session!r} must be a name of 1-64 characters")
            array = np.asarray(values, dtype=np.float64)
            if array.ndim != 1:
                raise ValueError(f"Measure.per_unit[{session!r}] must be 1-D (n_units,), got shape {array.shape}")
            checked[session] = array
        self.per_unit = checked
        if self.aggregate is None:
            finite = np.concatenate([np.zeros(0), *checked.values()])
            finite = finite[np.isfinite(finite)]
            self.aggregate = float(finite.mean()) if finite.size else float("nan")
        elif isinstance(self.aggregate, bool) or not isinstance(self.aggregate, (int, float, np.number)):
            raise TypeError(f"Measure.aggregate must be a number or None, got {self.aggregate!r}")
        self.aggregate = float(self.aggregate)

    @property
    def n_units(self) -> int:
        """Units over all sessions."""
        return int(sum(values.size for values in self.per_unit.values()))


def run_measure(function: Callable[..., Any], model, data, seed: int, context, config: Mapping[str, Any]) -> Measure:
    """Call an analysis function and check what it returns.

    Raises:
        TypeError: it returned something other than a `Measure`.
    """
    from .seeding import set_seed

    set_seed(seed)  # analyses that sample (bootstraps, splits) repeat exactly
    result = function(model, data, seed, context, **dict(config))
    if not isinstance(result, Measure):
        name = getattr(function, "__qualname__", repr(function))
        raise TypeError(f"analysis {name} returned {type(result).__name__}; it must return a neurofit.pipelines.scoring.Measure")
    return result


NeuronScore = Literal[
    "cc_norm", "cc_abs", "cc_max", "single_trial_correlation", "correlation_to_average",
    "fev", "feve", "oracle_correlation",
]


def neuron_scores(
    model, data, seed: int, context, *, score: NeuronScore = "cc_norm",
    tier: Literal["validation", "test"] = "test",
) -> Measure:
    """One per-neuron prediction score of `neurofit.pipelines.performance.score_predictions`.

    The default, CCnorm (Schoppe et al. 2016), is what auditory and visual leaderboards rank
    models by; neurons without signal power are NaN and left out of the aggregate (the mean
    over the finite neurons). ``tier`` falls back to validation for data without a test tier.
    Registered as ``neurofit.neuron_scores``, for data that provide neural responses.
    """
    from .performance import evaluate
    from .task_scores import scoring_tier

    sessions = evaluate(model, data, device=context.device, tier=scoring_tier(data, tier))
    return Measure({session: scores[score] for session, scores in sessions.items()})


def class_accuracy(model, data, seed: int, context, *, tier: Literal["validation", "test"] = "test") -> Measure:
    """Per-class accuracy (recall) of a classifier; the aggregate is the balanced accuracy.

    Units are the classes (``DataInfo.class_names`` order), under session ``"all"``: labels of
    every session are pooled. A class without test labels is NaN and left out of the mean.
    ``tier`` falls back to validation for data without a test tier. Registered as
    ``neurofit.class_accuracy``, for data that provide labels.
    """
    from .task_scores import gather_task_outputs, scoring_tier

    gathered = gather_task_outputs(model, data.loaders[scoring_tier(data, tier)], data.info, context.device)
    predicted = gathered["logits"].argmax(axis=1)
    labels = gathered["labels"]
    recall = np.full(data.info.n_classes, np.nan)
    for label in range(data.info.n_classes):
        rows = labels == label
        if rows.any():
            recall[label] = float(np.mean(predicted[rows] == label))
    return Measure({"all": recall})

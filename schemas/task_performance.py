"""How well each trained model does its task: class labels and regression targets."""

from __future__ import annotations

from typing import Any

import datajoint as dj
import numpy as np

from neurofit.pipelines import task_scores

from . import _runtime, provenance
from ._schema import schema
from .applicability import Applicable
from .scoring import load_trained_and_data, trained_model_fetch
from .training import TrainedModel  # noqa: F401 (the definition's -> TrainedModel)


def _value(number: float) -> float | None:
    # MySQL float columns cannot hold NaN; NULL says "undefined" on every backend.
    return None if not np.isfinite(number) else float(number)


@schema
class TaskPerformance(Applicable, dj.Computed):
    """Task scores of one trained model on its test tier (the validation tier if it has no test).

    Only models of data that provide class labels or regression targets get a row. Labels:
    accuracy and mean cross-entropy of the model's logits ((batch, n_classes), or per time step).
    Targets: MSE and variance-weighted R² over the entries the loss mask keeps (the batch's
    ``weights``), per target dimension in `TaskPerformance.Target`. See
    `neurofit.pipelines.task_scores` for the definitions.
    """

    applies_to = ("labels", "targets")

    definition = f"""
    -> TrainedModel
    ---
    tier: varchar(16)                  # data tier scored: test, or validation where there is no test
    n_trials: int32                    # trials scored
    accuracy = null: float64           # fraction of labels whose largest logit is the label; NULL without labels
    cross_entropy = null: float64      # mean cross-entropy of the labels (nats); NULL without labels
    n_labels = 0: int64                # labels scored: trials, or time steps after burn-in
    mse = null: float64                # mean squared error of the targets over the masked entries; NULL without targets
    r2 = null: float64                 # variance-weighted R2 over the masked entries (1 - sum SSres / sum SStot)
    n_target_values = 0: int64         # target entries with a weight > 0
    {provenance.attributes("TaskPerformance")}
    """

    class Target(dj.Part):
        """Scores of one target dimension (an entry of the flattened target_shape)."""

        definition = """
        -> master
        target: int32                  # index into the flattened target_shape
        ---
        target_name = "": varchar(64)  # DataInfo.target_names entry, if named
        mse = null: float64            # mean squared error over the masked entries of this dimension
        r2 = null: float64             # R2 over them; NULL where the target does not vary
        n_values: int64                # entries with a weight > 0
        """

    def make_fetch(self, key):
        return trained_model_fetch(key)

    @provenance.recorded()
    def make_compute(self, key, dataset_config, model_config, weights_sha256):
        device = _runtime.context().device
        model, data = load_trained_and_data(key, dataset_config, model_config, device)
        return [task_scores.evaluate_task(model, data, device=device), list(data.info.target_names)]

    def make_insert(self, key, scores: task_scores.TaskScores, target_names: list[str], record: dict[str, Any]):
        self.insert1({
            **key, "tier": scores.tier, "n_trials": scores.n_trials,
            "accuracy": _value(scores.accuracy), "cross_entropy": _value(scores.cross_entropy),
            "n_labels": scores.n_labels, "mse": _value(scores.mse), "r2": _value(scores.r2),
            "n_target_values": scores.n_target_values, **record,
        })
        per = scores.per_target
        self.Target.insert([
            {**key, "target": index, "target_name": target_names[index] if index < len(target_names) else "",
             "mse": _value(per["mse"][index]), "r2": _value(per["r2"][index]), "n_values": int(per["n_values"][index])}
            for index in range(len(per.get("mse", ())))
        ])

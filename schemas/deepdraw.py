"""DeepDraw's analyses as tables: label tuning of every layer, and trained-vs-untrained tests.

Most of DeepDraw's per-layer analyses are neurofit's own tables, reused:

* RDM against the class oracle: `neurofit.schemas.RDM` (correlation distance) per layer and
  `RDMComparison` (Pearson) with the reference RDM `add_class_oracle` inserts (0 within a
  class, 1 between classes: DeepDraw's ideal-observer RDM of the labels);
* CKA between trained and untrained networks: `CKASelection.add_pairs` then `CKA`;
* kinematic tuning (direction, speed, direction x speed, Cartesian and polar position,
  acceleration), preferred directions, their uniformity and the fraction of directionally
  tuned units per layer: `neurofit.schemas.Tuning`, on a stimulus set `add_pcr_stimulus_set`
  makes with the time-resolved kinematics.

This module adds what those lack: `LabelTuning` (one-vs-rest ROC AUC of every unit, DeepDraw's
label tuning), `PaperTuning` (`Tuning` with the time crop of DeepDraw's published analysis; `Tuning`
crops nothing) and `ControlComparison` (per layer and metric, trained against untrained networks
paired by seed).
"""

from __future__ import annotations

import datajoint as dj
import numpy as np

from neurofit.pipelines.analysis import tuning as tuning_functions

from . import provenance
from .config import Dataset, Model, Trainer  # noqa: F401  (used in definitions)
from .probing import Activations, StimulusSet
from .rsa import RDMComparison, ReferenceRDM
from .storage import read_stored
from .tuning import TUNING_ATTRIBUTES, LayerTuning, Tuning, inside_input, time_major

schema = dj.Schema()
schema_name = "deepdraw"

LABEL_TUNED_THRESHOLD = 0.2  # 2 (AUC - 0.5) a unit needs to count as label tuned (chosen like the R2 threshold)
ORACLE_SUFFIX = "_class_oracle"


def add_pcr_stimulus_set(name: str, bundle, *, description: str = "") -> dict:
    """The test tier of a PCR bundle as a `StimulusSet`: spindle inputs plus kinematics per time step.

    Features: ``position``, ``velocity``, ``acceleration`` (n, T, 2; cm, cm/s, cm/s²) and
    ``label`` (n,). Returns the stimulus-set key.
    """
    inputs = np.concatenate([b["inputs"].numpy() for b in bundle.loaders["test"]["all"]])
    art = bundle.artefacts
    features = {k: art[f"test_{k}"] for k in ("position", "velocity", "acceleration")}
    features["label"] = np.asarray(art["test_label"], dtype=np.float64)
    return StimulusSet.add(
        name, inputs, features, units={"position": "cm", "velocity": "cm/s", "acceleration": "cm/s^2"},
        description=description or "PCR test trajectories: spindle inputs and end-effector kinematics",
        input_axes=("time", "space", "channel"), sampling_rate=bundle.info.sampling_rate,
        time_resolved=("position", "velocity", "acceleration"),
    )


def add_class_oracle(stimulus_set: str) -> dict:
    """Insert the class-oracle RDM of a stimulus set with a ``label`` feature (idempotent)."""
    name = f"{stimulus_set}{ORACLE_SUFFIX}"[:64]
    if ReferenceRDM & {"reference_rdm": name}:
        return {"reference_rdm": name}
    labels = StimulusSet.features({"stimulus_set": stimulus_set})["label"]
    oracle = (labels[:, None] != labels[None, :]).astype(np.float64)
    return ReferenceRDM.add(name, stimulus_set, oracle, description="class oracle: 0 within a class, 1 between")


@schema
class LabelTuning(dj.Computed):
    """Label tuning of every unit of one layer: one-vs-rest ROC AUC of its time-averaged activity.

    Trajectories are split as `Tuning` splits them (DeepDraw's 80/20, seed 42); the score is
    2 (macro test AUC - 0.5) (DeepDraw's ``tune_row_label``), 0 at chance.
    """

    definition = f"""
    -> Activations.Layer
    ---
    score: <blob>                          # (n_units,) 2 (macro ROC AUC - 0.5), dimensionless, NaN if undefined
    mean_score = null: float64             # mean score over units
    fraction_tuned = null: float64         # fraction of units with score > tuned_threshold
    tuned_threshold: float64               # score a unit needs to count as label tuned
    {provenance.attributes("LabelTuning")}
    """

    @property
    def key_source(self):
        labelled = StimulusSet.Feature & "feature = 'label'"
        return (Activations.Layer.proj() & labelled.proj())

    def make_fetch(self, key):
        layer = (Activations.Layer & key).proj("unit_shape", "axes", "n_time").fetch1()
        return [{k: layer[k] for k in ("unit_shape", "axes", "n_time")}]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, layer):
        activations = np.asarray(read_stored((Activations.Layer & key).fetch1("activations")), dtype=np.float64)
        if layer["n_time"]:
            activations = time_major(activations, layer["unit_shape"], Activations.layer_axes(layer)).mean(axis=1)
        labels = StimulusSet.features(key)["label"]
        n = len(labels)
        train = np.ones(n, dtype=bool)
        train[np.random.RandomState(42).permutation(n)[: int(np.ceil(0.2 * n))]] = False  # Tuning's split
        score, _ = tuning_functions.label_tuning(activations, labels, train)
        return [score]

    def make_insert(self, key, score, record):
        finite = score[np.isfinite(score)]
        self.insert1({**key, "score": np.asarray(score, dtype=np.float64),
                      "mean_score": float(finite.mean()) if finite.size else None,
                      "fraction_tuned": float(np.mean(finite > LABEL_TUNED_THRESHOLD)) if finite.size else None,
                      "tuned_threshold": LABEL_TUNED_THRESHOLD, **record})


@schema
class PaperTuning(LayerTuning, dj.Computed):
    """`Tuning` of every unit of one layer, cropped as DeepDraw's published analysis crops.

    The fits are `Tuning`'s; only the layer's time steps differ. DeepDraw keeps steps
    ``tcoff <= j < n_input - tcoff`` of the layer's own steps, ``tcoff`` being the number
    of steps centred at or before a tenth of the input (32 of its 320 samples):
    `neurofit.pipelines.analysis.tuning.deepdraw_kept_steps`. A strided layer thus loses only
    its start. Steps centred outside the input are left out, as in `Tuning`.
    """

    definition = f"""
    -> Activations.Layer
    ---
    {TUNING_ATTRIBUTES}
    {provenance.attributes("PaperTuning")}
    """

    @staticmethod
    def kept_steps(centres: np.ndarray, n_time: int) -> np.ndarray:
        return inside_input(centres, n_time) & tuning_functions.deepdraw_kept_steps(centres, n_time)


@schema
class ControlPair(dj.Manual):
    """One trained network configuration and its untrained control (same data, model, seeds)."""

    definition = """
    control_pair: varchar(64)              # name, e.g. spatial_temporal_vs_untrained
    ---
    -> Dataset
    -> Model
    -> Trainer.proj(trained_fn='trainer_fn', trained_hash='trainer_hash')
    -> Trainer.proj(control_fn='trainer_fn', control_hash='trainer_hash')
    -> StimulusSet
    """


def _layer_metrics(pair: dict, role: str) -> dict[tuple[str, str], dict[int, float]]:
    """``{(layer, metric): {seed: value}}`` of the trained or control networks of a pair."""
    restriction = {"dataset_fn": pair["dataset_fn"], "dataset_hash": pair["dataset_hash"],
                   "model_fn": pair["model_fn"], "model_hash": pair["model_hash"],
                   "trainer_fn": pair[f"{role}_fn"], "trainer_hash": pair[f"{role}_hash"],
                   "stimulus_set": pair["stimulus_set"]}
    out: dict[tuple[str, str], dict[int, float]] = {}

    def put(rows, metric, column):
        for row in rows:
            if row[column] is not None:
                out.setdefault((row["layer"], metric), {})[row["seed"]] = float(row[column])

    oracle = {"reference_rdm": f"{pair['stimulus_set']}{ORACLE_SUFFIX}"[:64], "comparison_method": "pearson",
              "rdm_method": "correlation"}
    put((RDMComparison & restriction & oracle).proj("similarity").to_dicts(), "oracle_similarity", "similarity")
    put((Tuning & restriction).proj("fraction_tuned").to_dicts(), "fraction_direction_tuned", "fraction_tuned")
    put((PaperTuning & restriction).proj("fraction_tuned").to_dicts(), "fraction_direction_tuned_paper",
        "fraction_tuned")
    put((LabelTuning & restriction).proj("fraction_tuned").to_dicts(), "fraction_label_tuned", "fraction_tuned")
    put((LabelTuning & restriction).proj("mean_score").to_dicts(), "mean_label_score", "mean_score")
    return out


@schema
class ControlComparison(dj.Computed):
    """Trained against untrained networks of one pair, per layer and metric, paired by seed."""

    definition = f"""
    -> ControlPair
    ---
    n_rows: int32                          # layer x metric rows
    {provenance.attributes("ControlComparison")}
    """

    class Row(dj.Part):
        """One layer and metric: the paired test over the seeds both networks have."""

        definition = """
        -> master
        layer: varchar(128)                # layer name
        metric: varchar(64)                # oracle_similarity, fraction_direction_tuned, ...
        ---
        n_seeds: int32                     # pairs compared
        mean_trained: float64              # mean over seeds, trained networks (metric's unit)
        mean_control: float64              # mean over seeds, untrained networks
        mean_difference: float64           # trained - control
        t = null: float64                  # paired t statistic
        p_t = null: float64                # two-sided paired t-test
        p_wilcoxon = null: float64         # two-sided Wilcoxon signed-rank test
        """

    def make_fetch(self, key):
        pair = (ControlPair & key).fetch1()
        return [_layer_metrics(pair, "trained"), _layer_metrics(pair, "control")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, trained, control):
        rows = []
        for (layer, metric), values in trained.items():
            other = control.get((layer, metric), {})
            seeds = sorted(set(values) & set(other))
            if not seeds:
                continue
            test = tuning_functions.paired_test([values[s] for s in seeds], [other[s] for s in seeds])
            rows.append({"layer": layer, "metric": metric, "n_seeds": test["n"],
                         **{k: (None if not np.isfinite(test[k]) else test[k])
                            for k in ("mean_trained", "mean_control", "mean_difference", "t", "p_t", "p_wilcoxon")}})
        return [rows]

    def make_insert(self, key, rows, record):
        self.insert1({**key, "n_rows": len(rows), **record})
        self.Row.insert([{**key, **row} for row in rows])

"""`neurofit demo deepdraw`: task-driven proprioception (DeepDraw) on generated characters.

Generate PCR characters (synthetic splines -> augmentation -> batched IK -> 25 muscle lengths
and velocities), train one DeepDraw architecture (spatial_temporal) and its untrained control
(the same trainer config with ``max_epochs: 0``) x 2 seeds, probe every layer with the test
trajectories, then compare layers to the class oracle (RDM), trained to untrained (CKA), and
fit kinematic and label tuning; paired trained-vs-untrained tests per layer close it.
"""

from __future__ import annotations

import time

import numpy as np

#: Demo sizes: 20 classes x 200, T = 64, one plane, no noise and DeepDraw's first 3 start points
#: (DeepDraw's full variability needs ~10^6 trajectories). One start point makes the input
#: itself class-like (oracle similarity 0.23), so training can only add ~3x; 3 start points bring
#: the input to 0.10 while 200 per class keep test accuracy above 0.8 (deepdraw-3's sweep).
DATA = {"n_per_class": 200, "n_time": 64, "planes": ["horizontal"], "n_start_points": 3, "max_noise": 0.0}
MODEL = {"arch_type": "spatial_temporal", "n_skernels": [8, 16], "n_tkernels": [16, 32], "s_kernelsize": 5,
         "t_kernelsize": 5, "s_stride": 2, "t_stride": 2}
#: DeepDraw's schedule (restore best, lr / 4 on a plateau) with patience 3 instead of 5, so
#: that the first decay fits into 22 epochs: the decay adds ~0.05 accuracy here.
TRAINED = {"max_epochs": 22, "lr": 2e-3, "patience": 3}
UNTRAINED = {"max_epochs": 0, "lr": 5e-4}  # the control: an ordinary config, never trained
SEEDS = [1, 2]
STIMULUS_SET = "pcr_demo_test"


def insert_configs(data=None, model=None, trained=None, seeds=None, comment="neurofit deepdraw demo"):
    """Insert the demo's configs and select trained and untrained x seeds; returns the keys."""
    from .config import Dataset, Model, Trainer
    from .selection import TrainingSelection

    dataset = Dataset.add("neurofit.pcr_characters", {**DATA, **(data or {})}, comment=comment)
    net = Model.add("neurofit.deepdraw_conv", {**MODEL, **(model or {})}, comment=comment)
    trainer = Trainer.add("neurofit.supervised", {**TRAINED, **(trained or {})}, comment=comment)
    control = Trainer.add("neurofit.supervised", UNTRAINED, comment=comment)
    keys = TrainingSelection.add_grid(dataset, net, [trainer, control], seeds or SEEDS)
    return {"dataset": dataset, "model": net, "trained": trainer, "control": control, "keys": keys}


def analyse(configs: dict, stimulus_set: str = STIMULUS_SET) -> None:
    """Probe the trained models with the test tier and populate DeepDraw's analyses."""
    from neurofit.pipelines import training

    from . import Dataset, TrainedModel
    from .deepdraw import ControlComparison, ControlPair, add_class_oracle, add_pcr_stimulus_set
    from .populating import populate
    from .probing import ProbeSelection
    from .similarity import CKASelection

    dataset_fn, dataset_config = (Dataset & configs["dataset"]).fetch1("dataset_fn", "dataset_config")
    from neurofit.pipelines import hashing

    config = hashing.decode_config(bytes(dataset_config).decode())
    bundle = training.build_data(dataset_fn, config, SEEDS[0])
    add_pcr_stimulus_set(stimulus_set, bundle)
    add_class_oracle(stimulus_set)
    models = TrainedModel & configs["keys"]
    ProbeSelection.add(models, stimulus_set)
    populate(["Activations"], display_progress=False)
    CKASelection.add_pairs(models, stimulus_set)
    populate(display_progress=False)
    name = f"{stimulus_set[:40]}_{configs['model']['model_hash'][:8]}_vs_untrained"
    ControlPair.insert1({
        "control_pair": name, **configs["dataset"], **configs["model"],
        "trained_fn": configs["trained"]["trainer_fn"], "trained_hash": configs["trained"]["trainer_hash"],
        "control_fn": configs["control"]["trainer_fn"], "control_hash": configs["control"]["trainer_hash"],
        "stimulus_set": stimulus_set,
    }, skip_duplicates=True)
    # After every analysis it compares: a ControlComparison row reads their finished rows.
    ControlComparison.populate(display_progress=False)


def summary(configs: dict, stimulus_set: str = STIMULUS_SET) -> dict:
    """Accuracy, layer-wise oracle similarity, CKA, tuned fractions and paired tests as frames."""
    from . import TaskPerformance, Tuning
    from .deepdraw import ControlComparison, ControlPair, LabelTuning, PaperTuning
    from .probing import Activations
    from .rsa import RDMComparison
    from .similarity import CKA

    role = {configs["trained"]["trainer_hash"]: "trained", configs["control"]["trainer_hash"]: "untrained"}
    keys = configs["keys"]
    accuracy = (TaskPerformance & keys).to_pandas().reset_index()[["trainer_hash", "seed", "accuracy"]]
    accuracy["network"] = accuracy.pop("trainer_hash").map(role)
    layers = (Activations.Layer & keys & {"stimulus_set": stimulus_set}).proj("layer_index")
    oracle = {"comparison_method": "pearson", "rdm_method": "correlation"}
    frame = (RDMComparison * layers & keys & oracle).to_pandas().reset_index()
    frame = frame[["trainer_hash", "seed", "layer", "layer_index", "similarity"]]
    tuning = (Tuning * layers & keys).to_pandas().reset_index()[["trainer_hash", "seed", "layer", "fraction_tuned",
                                                                   "uniformity", "preferred_direction"]]
    labels = (LabelTuning & keys).to_pandas().reset_index()[["trainer_hash", "seed", "layer", "fraction_tuned"]]
    labels = labels.rename(columns={"fraction_tuned": "fraction_label_tuned"})
    paper = (PaperTuning & keys).to_pandas().reset_index()[["trainer_hash", "seed", "layer", "fraction_tuned"]]
    paper = paper.rename(columns={"fraction_tuned": "fraction_tuned_paper"})
    on = ["trainer_hash", "seed", "layer"]
    frame = frame.merge(tuning, on=on, how="left").merge(paper, on=on, how="left").merge(labels, on=on, how="left")
    frame["network"] = frame.pop("trainer_hash").map(role)
    frame = frame.sort_values(["network", "seed", "layer_index"]).reset_index(drop=True)
    cka = []
    for row in (CKA & keys & {"cka_method": "linear"}).to_dicts():
        a, b = role.get(row["trainer_hash"]), role.get(row["trainer_hash_b"])
        same_config = all(row[f"{k}_b"] == row[k] for k in ("dataset_hash", "model_hash", "seed"))
        if a and b and a != b and same_config:  # the same network, trained and untrained
            matrix = np.asarray(row["cka"]) if a == "trained" else np.asarray(row["cka"]).T
            cka.append({"seed": row["seed"], "layers": row["layers_a"], "cka": matrix})
    pairs = ControlPair & configs["dataset"] & configs["model"] & {"stimulus_set": stimulus_set}
    rows = ControlComparison.Row & pairs.proj()
    tests = rows.to_pandas().reset_index() if rows else None
    return {"accuracy": accuracy, "layers": frame, "cka": cka, "tests": tests}


def _direction_verdict(layers) -> str:
    means = layers.groupby(["network", "layer_index"])["fraction_tuned"].mean().unstack(0)
    if "trained" not in means or "untrained" not in means:
        return "tuned fractions missing"
    deeper = means["trained"].iloc[-2] - means["trained"].iloc[0]
    return (f"trained minus untrained fraction of direction-tuned units per layer: "
            f"{np.round((means['trained'] - means['untrained']).to_numpy(), 3).tolist()}; "
            f"trained networks' tuned fraction changes by {deeper:+.3f} from the first to the last conv layer")


def run_deepdraw_demo(prefix: str | None = None, out=print) -> dict:
    """DeepDraw: character recognition from muscle spindles, trained vs untrained, layer by layer (a few minutes).

    Returns:
        ``{"trained", "seconds", "accuracy", "layers", "cka", "tests", "n_rejected",
        "max_tracing_error_cm"}``.
    """
    import pandas as pd

    from . import TrainedModel
    from .activation import activate
    from .populating import populate

    started = time.perf_counter()
    backend = activate(prefix)
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    configs = insert_configs()
    before = len(TrainedModel & configs["keys"])
    out(f"selected {len(configs['keys'])} trainings (trained + untrained x {len(SEEDS)} seeds); {before} already trained")
    populate(["TrainedModel"], display_progress=False)
    trained = len(TrainedModel & configs["keys"]) - before
    analyse(configs)
    result = summary(configs)
    info = (TrainedModel & configs["keys"]).proj("data_info").to_dicts(limit=1)[0]["data_info"]
    seconds = time.perf_counter() - started
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 160):
        out("\ntest accuracy (chance 0.05):")
        out(result["accuracy"].to_string(index=False))
        out("\nper layer: similarity to the class-oracle RDM (Pearson), fraction of direction-tuned units (no crop, "
            "and DeepDraw's published crop) and of label-tuned units:")
        out(result["layers"].drop(columns=["preferred_direction"]).to_string(index=False))
        for entry in result["cka"]:
            out(f"\nlinear CKA, trained (rows) vs untrained (columns), seed {entry['seed']}: {entry['layers']}")
            out(np.array2string(entry["cka"], precision=2))
        if result["tests"] is not None:
            out("\npaired trained-vs-untrained tests across seeds (2 seeds: the Wilcoxon p cannot go below 0.5):")
            out(result["tests"][["layer", "metric", "mean_trained", "mean_control", "p_t"]].to_string(index=False))
    out("\n" + _direction_verdict(result["layers"]))
    out(f"generation rejected {info['extra']['n_rejected']} trajectories (tracing error >= 1e-2 cm); "
        f"max accepted error {info['extra']['max_tracing_error_cm']:.2e} cm")
    out(f"\ntrained {trained} model(s); demo took {seconds:.1f} s")
    out("\nNext: notebooks/04_deepdraw.ipynb (accuracy, oracle similarity, CKA, tuned fractions, preferred directions)")
    return {"trained": trained, "seconds": seconds, **result, "n_rejected": info["extra"]["n_rejected"],
            "max_tracing_error_cm": info["extra"]["max_tracing_error_cm"]}

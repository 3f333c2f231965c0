"""`neurofit demo dnn2brain`: which task-trained network explains which (synthetic) brain region.

Four small encoders are trained through the core on procedural scenes, one task each
(autoencoding and edges = 2D, depth = 3D, class = semantic), probed with 50 held-out scenes,
and their layer RDMs (neurofit's `RDM` rows) collected into a `ModelRDMSet`. The brain is
synthetic with a known answer: an early visual region driven by edges and pixels, a depth
region driven by the depth maps, a category region by the object category (8 subjects, voxel
noise), and a toy searchlight volume in which the three regions sit at known places. The
regression, the variance partition, the winners and the searchlight maps then have to find
them. Running it again trains nothing.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .activation import activate
from .config import Dataset, Model, Trainer
from .populating import populate
from .probing import ProbeSelection, StimulusSet
from .rsa import ReferenceRDM
from .selection import TrainingSelection
from .training import TrainedModel

#: task -> (network name, group), in the order the tables list them.
NETWORKS = {"autoencoding": ("autoencoder", "2D"), "edges": ("edges", "2D"), "depth": ("depth", "3D"),
            "class": ("classifier", "semantic")}
LAYERS = ("block3", "output")
#: region -> {ground-truth feature: weight}; and the group that should win it.
REGIONS = {"evc": {"edges": 1.0, "pixels": 0.5}, "depth_roi": {"depth": 1.0}, "category_roi": {"category": 1.0}}
EXPECTED = {"evc": "2D", "depth_roi": "3D", "category_roi": "semantic"}
CENTRES = {"evc": (0.5, 0.15, 0.5), "depth_roi": (0.25, 0.75, 0.5), "category_roi": (0.75, 0.75, 0.5)}
#: Training sizes. Only "full" is offered: with less training (1000 scenes, 12 epochs) the
#: classifier stays too weak to win the category ROI and the edge network wins the depth ROI.
SIZES = {
    "full": {"data": {"n_train": 1500, "n_validation": 300, "n_test": 100},
             "trainer": {"max_epochs": 20, "lr": 3e-3, "patience": 4}, "n_stimuli": 50, "rsa_params": "default"},
}
SUBJECTS = {"n_subjects": 8, "n_voxels": 100, "noise": 1.0, "seed": 3}
SEARCHLIGHTS = {"shape": (10, 12, 8), "width": 0.2, "n_subjects": 4, "n_voxels": 30, "noise": 0.7, "seed": 4}
STIMULUS_SEED = 12345


def demo_size(size: str | None = None) -> str:
    """The size to run: ``size``, else ``$NEUROFIT_DNN2BRAIN_SIZE``, else ``"full"``."""
    size = size or os.environ.get("NEUROFIT_DNN2BRAIN_SIZE", "full")
    if size not in SIZES:
        raise ValueError(f"dnn2brain demo size {size!r}: choose one of {sorted(SIZES)}")
    return size


def select_networks(size: str) -> dict[str, dict]:
    """Insert the configs and select the four encoders; returns ``{task: training key}``."""
    settings = SIZES[size]
    model = Model.add("neurofit.scene_encoder", {}, comment="neurofit dnn2brain demo")
    trainer = Trainer.add("neurofit.supervised", settings["trainer"], comment="neurofit dnn2brain demo")
    keys = {}
    for task in NETWORKS:
        dataset = Dataset.add("neurofit.scenes", {"task": task, **settings["data"]}, comment="neurofit dnn2brain demo")
        keys[task] = TrainingSelection.add_grid(dataset, model, trainer, [1])[0]
    return keys


def insert_brain(stimulus_set: str, features: dict, tables) -> list[str]:
    """Synthetic ROI (as `ReferenceRDM`) and searchlight RDMs of the stimulus set, once; returns ROI names."""
    from neurofit.pipelines.analysis.brain_rdms import (
        synthetic_roi_rdms,
        synthetic_searchlight_rdms,
    )

    names = [f"{stimulus_set}_{region}" for region in REGIONS]
    if not ReferenceRDM & [{"reference_rdm": n} for n in names]:
        brain = synthetic_roi_rdms(features, REGIONS, **SUBJECTS)
        for name, subjects in zip(names, brain.values()):
            ReferenceRDM.add(name, stimulus_set, subjects={f"sub{i + 1:02d}": s for i, s in enumerate(subjects)},
                             description="dnn2brain demo: synthetic ROI driven by known scene features")
    if not tables.SearchlightRDMs & {"searchlight_rdms": f"{stimulus_set}_searchlights"}:
        lights = synthetic_searchlight_rdms(features, REGIONS, CENTRES, **SEARCHLIGHTS)
        tables.SearchlightRDMs.add(f"{stimulus_set}_searchlights", stimulus_set, lights["rdms"], lights["mask"],
                                   affine=np.diag([3.0, 3.0, 3.0, 1.0]), source="synthetic (dnn2brain demo)")
    return names


def searchlight_truth(stimulus_set: str, groups: list[str]) -> np.ndarray:
    """(n_searchlights,) index into ``groups`` of the group expected to win each searchlight."""
    from neurofit.datasets.scenes import render_scenes, scene_features
    from neurofit.pipelines.analysis.brain_rdms import synthetic_searchlight_rdms

    n = int((StimulusSet & {"stimulus_set": stimulus_set}).fetch1("n_stimuli"))
    features = scene_features(render_scenes(n, seed=STIMULUS_SEED))
    settings = {**SEARCHLIGHTS, "n_subjects": 2, "n_voxels": 2}  # the layout only: weights do not depend on these
    truth = synthetic_searchlight_rdms(features, REGIONS, CENTRES, **settings)["truth"]
    return np.array([groups.index(EXPECTED[r]) for r in REGIONS])[truth]


def results(tables, set_name: str, regions: list[str], rsa_params: str) -> dict:
    """Regression, partition and winners of the demo's regions, as pandas frames."""
    base = {"model_rdm_set": set_name}
    fits = (tables.RSARegression.Network * tables.RSARegression.proj("noise_ceiling_lower", "noise_ceiling_upper")
            & base & [{"reference_rdm": r} for r in regions]).to_pandas().reset_index()
    fits = fits[["reference_rdm", "network", "model_group", "adjusted_r2", "adjusted_r2_sem", "p",
                 "noise_ceiling_lower", "noise_ceiling_upper"]]
    parts = (tables.VariancePartition.Group & base & {"rsa_params": rsa_params}
             & [{"reference_rdm": r} for r in regions]).to_pandas().reset_index()
    parts = parts[["reference_rdm", "model_group", "unique_variance", "unique_sem", "p", "permutation_p",
                   "bootstrap_std"]]
    winners = (tables.RegionWinner.Region & {"region_set": set_name}).to_pandas().reset_index()
    winners = winners[["reference_rdm", "best_network", "network_adjusted_r2", "network_q", "best_group",
                       "group_unique", "group_q", "runner_up_group", "paired_p", "significant"]]
    return {"regression": fits, "partition": parts, "winners": winners}


def run_dnn2brain_demo(prefix: str | None = None, out=print, size: str | None = None) -> dict:
    """Which task-trained network explains which synthetic brain region: ROIs, partition, searchlights (2-4 min).

    Train 4 scene encoders (autoencoding, edges, depth, class), build their RDMs through the
    probing tables, regress them on synthetic ROI and searchlight RDMs, partition the variance
    among 2D, 3D and semantic groups and pick a winner per region. Running it again trains nothing.

    Returns:
        ``{"trained", "seconds", "size", "regression", "partition", "winners" (DataFrames),
        "summary": {region: {"best_network", "best_group", "significant", "unique": {group: value}}},
        "searchlight_agreement" (fraction of significant searchlights won by the expected group),
        "n_significant_searchlights", "keys" (of the set, region set and searchlight fit)}``.
    """
    import pandas as pd
    import torch

    from neurofit.datasets.scenes import render_scenes, scene_features

    from . import dnn2brain as tables

    torch.set_num_threads(1)
    started = time.perf_counter()
    size = demo_size(size)
    settings = SIZES[size]
    backend = activate(prefix, extra_schemas=[tables])
    out(f"database: {backend.kind} {backend.backend} ({backend.host}); object store {backend.store}")
    trained = select_networks(size)
    before = len(TrainedModel & list(trained.values()))
    populate("TrainedModel", list(trained.values()), display_progress=False)
    n_trained = len(TrainedModel & list(trained.values())) - before
    out(f"{len(trained)} encoders ({size} size): {n_trained} trained now")

    stimulus_set = f"dnn2brain_scenes_{settings['n_stimuli']}"
    scenes = render_scenes(settings["n_stimuli"], seed=STIMULUS_SEED)
    features = scene_features(scenes)
    StimulusSet.add(stimulus_set, scenes.images, {"category": scenes.labels.astype(np.float64),
                                                  "object_depth": scenes.object_depth},
                    description="held-out procedural scenes of the dnn2brain demo")
    ProbeSelection.add(list(trained.values()), stimulus_set)
    probed = [{**k, "stimulus_set": stimulus_set} for k in trained.values()]
    populate(["Activations", "RDM"], probed, display_progress=False)

    set_name = f"dnn2brain_demo_{size}"
    members = tables.rdm_members({NETWORKS[t][0]: (NETWORKS[t][1], k) for t, k in trained.items()},
                                 stimulus_set, LAYERS)
    tables.ModelRDMSet.add(set_name, stimulus_set, members,
                           description="scene encoders: autoencoder, edges (2D), depth (3D), classifier (semantic)")
    regions = insert_brain(stimulus_set, features, tables)
    tables.RegionSet.add(set_name, set_name, regions, rsa_params=settings["rsa_params"],
                         description="synthetic EVC, depth and category ROIs")
    populate(["RSARegression", "VariancePartition", "RegionWinner", "SearchlightFit", "SearchlightMap"],
             display_progress=False)

    frames = results(tables, set_name, regions, settings["rsa_params"])
    light_key = {"model_rdm_set": set_name, "searchlight_rdms": f"{stimulus_set}_searchlights",
                 "rsa_params": settings["rsa_params"]}
    fit = (tables.SearchlightFit & light_key).fetch1()
    winners = fit["winner_group"].load()
    truth = searchlight_truth(stimulus_set, list(fit["model_groups"]))
    significant = winners >= 0
    agreement = float(np.mean(winners[significant] == truth[significant])) if significant.any() else 0.0
    summary = {}
    for row in frames["winners"].to_dict("records"):
        unique = frames["partition"][frames["partition"]["reference_rdm"] == row["reference_rdm"]]
        region = row["reference_rdm"][len(stimulus_set) + 1:]
        summary[region] = {"best_network": row["best_network"], "best_group": row["best_group"],
                           "significant": bool(row["significant"]),
                           "unique": dict(zip(unique["model_group"], unique["unique_variance"].astype(float)))}
    seconds = time.perf_counter() - started

    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        out("\nadjusted R² of each network's layer RDMs (block3 + output) per ROI, mean over 8 subjects, "
            "with the noise ceiling:")
        out(frames["regression"].to_string(index=False))
        out("\nunique variance (adjusted R²) of each group per ROI (t-test across subjects, permutation test, "
            "condition bootstrap):")
        out(frames["partition"].to_string(index=False))
        out("\nwinners (FDR over the 3 ROIs):")
        out(frames["winners"].to_string(index=False))
    out(f"\nexpected: {EXPECTED}")
    out(f"searchlights: {int(significant.sum())} of {len(winners)} have a significant winning group; "
        f"{agreement:.1%} of them are won by the group whose region they sit in")
    out(f"\n{seconds:.1f} s; trained {n_trained} network(s)" + ("" if n_trained else ": all were already trained"))
    out("\nNext: notebooks/07_dnn_to_brain.ipynb (R² with noise ceilings, partition, searchlight winner map); "
        "SearchlightMap.export_nifti(key, directory) writes the maps as NIfTI")
    return {"trained": n_trained, "seconds": seconds, "size": size, **frames, "summary": summary,
            "searchlight_agreement": agreement, "n_significant_searchlights": int(significant.sum()),
            "keys": {"model_rdm_set": set_name, "region_set": set_name, "searchlight": light_key}}

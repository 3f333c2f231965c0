"""Procedural scenes, their task datasets and the scene encoder (no database, small sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofit.datasets.scenes import CATEGORIES, build_scenes, render_scenes, scene_features
from neurofit.models.scene_encoders import build_scene_encoder
from neurofit.pipelines.analysis.brain_rdms import synthetic_roi_rdms
from neurofit.pipelines.analysis.rsa_regression import batched_variance_partitioning


def test_scenes_have_consistent_ground_truth():
    scenes = render_scenes(40, seed=3)
    assert scenes.images.shape == (40, 1, 32, 32) and scenes.images.dtype == np.float32
    assert set(np.unique(scenes.labels)) <= set(range(len(CATEGORIES)))
    assert 0 <= scenes.depth.min() and scenes.depth.max() == 1.0  # the sky is at the far plane
    # depth rises towards the horizon: the bottom row is nearer than the top row in every scene
    assert np.all(scenes.depth[:, 0, -1].mean(axis=1) < scenes.depth[:, 0, 0].mean(axis=1))
    # the object sits at its own depth somewhere in the image
    assert np.all(np.isclose(scenes.depth[:, 0], scenes.object_depth[:, None, None].astype(np.float32)).any(axis=(1, 2)))
    np.testing.assert_array_equal(render_scenes(40, seed=3).images, scenes.images)  # seeded
    features = scene_features(scenes, target_size=8)
    assert features["depth"].shape == (40, 64) and features["category"].sum(axis=1).tolist() == [1.0] * 40


@pytest.mark.parametrize("task, key", [("autoencoding", "targets"), ("edges", "targets"), ("depth", "targets"), ("class", "labels")])
def test_task_datasets_and_encoder_outputs(task, key):
    data = build_scenes(0, task=task, n_train=16, n_validation=8, n_test=8, batch_size=8)
    batch = next(iter(data.loaders["train"]["all"]))
    assert key in batch and batch["inputs"].shape == (8, 1, 32, 32)
    model = build_scene_encoder(data.info, seed=1)
    out = model(batch["inputs"])
    expected = (8, len(CATEGORIES)) if key == "labels" else (8, *data.info.target_shape)
    assert tuple(out.shape) == expected
    if key == "targets":
        assert tuple(batch["targets"].shape) == expected


def test_same_scenes_for_every_task_and_seed():
    a = build_scenes(0, task="depth", n_train=4, n_validation=2, n_test=2)
    b = build_scenes(5, task="class", n_train=4, n_validation=2, n_test=2)
    inputs = lambda d: torch.cat([x["inputs"] for x in d.loaders["validation"]["all"]])  # noqa: E731
    torch.testing.assert_close(inputs(a), inputs(b))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="task 'segmentation'"):
        build_scenes(0, task="segmentation")
    with pytest.raises(ValueError, match="must divide"):
        build_scenes(0, target_size=12)


def test_synthetic_regions_are_explained_by_their_own_feature():
    """Ground-truth features as 'model RDMs': each region's unique variance sits in its driver."""
    from neurofit.pipelines.analysis.brain_rdms import correlation_rdms

    scenes = render_scenes(40, seed=9)
    features = scene_features(scenes, target_size=8)
    regions = {"depth_roi": {"depth": 1.0}, "category_roi": {"category": 1.0}}
    brain = synthetic_roi_rdms(features, regions, n_subjects=4, n_voxels=60, noise=0.5, seed=1)
    models = {name: correlation_rdms(features[name] + 1e-3 * np.random.default_rng(0).standard_normal(features[name].shape))
              for name in ("edges", "depth", "category")}
    for region, driver in (("depth_roi", "depth"), ("category_roi", "category")):
        out = batched_variance_partitioning(brain[region], models)
        unique = dict(zip(out["groups"], out["unique"].mean(axis=1)))
        others = max(v for k, v in unique.items() if k != driver)
        assert unique[driver] > 3 * max(others, 0.01)

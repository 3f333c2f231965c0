"""Procedural scenes with known depth, edges and category, and task datasets on them.

Each scene is a grey-level image of a textured ground plane under a slanted horizon, seen in
perspective, with one object (a disc, square, triangle or cross: its category) standing on the
ground. Everything is rendered from a few random parameters, so the ground truth is exact:

* **depth** per pixel: the ground's depth rises towards the horizon (``1 / rows below it``),
  the sky is at the far plane, the object sits at the depth of its foot point; normalised to
  [0, 1] (1 = far plane).
* **category**: the object's shape, independent of where it stands, how large or how bright it is.
* **edges**: the gradient magnitude (Sobel) of the noise-free image, a 2-D property.

Depth is visible through 3-D cues only a little tied to pixel values: texture compression
(the ground's checker pattern shrinks with distance), the object's size (world size fixed,
image size ``1 / depth``), its height in the image, and a weak atmospheric fade. That lets a
depth-trained network and pixel-level (autoencoding, edge) networks differ in their geometry,
which is what a dnn-to-brain comparison (Dwivedi et al. 2021) asks about.

`build_scenes` makes loaders for one task: ``autoencoding`` (target = the image), ``edges``,
``depth`` (targets (1, target_size, target_size)) or ``class`` (labels). Two seeds, two roles:
``ground_truth_seed`` fixes the scenes, ``seed`` only the train loader's shuffling (drawn from
torch's global generator, which the training loop saves for exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from torch.utils.data import DataLoader

from .info import TIERS, DataBundle, DataInfo
from .rows import DictRows

__all__ = ["CATEGORIES", "TASKS", "Scenes", "build_scenes", "render_scenes", "scene_features"]

#: Object categories, in label order.
CATEGORIES = ("disc", "square", "triangle", "cross")
#: Tasks a scene dataset can be built for, and what the batches carry.
TASKS = {"autoencoding": "targets", "edges": "targets", "depth": "targets", "class": "labels"}
_FOG = 0.15  # strength of the atmospheric fade at the far plane (weak: depth must need 3-D cues)


@dataclass(frozen=True)
class Scenes:
    """Rendered scenes and their exact ground truth.

    Attributes:
        images: (n, 1, size, size) float32, luminance in [0, 1] minus 0.5, with pixel noise.
        depth: (n, 1, size, size) float32 in [0, 1], 1 = far plane (sky).
        edges: (n, 1, size, size) float32, Sobel gradient magnitude of the noise-free image.
        labels: (n,) int64 category index into `CATEGORIES`.
        object_depth: (n,) float64 depth of the object.
    """

    images: np.ndarray
    depth: np.ndarray
    edges: np.ndarray
    labels: np.ndarray
    object_depth: np.ndarray


def _shape_masks(labels: np.ndarray, dy: np.ndarray, dx: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """(n, H, W) bool silhouettes of each scene's object, centred offsets dy, dx in pixels."""
    u, v = dx / radius, dy / radius  # object-centred coordinates, 1 = radius
    masks = np.stack([
        u**2 + v**2 <= 1.0,  # disc
        (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8),  # square
        (v <= 0.9) & (v >= -0.9) & (np.abs(u) <= 0.5 * (v + 0.9)),  # triangle, apex up
        ((np.abs(u) <= 0.3) | (np.abs(v) <= 0.3)) & (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0),  # cross
    ])
    return masks[labels, np.arange(len(labels))]


def _sobel(images: np.ndarray) -> np.ndarray:
    """(n, H, W) gradient magnitude with edge-replicated borders."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="edge")
    smooth = lambda a, axis: np.take(a, [0], axis) + 2 * np.take(a, [1], axis) + np.take(a, [2], axis)  # noqa: E731
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    gx = smooth(windows[..., 2] - windows[..., 0], -1)[..., 0]
    gy = smooth(windows[..., 2, :] - windows[..., 0, :], -1)[..., 0]
    return np.sqrt(gx**2 + gy**2) / 8.0


def render_scenes(n: int, *, image_size: int = 32, seed: int = 0, noise: float = 0.02) -> Scenes:
    """Render ``n`` random scenes (vectorised over scenes; see the module docstring).

    Args:
        n: number of scenes.
        image_size: height = width in pixels (>= 16).
        seed: fixes every scene parameter and the pixel noise.
        noise: sd of the Gaussian pixel noise added to the images.

    Returns:
        `Scenes` with exact depth, edges and category.
    """
    if n < 1 or image_size < 16:
        raise ValueError(f"need n >= 1 scenes of image_size >= 16 pixels, got n={n}, image_size={image_size}")
    rng = np.random.default_rng(seed)
    size = image_size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rows, cols = rows[None], cols[None]
    horizon = rng.uniform(0.2, 0.45, (n, 1, 1)) * size
    slant = rng.uniform(-0.25, 0.25, (n, 1, 1))
    below = rows - (horizon + slant * (cols - size / 2))  # rows below the (slanted) horizon
    scale = 0.08 * size
    ground = below > 0.5
    depth = np.where(ground, np.minimum(1.0, scale / np.maximum(below, 1e-6)), 1.0)
    # Ground texture in world coordinates: a checker that compresses with distance.
    world_z = 1.0 / np.maximum(below, 1e-6)
    world_x = (cols - size / 2) * world_z
    period = rng.uniform(0.5, 0.9, (n, 1, 1))
    checker = np.sin(2 * np.pi * world_x / period) * np.sin(2 * np.pi * world_z / period * size / 16)
    # Texture contrast fades with distance (where it would alias anyway).
    ground_lum = rng.uniform(0.3, 0.5, (n, 1, 1)) + 0.12 * np.tanh(3 * checker) * (1 - depth)
    sky_lum = rng.uniform(0.7, 0.9, (n, 1, 1)) - 0.1 * rows / size
    luminance = np.where(ground, ground_lum, sky_lum)

    labels = rng.integers(0, len(CATEGORIES), n)
    foot_row = horizon[:, 0, 0] + rng.uniform(0.25, 0.9, n) * (size - 1 - horizon[:, 0, 0])
    foot_col = rng.uniform(0.25, 0.75, n) * size
    foot_below = foot_row - (horizon[:, 0, 0] + slant[:, 0, 0] * (foot_col - size / 2))
    object_depth = np.minimum(1.0, scale / np.maximum(foot_below, 1.0))
    radius = np.clip(0.4 * foot_below, 3.5, size / 3)  # world size fixed: image size ~ 1 / depth
    centre_row = foot_row - radius
    silhouette = _shape_masks(labels, rows - centre_row[:, None, None], cols - foot_col[:, None, None],
                              radius[:, None, None])
    # Dark or bright objects: always visible against the mid-grey ground, whatever the category.
    albedo = np.where(rng.random((n, 1, 1)) < 0.5, rng.uniform(0.0, 0.15, (n, 1, 1)), rng.uniform(0.8, 1.0, (n, 1, 1)))
    shading = 1.0 - 0.3 * (cols - foot_col[:, None, None]) / (2 * radius[:, None, None])
    luminance = np.where(silhouette, np.clip(albedo * shading, 0, 1), luminance)
    depth = np.where(silhouette, object_depth[:, None, None], depth)
    luminance = luminance * (1 - _FOG * depth) + _FOG * depth * 0.8

    edges = _sobel(luminance)
    images = luminance + rng.normal(0.0, noise, luminance.shape) - 0.5
    as_maps = lambda a: a[:, None].astype(np.float32)  # noqa: E731
    return Scenes(images=as_maps(images), depth=as_maps(depth), edges=as_maps(edges),
                  labels=labels.astype(np.int64), object_depth=object_depth)


def _pool(maps: np.ndarray, size: int) -> np.ndarray:
    """(n, 1, S, S) -> (n, 1, size, size) block means (S a multiple of size)."""
    n, channels, full, _ = maps.shape
    if full % size:
        raise ValueError(f"target_size {size} must divide image_size {full}")
    factor = full // size
    return maps.reshape(n, channels, size, factor, size, factor).mean(axis=(3, 5))


def scene_features(scenes: Scenes, *, target_size: int = 16) -> dict[str, np.ndarray]:
    """Ground-truth features per scene, for stimulus sets and synthetic brain RDMs.

    Returns:
        ``{"depth": (n, target_size**2), "edges": (n, target_size**2), "pixels":
        (n, target_size**2), "category": (n, n_categories) one-hot}``, float64.
    """
    flat = lambda maps: _pool(maps, target_size).reshape(len(maps), -1).astype(np.float64)  # noqa: E731
    return {
        "depth": flat(scenes.depth),
        "edges": flat(scenes.edges),
        "pixels": flat(scenes.images),
        "category": np.eye(len(CATEGORIES))[scenes.labels],
    }


def _task_arrays(scenes: Scenes, task: str, target_size: int, first_id: int) -> dict[str, np.ndarray]:
    arrays = {"inputs": scenes.images, "stimulus_id": np.arange(first_id, first_id + len(scenes.labels))}
    if task == "class":
        arrays["labels"] = scenes.labels
    else:
        maps = {"autoencoding": scenes.images, "edges": scenes.edges, "depth": scenes.depth}[task]
        arrays["targets"] = _pool(maps, target_size).astype(np.float32)
    return arrays


def build_scenes(
    seed: int,
    *,
    task: Literal["autoencoding", "edges", "depth", "class"] = "class",
    image_size: int = 32,
    target_size: int = 16,
    n_train: int = 2000,
    n_validation: int = 400,
    n_test: int = 400,
    batch_size: int = 64,
    ground_truth_seed: int = 0,
) -> DataBundle:
    """Loaders of procedural scenes for one task (see the module docstring).

    Args:
        seed: non-negative; changes only the train loader's shuffling.
        task: ``"autoencoding"``, ``"edges"``, ``"depth"`` (targets) or ``"class"`` (labels).
        image_size: inputs are (batch, 1, image_size, image_size).
        target_size: dense targets are (batch, 1, target_size, target_size) block means;
            must divide image_size.
        n_train, n_validation, n_test: scenes per tier (disjoint draws).
        batch_size: batch size of every loader.
        ground_truth_seed: fixes the scenes (the same for every task and seed).

    Returns:
        A `DataBundle` with one session ``"all"``; batches hold ``inputs``, ``stimulus_id`` and
        ``labels`` (class) or ``targets`` (other tasks).

    Raises:
        ValueError: an unknown task, a target_size that does not divide image_size, or
            non-positive sizes.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r}: choose one of {sorted(TASKS)}")
    if seed < 0 or batch_size < 1 or min(n_train, n_validation, n_test) < 1:
        raise ValueError("seed must be >= 0 and batch_size, n_train, n_validation, n_test >= 1")
    if image_size % target_size:
        raise ValueError(f"target_size {target_size} must divide image_size {image_size}")
    counts = dict(zip(TIERS, (n_train, n_validation, n_test)))
    loaders: dict[str, dict[str, DataLoader]] = {}
    first_id = 0
    for index, tier in enumerate(TIERS):
        scenes = render_scenes(counts[tier], image_size=image_size, seed=ground_truth_seed * 10 + index)
        dataset = DictRows(_task_arrays(scenes, task, target_size, first_id))
        first_id += counts[tier]
        # Shuffling draws from torch's global generator, which the training loop saves and restores.
        loaders[tier] = {"all": DataLoader(dataset, batch_size=batch_size, shuffle=tier == "train")}
    labels = task == "class"
    info = DataInfo(
        input_shape=(1, image_size, image_size), n_neurons={"all": 0}, provides=(TASKS[task],),
        input_unit="luminance - 0.5", n_classes=len(CATEGORIES) if labels else 0,
        class_names=CATEGORIES if labels else (), target_shape=() if labels else (1, target_size, target_size),
        extra={"task": task},
    )
    return DataBundle(loaders=loaders, info=info)

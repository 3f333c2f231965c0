"""Synthetic ROI and searchlight RDMs with a known answer: which feature drives which region.

A region's voxels respond to a weighted mix of ground-truth stimulus features (depth maps,
edge maps, category), through a random linear map that differs between subjects (subjects
have different voxels), plus independent voxel noise. Each subject's RDM is ``1 - Pearson r``
between voxel patterns, as the fMRI RDMs of Dwivedi et al. (2021). A regression of these RDMs
on model RDMs should therefore pick the network trained on the feature that drives the region.

Pure numpy, arrays in and arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["correlation_rdms", "region_patterns", "synthetic_roi_rdms", "synthetic_searchlight_rdms"]


def correlation_rdms(patterns: np.ndarray) -> np.ndarray:
    """Condensed ``1 - Pearson r`` RDMs of stacked pattern sets.

    Args:
        patterns: (..., n_stimuli, n_voxels), at least 2 voxels, no constant pattern.

    Returns:
        (..., n_stimuli (n_stimuli - 1) / 2) float64, in `neurofit.pipelines.analysis.rdm.condensed` order.
    """
    x = np.asarray(patterns, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a voxel pattern is constant; its correlation distance is undefined")
    x = x / norms
    rows, cols = np.triu_indices(x.shape[-2], 1)
    return 1.0 - np.einsum("...iv,...iv->...i", x[..., rows, :], x[..., cols, :])


def _standardised(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each feature set z-scored per column over stimuli and scaled to unit total variance."""
    out = {}
    for name, values in features.items():
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        centred = values - values.mean(axis=0)
        sd = centred.std(axis=0)
        centred = centred[:, sd > 0] / sd[sd > 0]
        if centred.shape[1] == 0:
            raise ValueError(f"feature {name!r} is constant over stimuli")
        out[name] = centred / np.sqrt(centred.shape[1])
    return out


def region_patterns(
    features: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    n_voxels: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noise-free voxel patterns of one region in one subject.

    Args:
        features: name -> (n_stimuli, d) ground-truth features.
        weights: feature name -> weight (amplitude) in this region; names must be in ``features``.
        n_voxels: voxels of the region.
        rng: draws the subject's random feature-to-voxel maps.

    Returns:
        (n_stimuli, n_voxels) patterns.
    """
    standard = _standardised(features)
    unknown = sorted(set(weights) - set(standard))
    if unknown:
        raise ValueError(f"region weights name features {unknown} that are not among {sorted(standard)}")
    n = len(next(iter(standard.values())))
    patterns = np.zeros((n, n_voxels))
    for name, weight in weights.items():
        values = standard[name]
        patterns += weight * values @ rng.standard_normal((values.shape[1], n_voxels))
    return patterns


def synthetic_roi_rdms(
    features: Mapping[str, np.ndarray],
    regions: Mapping[str, Mapping[str, float]],
    *,
    n_subjects: int = 8,
    n_voxels: int = 100,
    noise: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-subject RDMs of regions driven by known features (see the module docstring).

    Args:
        features: name -> (n_stimuli, d) ground-truth features (e.g. `neurofit.datasets.scenes.scene_features`).
        regions: region name -> {feature name: weight}, e.g. ``{"depth_roi": {"depth": 1.0}}``.
        n_subjects: subjects (each with its own voxel maps and noise).
        n_voxels: voxels per region.
        noise: sd of the independent voxel noise (the signal has sd about 1 per voxel).
        seed: fixes maps and noise.

    Returns:
        ``{region: (n_subjects, n_pairs)}`` condensed RDMs.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for region, weights in regions.items():
        subjects = []
        for _ in range(n_subjects):
            clean = region_patterns(features, weights, n_voxels, rng)
            subjects.append(clean + noise * rng.standard_normal(clean.shape))
        out[region] = correlation_rdms(np.stack(subjects))
    return out


def synthetic_searchlight_rdms(
    features: Mapping[str, np.ndarray],
    regions: Mapping[str, Mapping[str, float]],
    centres: Mapping[str, tuple[float, float, float]],
    *,
    shape: tuple[int, int, int] = (10, 12, 8),
    width: float = 0.25,
    n_subjects: int = 4,
    n_voxels: int = 30,
    noise: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Searchlight RDMs of a toy brain whose regions sit at known places.

    The brain is the ellipsoid inscribed in a ``shape`` grid; each mask voxel is the centre of
    one searchlight (C order). Region ``r`` has its centre at ``centres[r]`` (fractions of the
    grid, in [0, 1]^3) and a searchlight's patterns mix the regions' patterns with weights
    ``exp(-d^2 / (2 width^2))`` normalised to sum 1, plus its own voxel noise.

    Returns:
        ``{"rdms": (n_subjects, n_searchlights, n_pairs), "mask": shape bool,
        "weights": (n_searchlights, n_regions) mixing weights, "truth": (n_searchlights,)
        index of the region with the largest weight (order of ``regions``)}``.
    """
    if set(centres) != set(regions):
        raise ValueError(f"centres name {sorted(centres)} but regions are {sorted(regions)}")
    grid = np.stack(np.meshgrid(*[(np.arange(s) + 0.5) / s for s in shape], indexing="ij"), axis=-1)
    mask = np.sum(((grid - 0.5) / 0.5) ** 2, axis=-1) <= 1.0
    points = grid[mask]  # (n_searchlights, 3)
    names = list(regions)
    distance = np.stack([np.sum((points - np.asarray(centres[r])) ** 2, axis=1) for r in names], axis=1)
    weights = np.exp(-distance / (2 * width**2))
    weights /= weights.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    rdms = []
    for _ in range(n_subjects):
        per_region = np.stack([region_patterns(features, regions[r], n_voxels, rng) for r in names])
        mixed = np.einsum("sr,rnv->snv", weights, per_region)
        rdms.append(correlation_rdms(mixed + noise * rng.standard_normal(mixed.shape)))
    return {"rdms": np.stack(rdms), "mask": mask, "weights": weights, "truth": weights.argmax(axis=1)}

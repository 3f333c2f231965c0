"""Which network explains which brain region: the per-region steps of a dnn-to-brain analysis.

Combines `neurofit.pipelines.analysis.rsa_regression` into what one region (ROI or searchlight)
needs, following Dwivedi et al. (2021): each network's layer RDMs regressed on every subject's
RDM, group RDMs (the mean over a group's networks, layer by layer) partitioned, statistics
across subjects and over conditions, and a winner per region with FDR over regions.

Pure numpy, arrays in and arrays out; condensed RDMs of length ``n_pairs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import rsa_regression as rr

__all__ = ["group_predictors", "region_winners", "roi_partition", "roi_regression", "searchlight_fit"]


def group_predictors(
    rdms: np.ndarray, networks: Sequence[str], layers: Sequence[str], groups: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Predictor matrices per network and per group from a flat list of member RDMs.

    Args:
        rdms: (n_members, n_pairs) condensed model RDMs, one per network x layer.
        networks, layers, groups: (n_members,) the network, layer and group of each member;
            a network belongs to one group.

    Returns:
        ``(per_network, per_group, group_of)``: ``{network: (n_pairs, n_layers)}`` in order of
        first appearance; ``{group: (n_pairs, n_layer_names)}``, column ``l`` the mean over the
        group's networks of their RDMs of layer ``l`` (the seed's grouped RDMs); and
        ``{network: group}``.

    Raises:
        ValueError: mismatched lengths, a network in two groups, or a repeated network x layer.
    """
    rdms = np.asarray(rdms, dtype=np.float64)
    if rdms.ndim != 2 or not (len(networks) == len(layers) == len(groups) == len(rdms)):
        raise ValueError(f"need (n_members, n_pairs) RDMs and one network, layer and group per member; "
                         f"got {rdms.shape}, {len(networks)}, {len(layers)}, {len(groups)}")
    group_of: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for network, layer, group in zip(networks, layers, groups):
        if group_of.setdefault(network, group) != group:
            raise ValueError(f"network {network!r} is in groups {group_of[network]!r} and {group!r}; give it one group")
        if (network, layer) in seen:
            raise ValueError(f"network {network!r} has layer {layer!r} twice")
        seen.add((network, layer))
    per_network = {n: rdms[[i for i, m in enumerate(networks) if m == n]].T for n in group_of}
    per_group = {}
    for group in dict.fromkeys(groups):
        names = list(dict.fromkeys(layer for layer, g in zip(layers, groups) if g == group))
        per_group[group] = np.stack([
            rdms[[i for i, (lay, g) in enumerate(zip(layers, groups)) if g == group and lay == name]].mean(axis=0)
            for name in names
        ], axis=1)
    return per_network, per_group, group_of


def roi_regression(subject_rdms: np.ndarray, networks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each network's layer RDMs regressed on each subject's RDM of one region.

    Args:
        subject_rdms: (n_subjects >= 2, n_pairs) the region's RDMs.
        networks: ``{network: (n_pairs, n_layers)}`` predictors.

    Returns:
        ``{"r2", "adjusted_r2": (n_networks, n_subjects), "t", "p": (n_networks,)`` one-sided
        t-test across subjects that the adjusted R^2 exceeds 0, ``"noise_ceiling": (lower, upper)``}.
    """
    y = np.asarray(subject_rdms, dtype=np.float64)
    fits = [rr.batched_regression(y, x) for x in networks.values()]
    r2 = np.stack([f["r2"] for f in fits])
    adjusted = np.stack([f["adjusted_r2"] for f in fits])
    t, p = rr.ttest_greater(adjusted, axis=1)
    lower, upper = rr.r2_noise_ceiling(y)
    return {"r2": r2, "adjusted_r2": adjusted, "t": t, "p": p, "noise_ceiling": (float(lower), float(upper))}


def roi_partition(
    subject_rdms: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    n_permutations: int,
    n_bootstrap: int,
    ratio: float,
    seed: int,
) -> dict:
    """Variance partitioning of one region among groups, with its statistics.

    Per subject: unique and shared variance (adjusted R^2), t-tests across subjects. On the
    subject-mean RDM: the partition, condition-label permutation p-values and a condition
    bootstrap (``ratio`` of the conditions per iteration).

    Args:
        subject_rdms: (n_subjects >= 2, n_pairs).
        groups: ``{group: (n_pairs, p_g)}`` predictors.

    Returns:
        ``{"groups", "subsets", "unique": (n_groups, n_subjects), "partition": (n_subsets,
        n_subjects), "total": (n_subjects,), "unique_t", "unique_p": (n_groups,),
        "mean_unique", "unique_permutation_p", "unique_bootstrap_std": (n_groups,),
        "mean_partition": (n_subsets,), "mean_total", "total_permutation_p": float}``.
    """
    y = np.asarray(subject_rdms, dtype=np.float64)
    per_subject = rr.batched_variance_partitioning(y, groups)
    t, p = rr.ttest_greater(per_subject["unique"], axis=1)
    mean_rdm = y.mean(axis=0)
    permuted = rr.permutation_test(mean_rdm, groups, n_permutations=n_permutations, seed=seed)
    boot = rr.condition_bootstrap(mean_rdm, groups, n_bootstrap=n_bootstrap, ratio=ratio, seed=seed)
    observed = permuted["observed"]
    return {
        "groups": per_subject["groups"], "subsets": per_subject["subsets"],
        "unique": per_subject["unique"], "partition": per_subject["partition"], "total": per_subject["total"],
        "unique_t": t, "unique_p": p,
        "mean_unique": observed["unique"], "mean_partition": observed["partition"],
        "mean_total": float(observed["total"]),
        "unique_permutation_p": permuted["unique_p"], "total_permutation_p": float(permuted["total_p"]),
        "unique_bootstrap_std": boot["unique_std"],
    }


def region_winners(
    adjusted_r2: np.ndarray, network_p: np.ndarray, unique: np.ndarray, unique_p: np.ndarray, *, alpha: float = 0.05
) -> dict[str, np.ndarray]:
    """The best network and group of each region, with FDR over regions.

    Args:
        adjusted_r2: (n_regions, n_networks, n_subjects) per-subject adjusted R^2.
        network_p: (n_regions, n_networks) p-values of each network's fit (t-test across subjects).
        unique: (n_regions, n_groups, n_subjects) per-subject unique variance.
        unique_p: (n_regions, n_groups) p-values of each group's unique variance (e.g. permutation).
        alpha: false discovery rate.

    Returns:
        ``{"network", "group": (n_regions,) int index of the best (highest mean), "network_q",
        "group_q": (n_regions,) Benjamini-Hochberg q of the winner over regions, "paired_p":
        (n_regions,) one-sided paired t-test across subjects that the best group's unique variance
        exceeds the runner-up's (NaN with one group), "significant": (n_regions,) bool, group_q
        and paired_p (if defined) both <= alpha}``.
    """
    adjusted_r2, unique = np.asarray(adjusted_r2, float), np.asarray(unique, float)
    regions = np.arange(len(adjusted_r2))
    network = adjusted_r2.mean(axis=2).argmax(axis=1)
    order = np.argsort(-unique.mean(axis=2), axis=1)
    group = order[:, 0]
    network_q = rr.fdr_correction(np.asarray(network_p, float)[regions, network])
    group_q = rr.fdr_correction(np.asarray(unique_p, float)[regions, group])
    if unique.shape[1] > 1:
        _, paired = rr.ttest_paired_greater(unique[regions, group], unique[regions, order[:, 1]], axis=1)
        paired = np.atleast_1d(paired)
    else:
        paired = np.full(len(regions), np.nan)
    significant = (group_q <= alpha) & (np.isnan(paired) | (paired <= alpha))
    return {"network": network, "group": group, "network_q": network_q, "group_q": group_q,
            "paired_p": paired, "significant": significant}


def searchlight_fit(
    rdms: np.ndarray, networks: Mapping[str, np.ndarray], groups: Mapping[str, np.ndarray], *, alpha: float = 0.05
) -> dict[str, np.ndarray]:
    """Every searchlight regressed and partitioned in batched solves, with t-tests and FDR.

    Args:
        rdms: (n_subjects >= 2, n_searchlights, n_pairs).
        networks: ``{network: (n_pairs, n_layers)}``; groups: ``{group: (n_pairs, p_g)}``.
        alpha: false discovery rate over searchlights.

    Returns:
        ``{"adjusted_r2": (n_networks, n_searchlights)`` mean over subjects, ``"unique":
        (n_groups, n_searchlights)`` mean over subjects, ``"unique_p", "unique_q"`` one-sided
        t-test across subjects and its FDR over searchlights, ``"winner_network"`` (highest mean
        adjusted R^2), ``"winner_group": (n_searchlights,)`` int, the group of largest unique
        variance where its q <= alpha, else -1``}``.
    """
    y = np.asarray(rdms, dtype=np.float64)
    adjusted = np.stack([rr.batched_regression(y, x)["adjusted_r2"].mean(axis=0) for x in networks.values()])
    unique = rr.batched_variance_partitioning(y, groups)["unique"]  # (n_groups, n_subjects, n_sl)
    _, p = rr.ttest_greater(unique, axis=1)
    q = rr.fdr_correction(p, axis=1)
    mean_unique = unique.mean(axis=1)
    best = mean_unique.argmax(axis=0)
    columns = np.arange(y.shape[1])
    winner = np.where(q[best, columns] <= alpha, best, -1)
    return {"adjusted_r2": adjusted, "unique": mean_unique, "unique_p": p, "unique_q": q,
            "winner_network": adjusted.argmax(axis=0), "winner_group": winner}

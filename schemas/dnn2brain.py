"""Which network explains which brain region (Dwivedi et al. 2021): tables of a dnn-to-brain analysis.

Plugged in as the ``neurofit.schemas`` entry point ``dnn2brain`` (schema ``<prefix>dnn2brain``).

* `ModelRDMSet`: a named set of model RDMs (network x layer), each with a group label (2D, 3D,
  semantic, ...), copied from neurofit's own `RDM` rows or imported from ``.mat`` files.
* Brain RDMs: ROI RDMs per subject are neurofit's `ReferenceRDM` (+ ``Subject`` part), filled by
  `import_roi_rdms` from the seed's ``subject_rdm`` files; `SearchlightRDMs` holds
  (n_subjects, n_searchlights, n_pairs) RDMs with their NIfTI mask.
* `RSARegression` (every network on every subject of a region, noise ceiling), `VariancePartition`
  (unique and shared variance of the groups, t-tests, permutation test, condition bootstrap),
  `RegionWinner` (best network and group per region of a `RegionSet`, FDR over its regions),
  `SearchlightFit` and `SearchlightMap` (R² and winner maps, NIfTI export, nilearn plots).

Every make is three-part and calls `neurofit.pipelines.analysis.brain_fits`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import datajoint as dj
import numpy as np

from neurofit.datasets import fmri_rdms
from neurofit.pipelines.analysis import brain_fits
from neurofit.pipelines.analysis import rdm as rdm_functions

from . import provenance
from .probing import StimulusSet
from .rsa import RDM, ReferenceRDM
from .storage import read_stored

schema = dj.Schema()
schema_name = "dnn2brain"

__all__ = [
    "ModelRDMSet", "RSAParams", "RSARegression", "RegionSet", "RegionWinner", "SearchlightFit",
    "SearchlightMap", "SearchlightRDMs", "VariancePartition", "import_roi_rdms", "rdm_members",
]


def _n_stimuli(stimulus_set: str) -> int:
    rows = StimulusSet & {"stimulus_set": stimulus_set}
    if not rows:
        raise ValueError(f"no stimulus set named {stimulus_set!r}; add it with StimulusSet.add "
                         "(external RDMs need one too: it names the conditions and fixes their number)")
    return int(rows.fetch1("n_stimuli"))


def _as_condensed(values, n: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = rdm_functions.condensed(values)
    if values.shape != (n * (n - 1) // 2,):
        raise ValueError(f"{what} has shape {values.shape}; the stimulus set has {n} stimuli, so an RDM is "
                         f"({n}, {n}) or ({n * (n - 1) // 2},) condensed")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or infinity")
    return values


def _digest(arrays: Iterable[np.ndarray], labels: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for label, array in zip(labels, arrays):
        digest.update(label.encode() + np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


@schema
class ModelRDMSet(dj.Manual):
    """One named set of model RDMs of one stimulus set, a network x layer per member, grouped.

    A network's layer RDMs are regressed together; a group's RDMs are the mean over its
    networks, layer by layer (Dwivedi et al. 2021).
    """

    definition = """
    model_rdm_set: varchar(64)             # name, e.g. taskonomy_2d3d_semantic
    ---
    -> StimulusSet
    n_members: int32                       # network x layer RDMs
    n_networks: int32                      # networks
    groups: json                           # group names in order of first appearance
    members_sha256: char(64)               # checksum of members' names and RDMs (same name = same content)
    description = "": varchar(1024)        # what the set is
    """

    class Member(dj.Part):
        """One network layer's RDM in a set."""

        definition = """
        -> master
        network: varchar(64)               # e.g. depth, or a Taskonomy task name
        layer: varchar(128)                # e.g. block3, output, encoder_output
        ---
        model_group: varchar(32)           # e.g. 2D, 3D, semantic
        member_index: int32                # order within the set
        rdm: <npy@neurofit>                # (n_pairs,) float64 condensed RDM (a copy)
        source: json                       # where it came from: {"rdm": key of neurofit's RDM row} or {"file": path}
        """

    @classmethod
    def add(cls, name: str, stimulus_set: str, members: Iterable[Mapping[str, Any]], *,
            description: str = "") -> dict[str, str]:
        """Insert a set, or return the key of the identical set already stored under ``name``.

        Args:
            name: the set's name.
            stimulus_set: the `StimulusSet` whose conditions the RDMs are over.
            members: dicts with ``network``, ``layer``, ``group`` and one of ``rdm`` (an (n, n)
                or condensed array), ``path`` (a ``.mat`` file, key ``rdm`` or ``key``) or
                ``source`` (a restriction selecting exactly one row of neurofit's `RDM`,
                e.g. from `rdm_members`).

        Raises:
            ValueError: an unknown stimulus set, a member without exactly one source, an RDM
                of the wrong size, a network in two groups, or a name used for other content.
            neurofit.datasets.fmri_rdms.RDMFileError: a malformed file (nothing is inserted).
        """
        n = _n_stimuli(stimulus_set)
        rows = [_resolve_member(spec, n, index) for index, spec in enumerate(members)]
        if not rows:
            raise ValueError(f"model RDM set {name!r} needs at least one member")
        per_network, _, group_of = brain_fits.group_predictors(
            np.stack([r["rdm"] for r in rows]), [r["network"] for r in rows], [r["layer"] for r in rows],
            [r["model_group"] for r in rows])
        checksum = _digest([r["rdm"] for r in rows], [f"{r['network']}/{r['layer']}/{r['model_group']}" for r in rows])
        key = {"model_rdm_set": name}
        existing = cls() & key
        if existing:
            if existing.fetch1("members_sha256") != checksum:
                raise ValueError(f"model RDM set {name!r} exists with other members or RDMs; choose a new name")
            return key
        with cls.connection.transaction:
            cls().insert1({**key, "stimulus_set": stimulus_set, "n_members": len(rows), "n_networks": len(per_network),
                           "groups": list(dict.fromkeys(group_of.values())), "members_sha256": checksum,
                           "description": description})
            cls.Member().insert([{**key, **row} for row in rows])
        return key

    @classmethod
    def predictors(cls, key: Mapping[str, Any]) -> tuple[dict, dict, dict]:
        """``(per_network, per_group, group_of)`` of `brain_fits.group_predictors` for one set."""
        rows = sorted((cls.Member & key).to_dicts(), key=lambda r: r["member_index"])
        return brain_fits.group_predictors(
            np.stack([read_stored(r["rdm"]) for r in rows]), [r["network"] for r in rows],
            [r["layer"] for r in rows], [r["model_group"] for r in rows])


def _resolve_member(spec: Mapping[str, Any], n: int, index: int) -> dict[str, Any]:
    missing = [k for k in ("network", "layer", "group") if not spec.get(k)]
    if missing:
        raise ValueError(f"member {index} lacks {missing}; every member names its network, layer and group")
    sources = [k for k in ("rdm", "path", "source") if spec.get(k) is not None]
    if len(sources) != 1:
        raise ValueError(f"member {index} ({spec['network']}/{spec['layer']}) needs exactly one of rdm, path or "
                         f"source; got {sources or 'none'}")
    what = f"member {spec['network']}/{spec['layer']}"
    if "path" in sources:
        values = fmri_rdms.load_model_rdm(spec["path"], key=spec.get("key", "rdm"), n_conditions=n)
        origin = {"file": str(spec["path"])}
    elif "source" in sources:
        rows = RDM & spec["source"]
        if len(rows) != 1:
            raise ValueError(f"{what}: source selects {len(rows)} rows of RDM; it must select exactly one")
        row_key = rows.keys()[0]
        values = read_stored(rows.fetch1("rdm"))
        origin = {"rdm": {k: (int(v) if isinstance(v, (int, np.integer)) else str(v)) for k, v in row_key.items()}}
    else:
        values, origin = spec["rdm"], {"array": True}
    return {"network": str(spec["network"]), "layer": str(spec["layer"]), "model_group": str(spec["group"]),
            "member_index": index, "rdm": _as_condensed(values, n, what), "source": origin}


def rdm_members(networks: Mapping[str, tuple[str, Mapping[str, Any]]], stimulus_set: str,
                layers: Iterable[str], rdm_method: str = "correlation") -> list[dict[str, Any]]:
    """Member specs for `ModelRDMSet.add` from neurofit's `RDM` rows of trained models.

    Args:
        networks: ``{network name: (group, restriction selecting one trained model)}``.
        stimulus_set: the stimulus set the models were probed with.
        layers: layer names to take from each network.
        rdm_method: the `RDMMethod` of the rows.

    Raises:
        ValueError: a network whose restriction does not give exactly one RDM per layer (say
            which: probe it and populate `RDM` first).
    """
    members = []
    for network, (group, restriction) in networks.items():
        for layer in layers:
            source = (RDM & restriction & {"stimulus_set": stimulus_set, "layer": layer, "rdm_method": rdm_method})
            if len(source) != 1:
                raise ValueError(f"network {network!r}: {len(source)} RDM rows of layer {layer!r} "
                                 f"({rdm_method}) on {stimulus_set!r}; need one (probe it, then populate RDM)")
            members.append({"network": network, "layer": layer, "group": group, "source": source.keys()[0]})
    return members


def import_roi_rdms(name: str, stimulus_set: str, path: str | Path, *, key: str = "subject_rdm",
                    description: str = "") -> dict[str, str]:
    """Insert one ROI's per-subject RDMs from the seed's ``.mat`` layout as a `ReferenceRDM`.

    Subjects are named ``sub01``, ``sub02``, ...; the reference's RDM is their mean.

    Raises:
        neurofit.datasets.fmri_rdms.RDMFileError: a missing key, an array that is not
            (n_subjects, n, n), non-square, asymmetric or non-finite RDMs, or RDMs of another
            number of conditions than the stimulus set's; nothing is inserted.
        ValueError: an unknown stimulus set.
    """
    subjects = fmri_rdms.load_roi_rdms(path, key=key, n_conditions=_n_stimuli(stimulus_set))
    return ReferenceRDM.add(name, stimulus_set, subjects={f"sub{i + 1:02d}": s for i, s in enumerate(subjects)},
                            description=description or f"ROI RDMs from {Path(path).name}")


@schema
class SearchlightRDMs(dj.Manual):
    """Searchlight RDMs of every subject over one stimulus set, and where each searchlight sits."""

    definition = """
    searchlight_rdms: varchar(64)          # name, e.g. fmri_searchlights_sl1
    ---
    -> StimulusSet
    n_subjects: int32                      # subjects
    n_searchlights: int32                  # searchlights
    rdms: <npy@neurofit>                   # (n_subjects, n_searchlights, n_pairs) float32 condensed
    mask: <npy@neurofit>                   # (X, Y, Z) bool brain mask
    affine: <npy@neurofit>                 # (4, 4) voxel-to-world transform (mm)
    voxels: <npy@neurofit>                 # (n_searchlights, 2, 3) int: box each searchlight paints in a map
    layout: varchar(16)                    # blocks (the seed's) or voxels (one per mask voxel)
    source = "": varchar(1024)             # files imported from
    """

    @classmethod
    def add(cls, name: str, stimulus_set: str, rdms: np.ndarray, mask: np.ndarray, *,
            affine: np.ndarray | None = None, voxels: np.ndarray | None = None, layout: str = "voxels",
            source: str = "") -> dict[str, str]:
        """Insert searchlight RDMs (n_subjects, n_searchlights, n_pairs) with their mask.

        ``voxels`` default: one searchlight per mask voxel in C order. Raises ValueError on
        sizes that do not fit the stimulus set or the mask.
        """
        n = _n_stimuli(stimulus_set)
        rdms = np.asarray(rdms, dtype=np.float32)
        mask = np.asarray(mask).astype(bool)
        if rdms.ndim != 3 or rdms.shape[0] < 2 or rdms.shape[2] != n * (n - 1) // 2:
            raise ValueError(f"searchlight RDMs have shape {rdms.shape}; need (n_subjects >= 2, n_searchlights, "
                             f"{n * (n - 1) // 2}) for the {n} stimuli of {stimulus_set!r}")
        if not np.all(np.isfinite(rdms)):
            raise ValueError("searchlight RDMs contain NaN or infinity")
        if mask.ndim != 3:
            raise ValueError(f"mask must be 3-D, got shape {mask.shape}")
        voxels = np.stack([np.argwhere(mask), np.argwhere(mask) + 1], axis=1) if voxels is None else np.asarray(voxels)
        if voxels.shape != (rdms.shape[1], 2, 3):
            raise ValueError(f"the mask gives {len(voxels)} searchlights but the RDMs have {rdms.shape[1]}")
        affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
        cls().insert1({"searchlight_rdms": name, "stimulus_set": stimulus_set, "n_subjects": rdms.shape[0],
                       "n_searchlights": rdms.shape[1], "rdms": rdms, "mask": mask, "affine": affine,
                       "voxels": voxels.astype(np.int64), "layout": layout, "source": source})
        return {"searchlight_rdms": name}

    @classmethod
    def import_files(cls, name: str, stimulus_set: str, rdm_path: str | Path, mask_path: str | Path, *,
                     layout: str = "blocks", sl_rad: int = 1, max_blk_edge: int = 2) -> dict[str, str]:
        """Insert the seed's ``all_sub_slrdms.npy`` + ``mask.nii`` (see `fmri_rdms.load_searchlight_rdms`).

        Raises:
            neurofit.datasets.fmri_rdms.RDMFileError: a malformed file or a mask whose
                searchlights do not match the RDMs; nothing is inserted.
        """
        data = fmri_rdms.load_searchlight_rdms(rdm_path, mask_path, layout=layout, sl_rad=sl_rad,
                                               max_blk_edge=max_blk_edge)
        return cls.add(name, stimulus_set, data.rdms, data.mask, affine=data.affine, voxels=data.voxels,
                       layout=layout, source=f"{rdm_path}, {mask_path}")


@schema
class RSAParams(dj.Lookup):
    """Settings of the statistics of a variance partitioning."""

    definition = """
    rsa_params: varchar(32)                # name
    ---
    n_permutations: int32                  # condition-label permutations of the subject-mean RDM
    n_bootstrap: int32                     # condition bootstrap iterations
    bootstrap_ratio: float64               # fraction of conditions kept per bootstrap iteration
    alpha: float64                         # false discovery rate of winners and maps
    rsa_seed: int32                        # random seed of permutations and bootstrap
    """
    contents = [
        {"rsa_params": "default", "n_permutations": 1000, "n_bootstrap": 200, "bootstrap_ratio": 0.9,
         "alpha": 0.05, "rsa_seed": 0},
        {"rsa_params": "quick", "n_permutations": 200, "n_bootstrap": 20, "bootstrap_ratio": 0.9,
         "alpha": 0.05, "rsa_seed": 0},
    ]


def _region_key_source():
    return (ModelRDMSet.proj("stimulus_set") * (ReferenceRDM & "n_subjects >= 2").proj("stimulus_set")).proj()


def _subject_rdms(key) -> np.ndarray:
    rows = sorted((ReferenceRDM.Subject & key).to_dicts(), key=lambda r: r["subject"])
    return np.stack([read_stored(r["rdm"]) for r in rows])


@schema
class RSARegression(dj.Computed):
    """Every network of a model RDM set regressed (OLS) on each subject's RDM of one region.

    One `RSARegression.Network` row per network: its layer RDMs are the predictors.
    """

    definition = f"""
    -> ModelRDMSet
    -> ReferenceRDM
    ---
    n_subjects: int32                      # subjects regressed
    noise_ceiling_lower: float64           # mean r^2 of each subject with the mean of the others
    noise_ceiling_upper: float64           # mean r^2 of each subject with the mean of all
    best_network: varchar(64)              # network of highest mean adjusted R^2
    {provenance.attributes("RSARegression")}
    """

    class Network(dj.Part):
        """One network's fit to one region."""

        definition = """
        -> master
        network: varchar(64)               # network of the set
        ---
        model_group: varchar(32)           # its group
        n_layers: int32                    # layer RDMs in the regression
        r2: float64                        # mean over subjects of R^2
        adjusted_r2: float64               # mean over subjects of adjusted R^2
        adjusted_r2_sem: float64           # its standard error over subjects
        t: float64                         # one-sided t-test across subjects: adjusted R^2 > 0
        p: float64                         # its p-value
        r2_subjects: json                  # (n_subjects,) R^2 per subject (sorted subject names)
        adjusted_r2_subjects: json         # (n_subjects,) adjusted R^2 per subject
        """

    @property
    def key_source(self):
        return _region_key_source()

    def make_fetch(self, key):
        return [(ModelRDMSet & key).fetch1("members_sha256"), (ReferenceRDM & key).fetch1("n_subjects")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, members_sha256, n_subjects):
        per_network, _, group_of = ModelRDMSet.predictors(key)
        fit = brain_fits.roi_regression(_subject_rdms(key), per_network)
        return [fit, {n: (group_of[n], x.shape[1]) for n, x in per_network.items()}]

    def make_insert(self, key, fit, networks, record):
        names = list(networks)
        lower, upper = fit["noise_ceiling"]
        means = fit["adjusted_r2"].mean(axis=1)
        sem = fit["adjusted_r2"].std(axis=1, ddof=1) / np.sqrt(fit["adjusted_r2"].shape[1])
        self.insert1({**key, "n_subjects": fit["r2"].shape[1], "noise_ceiling_lower": lower,
                      "noise_ceiling_upper": upper, "best_network": names[int(means.argmax())], **record})
        self.Network.insert([
            {**key, "network": n, "model_group": networks[n][0], "n_layers": networks[n][1],
             "r2": float(fit["r2"][i].mean()), "adjusted_r2": float(means[i]), "adjusted_r2_sem": float(sem[i]),
             "t": float(fit["t"][i]), "p": float(fit["p"][i]), "r2_subjects": fit["r2"][i].tolist(),
             "adjusted_r2_subjects": fit["adjusted_r2"][i].tolist()}
            for i, n in enumerate(names)
        ])


@schema
class VariancePartition(dj.Computed):
    """Unique and shared variance (adjusted R^2) of a set's groups in one region, with statistics.

    A group enters or leaves a model as a whole (all its grouped layer RDMs).
    """

    definition = f"""
    -> RSARegression
    -> RSAParams
    ---
    total_adjusted_r2: float64             # mean over subjects of the adjusted R^2 of all groups together
    total_permutation_p: float64           # permutation p of the subject-mean RDM's total
    best_group: varchar(32)                # group of largest mean unique variance
    {provenance.attributes("VariancePartition")}
    """

    class Group(dj.Part):
        """One group's unique variance."""

        definition = """
        -> master
        model_group: varchar(32)           # group name
        ---
        unique_variance: float64           # mean over subjects of the unique adjusted R^2
        unique_sem: float64                # its standard error over subjects
        t: float64                         # one-sided t-test across subjects: unique > 0
        p: float64                         # its p-value
        unique_of_mean: float64            # unique adjusted R^2 of the subject-mean RDM
        permutation_p: float64             # condition-label permutation p of unique_of_mean
        bootstrap_std: float64             # condition-bootstrap standard deviation of unique_of_mean
        unique_subjects: json              # (n_subjects,) per subject
        """

    class Subset(dj.Part):
        """Variance shared by exactly one subset of groups (the partition's cells)."""

        definition = """
        -> master
        subset: varchar(255)               # comma-joined group names
        ---
        n_groups: int32                    # groups in the subset
        shared_variance: float64           # mean over subjects
        shared_of_mean: float64            # of the subject-mean RDM
        """

    def make_fetch(self, key):
        return [(RSAParams & key).fetch1("n_permutations", "n_bootstrap", "bootstrap_ratio", "rsa_seed")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, params):
        n_permutations, n_bootstrap, ratio, seed = params
        _, per_group, _ = ModelRDMSet.predictors(key)
        return [brain_fits.roi_partition(_subject_rdms(key), per_group, n_permutations=int(n_permutations),
                                         n_bootstrap=int(n_bootstrap), ratio=float(ratio), seed=int(seed))]

    def make_insert(self, key, out, record):
        groups = list(out["groups"])
        unique = out["unique"]
        sem = unique.std(axis=1, ddof=1) / np.sqrt(unique.shape[1])
        self.insert1({**key, "total_adjusted_r2": float(out["total"].mean()),
                      "total_permutation_p": out["total_permutation_p"],
                      "best_group": groups[int(unique.mean(axis=1).argmax())], **record})
        self.Group.insert([
            {**key, "model_group": g, "unique_variance": float(unique[i].mean()), "unique_sem": float(sem[i]),
             "t": float(out["unique_t"][i]), "p": float(out["unique_p"][i]),
             "unique_of_mean": float(out["mean_unique"][i]), "permutation_p": float(out["unique_permutation_p"][i]),
             "bootstrap_std": float(out["unique_bootstrap_std"][i]), "unique_subjects": unique[i].tolist()}
            for i, g in enumerate(groups)
        ])
        self.Subset.insert([
            {**key, "subset": ",".join(s), "n_groups": len(s), "shared_variance": float(out["partition"][i].mean()),
             "shared_of_mean": float(out["mean_partition"][i])}
            for i, s in enumerate(out["subsets"])
        ])


@schema
class RegionSet(dj.Manual):
    """A family of regions tested together: winners are FDR-corrected over its regions."""

    definition = """
    region_set: varchar(64)                # name, e.g. rois_v1_to_ppa
    ---
    -> ModelRDMSet
    -> RSAParams
    description = "": varchar(1024)        # what the regions are
    """

    class Region(dj.Part):
        """One region of the family."""

        definition = """
        -> master
        -> ReferenceRDM
        """

    @classmethod
    def add(cls, name: str, model_rdm_set: str, regions: Iterable[str], *, rsa_params: str = "default",
            description: str = "") -> dict[str, str]:
        """Insert a family of ROIs (names of `ReferenceRDM` rows with >= 2 subjects).

        Raises:
            ValueError: an unknown set or region, a region of another stimulus set or with
                fewer than 2 subjects.
        """
        regions = list(regions)
        model_set = ModelRDMSet & {"model_rdm_set": model_rdm_set}
        if not model_set:
            raise ValueError(f"no model RDM set named {model_rdm_set!r}")
        stimuli = model_set.fetch1("stimulus_set")
        for region in regions:
            row = ReferenceRDM & {"reference_rdm": region}
            if not row:
                raise ValueError(f"no reference RDM named {region!r}; import it with import_roi_rdms")
            found, n_subjects = row.fetch1("stimulus_set", "n_subjects")
            if found != stimuli or n_subjects < 2:
                raise ValueError(f"region {region!r} is over {found!r} with {n_subjects} subjects; a region of "
                                 f"{model_rdm_set!r} needs stimulus set {stimuli!r} and >= 2 subjects")
        key = {"region_set": name}
        if cls() & key:
            stored = set((cls.Region & key).to_arrays("reference_rdm"))
            if stored != set(regions) or (cls() & key).fetch1("model_rdm_set", "rsa_params") != (model_rdm_set, rsa_params):
                raise ValueError(f"region set {name!r} exists with other regions or settings; choose a new name")
            return key
        with cls.connection.transaction:
            cls().insert1({**key, "model_rdm_set": model_rdm_set, "rsa_params": rsa_params, "description": description})
            cls.Region().insert([{**key, "reference_rdm": r} for r in regions])
        return key


@schema
class RegionWinner(dj.Computed):
    """The best network and group of every region of a `RegionSet`, FDR-corrected over its regions."""

    definition = f"""
    -> RegionSet
    ---
    n_regions: int32                       # regions in the family
    n_significant: int32                   # regions whose winning group is significant
    {provenance.attributes("RegionWinner")}
    """

    class Region(dj.Part):
        """The winner of one region."""

        definition = """
        -> master
        -> VariancePartition
        ---
        best_network: varchar(64)          # network of highest mean adjusted R^2
        network_adjusted_r2: float64       # its mean adjusted R^2
        network_q: float64                 # FDR q (over regions) of its t-test across subjects
        best_group: varchar(32)            # group of largest mean unique variance
        group_unique: float64              # its mean unique variance
        group_q: float64                   # FDR q (over regions) of its permutation p
        runner_up_group = "": varchar(32)  # group of second-largest unique variance
        paired_p = null: float64           # one-sided paired t-test across subjects: best > runner-up
        significant: bool                  # group_q <= alpha and paired_p <= alpha
        """

    @property
    def key_source(self):
        needed = RegionSet.Region * RegionSet.proj("model_rdm_set", "rsa_params")
        missing = needed - VariancePartition.proj()
        return (RegionSet.proj() & RegionSet.Region) - missing.proj()

    def make_fetch(self, key):
        return [sorted((RegionSet.Region & key).to_arrays("reference_rdm").tolist()),
                (RegionSet * RSAParams & key).fetch1("alpha")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, regions, alpha):
        model_set, params = (RegionSet & key).fetch1("model_rdm_set", "rsa_params")
        base = {"model_rdm_set": model_set, "rsa_params": params}
        networks, groups, adjusted, network_p, unique, unique_p = None, None, [], [], [], []
        for region in regions:
            fits = sorted((RSARegression.Network & base & {"reference_rdm": region}).to_dicts(), key=lambda r: r["network"])
            parts = sorted((VariancePartition.Group & base & {"reference_rdm": region}).to_dicts(),
                           key=lambda r: r["model_group"])
            networks, groups = [r["network"] for r in fits], [r["model_group"] for r in parts]
            adjusted.append([r["adjusted_r2_subjects"] for r in fits])
            network_p.append([r["p"] for r in fits])
            unique.append([r["unique_subjects"] for r in parts])
            unique_p.append([r["permutation_p"] for r in parts])
        won = brain_fits.region_winners(np.array(adjusted), np.array(network_p), np.array(unique),
                                        np.array(unique_p), alpha=float(alpha))
        adjusted, unique = np.array(adjusted).mean(axis=2), np.array(unique).mean(axis=2)
        rows = []
        for i, region in enumerate(regions):
            order = np.argsort(-unique[i])
            n, g = int(won["network"][i]), int(won["group"][i])
            rows.append({**base, "reference_rdm": region, "best_network": networks[n],
                         "network_adjusted_r2": float(adjusted[i, n]), "network_q": float(won["network_q"][i]),
                         "best_group": groups[g], "group_unique": float(unique[i, g]),
                         "group_q": float(won["group_q"][i]),
                         "runner_up_group": groups[int(order[1])] if len(groups) > 1 else "",
                         "paired_p": None if np.isnan(won["paired_p"][i]) else float(won["paired_p"][i]),
                         "significant": bool(won["significant"][i])})
        return [rows]

    def make_insert(self, key, rows, record):
        self.insert1({**key, "n_regions": len(rows), "n_significant": sum(r["significant"] for r in rows), **record})
        self.Region.insert([{**key, **row} for row in rows])


@schema
class SearchlightFit(dj.Computed):
    """Every searchlight regressed on every network and partitioned among the groups, batched."""

    definition = f"""
    -> ModelRDMSet
    -> SearchlightRDMs
    -> RSAParams
    ---
    networks: json                         # network names, rows of adjusted_r2
    model_groups: json                     # group names, rows of unique
    adjusted_r2: <npy@neurofit>            # (n_networks, n_searchlights) mean over subjects
    unique_variance: <npy@neurofit>        # (n_groups, n_searchlights) mean over subjects
    unique_p: <npy@neurofit>               # (n_groups, n_searchlights) one-sided t-test across subjects
    unique_q: <npy@neurofit>               # (n_groups, n_searchlights) its FDR q over searchlights
    winner_network: <npy@neurofit>         # (n_searchlights,) int index into networks
    winner_group: <npy@neurofit>           # (n_searchlights,) int index into model_groups; -1: none significant
    n_significant: int32                   # searchlights with a significant winning group
    {provenance.attributes("SearchlightFit")}
    """

    @property
    def key_source(self):
        return (ModelRDMSet.proj("stimulus_set") * SearchlightRDMs.proj("stimulus_set") * RSAParams.proj()).proj()

    def make_fetch(self, key):
        return [(ModelRDMSet & key).fetch1("members_sha256"), (RSAParams & key).fetch1("alpha")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, members_sha256, alpha):
        per_network, per_group, _ = ModelRDMSet.predictors(key)
        rdms = read_stored((SearchlightRDMs & key).fetch1("rdms"))
        return [list(per_network), list(per_group),
                brain_fits.searchlight_fit(rdms, per_network, per_group, alpha=float(alpha))]

    def make_insert(self, key, networks, groups, fit, record):
        self.insert1({**key, "networks": networks, "model_groups": groups, "adjusted_r2": fit["adjusted_r2"],
                      "unique_variance": fit["unique"], "unique_p": fit["unique_p"], "unique_q": fit["unique_q"],
                      "winner_network": fit["winner_network"].astype(np.int64),
                      "winner_group": fit["winner_group"].astype(np.int64),
                      "n_significant": int(np.sum(fit["winner_group"] >= 0)), **record})


@schema
class SearchlightMap(dj.Computed):
    """Brain volumes of one searchlight fit: R^2 per network, unique variance per group, winners."""

    definition = f"""
    -> SearchlightFit
    ---
    n_maps: int32                          # maps in the part table
    {provenance.attributes("SearchlightMap")}
    """

    class Map(dj.Part):
        """One map in the mask's voxel grid."""

        definition = """
        -> master
        map_name: varchar(96)              # adjusted_r2_<network>, unique_<group>, winner_group, winner_network
        ---
        volume: <npy@neurofit>             # (X, Y, Z) float64; NaN outside the brain; winners: index + 1, 0 = none
        labels = null: json                # winner maps: names of values 1, 2, ...
        """

    def make_fetch(self, key):
        return [(SearchlightRDMs & key).fetch1("n_searchlights")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, n_searchlights):
        fit = (SearchlightFit & key).fetch1()
        voxels = read_stored((SearchlightRDMs & key).fetch1("voxels"))
        shape = read_stored((SearchlightRDMs & key).fetch1("mask")).shape
        paint = lambda values: fmri_rdms.searchlight_volume(values, voxels, shape)  # noqa: E731
        maps = []
        for name, rows, values in (("adjusted_r2", fit["networks"], read_stored(fit["adjusted_r2"])),
                                   ("unique", fit["model_groups"], read_stored(fit["unique_variance"]))):
            maps += [(f"{name}_{label}", paint(row), None) for label, row in zip(rows, values)]
        maps.append(("winner_group", paint(read_stored(fit["winner_group"]) + 1.0), list(fit["model_groups"])))
        maps.append(("winner_network", paint(read_stored(fit["winner_network"]) + 1.0), list(fit["networks"])))
        return [maps]

    def make_insert(self, key, maps, record):
        self.insert1({**key, "n_maps": len(maps), **record})
        self.Map.insert([{**key, "map_name": n, "volume": v, "labels": labels} for n, v, labels in maps])

    @staticmethod
    def image(key: Mapping[str, Any], map_name: str):
        """One map as a ``nibabel.Nifti1Image`` in the mask's world coordinates (``fmri`` extra)."""
        try:
            import nibabel
        except ImportError:
            raise ImportError("NIfTI export needs nibabel: pip install 'neurofit[fmri]'") from None
        row = SearchlightMap.Map & key & {"map_name": map_name}
        if len(row) != 1:
            names = sorted((SearchlightMap.Map & key).to_arrays("map_name").tolist())
            raise ValueError(f"no single map {map_name!r} for this key; maps: {names}")
        volume = read_stored(row.fetch1("volume")).astype(np.float32)
        affine = read_stored((SearchlightRDMs & key).fetch1("affine"))
        return nibabel.Nifti1Image(volume, affine)

    @classmethod
    def export_nifti(cls, key: Mapping[str, Any], directory: str | Path) -> list[Path]:
        """Write every map of one fit as ``<map_name>.nii.gz`` into ``directory``; returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in sorted((cls.Map & key).to_arrays("map_name").tolist()):
            path = directory / f"{name}.nii.gz"
            cls.image(key, name).to_filename(str(path))
            paths.append(path)
        return paths

    @classmethod
    def plot(cls, key: Mapping[str, Any], map_name: str = "winner_group", **kwargs):
        """Plot one map with nilearn (``plot_roi`` for winner maps, ``plot_stat_map`` otherwise)."""
        try:
            from nilearn import plotting
        except ImportError:
            raise ImportError("plotting maps needs nilearn: pip install nilearn") from None
        image = cls.image(key, map_name)
        if map_name.startswith("winner"):
            return plotting.plot_roi(image, bg_img=None, **kwargs)
        return plotting.plot_stat_map(image, bg_img=None, **kwargs)

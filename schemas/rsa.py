"""Representational similarity analysis: RDMs of layers, reference RDMs, and their comparisons."""

from __future__ import annotations

from typing import Any

import datajoint as dj
import numpy as np

from neurofit.pipelines.analysis import rdm as rdm_functions
from neurofit.pipelines.analysis import rdm_comparison

from . import _runtime, provenance
from ._schema import schema
from .probing import Activations, StimulusSet
from .storage import read_stored


@schema
class RDMMethod(dj.Lookup):
    """One way of turning activations into an RDM (rsatoolbox's definitions)."""

    definition = """
    rdm_method: varchar(32)                # name understood by neurofit.pipelines.analysis.rdm.rdm
    ---
    description: varchar(255)
    """
    contents = [{"rdm_method": name, "description": text} for name, text in rdm_functions.METHOD_DESCRIPTIONS.items()]


@schema
class RDM(dj.Computed):
    """The representational dissimilarity matrix of one layer for one stimulus set."""

    definition = f"""
    -> Activations.Layer
    -> RDMMethod
    ---
    n_stimuli: int32
    rdm: <npy@neurofit>                    # (n_stimuli * (n_stimuli - 1) / 2,) float64, condensed upper triangle
    {provenance.attributes("RDM")}
    """

    @property
    def key_source(self):
        # Activations are one pattern per stimulus: methods that need noise estimates or folds
        # (rdm_functions.METHOD_REQUIREMENTS) would only fail, so they get no job.
        runnable = [{"rdm_method": m} for m in rdm_functions.METHODS if m not in rdm_functions.METHOD_REQUIREMENTS]
        return Activations.Layer.proj() * (RDMMethod & runnable).proj()

    def make_fetch(self, key):
        return [(Activations.Layer & key).fetch1("n_units")]

    @provenance.recorded()
    def make_compute(self, key, n_units):
        # The array is read here, outside the transaction and outside DataJoint's fetch hashing.
        activations = read_stored((Activations.Layer & key).fetch1("activations"))
        device = _runtime.context().device
        return [rdm_functions.rdm(np.asarray(activations, dtype=np.float64), method=key["rdm_method"],
                                  device=device if device.startswith("cuda") else None)]

    def make_insert(self, key, values, record):
        n_stimuli = int(round((1 + np.sqrt(1 + 8 * values.size)) / 2))
        self.insert1({**key, "n_stimuli": n_stimuli, "rdm": values, **record})


@schema
class ReferenceRDM(dj.Manual):
    """One RDM a lab measured (brain region, behaviour) for a stimulus set, averaged over subjects.

    Per-subject RDMs in the `ReferenceRDM.Subject` part give its noise ceiling.
    """

    definition = """
    reference_rdm: varchar(64)             # e.g. V1_fmri, behaviour_similarity
    ---
    -> StimulusSet
    n_subjects: int32                      # subjects averaged (0 if only the mean was given)
    rdm: <npy@neurofit>                    # (n_pairs,) condensed mean RDM
    description = "": varchar(1024)
    """

    class Subject(dj.Part):
        """One subject's RDM of a reference."""

        definition = """
        -> master
        subject: varchar(64)
        ---
        rdm: <npy@neurofit>                # (n_pairs,) condensed
        """

    @classmethod
    def add(
        cls,
        name: str,
        stimulus_set: str,
        rdm: np.ndarray | None = None,
        *,
        subjects: dict[str, np.ndarray] | None = None,
        description: str = "",
    ) -> dict[str, str]:
        """Insert a reference RDM: either one RDM, or per-subject RDMs whose mean is the reference.

        RDMs may be square (n, n) or condensed (n(n-1)/2,), and must match the stimulus set's size.
        """
        n = (StimulusSet & {"stimulus_set": stimulus_set}).fetch1("n_stimuli") if (
            StimulusSet & {"stimulus_set": stimulus_set}) else None
        if n is None:
            raise ValueError(f"no stimulus set named {stimulus_set!r}; add it with StimulusSet.add")
        if (rdm is None) == (subjects is None):
            raise ValueError("give either rdm=... or subjects={name: rdm, ...}, not both or neither")

        def as_condensed(value, what):
            value = np.asarray(value, dtype=np.float64)
            if value.ndim == 2:
                value = rdm_functions.condensed(value)
            if value.shape != (n * (n - 1) // 2,):
                raise ValueError(
                    f"{what} has {value.shape} entries; stimulus set {stimulus_set!r} has {n} stimuli, "
                    f"so an RDM is ({n}, {n}) or ({n * (n - 1) // 2},) condensed"
                )
            return value

        per_subject = {s: as_condensed(v, f"RDM of subject {s!r}") for s, v in (subjects or {}).items()}
        mean = as_condensed(rdm, "rdm") if rdm is not None else np.mean(list(per_subject.values()), axis=0)
        key = {"reference_rdm": name}
        with cls.connection.transaction:
            cls().insert1({**key, "stimulus_set": stimulus_set, "n_subjects": len(per_subject),
                           "rdm": mean, "description": description})
            cls.Subject().insert([{**key, "subject": s, "rdm": v} for s, v in per_subject.items()])
        return key


@schema
class ComparisonMethod(dj.Lookup):
    """One way of comparing two RDMs (rsatoolbox's definitions)."""

    definition = """
    comparison_method: varchar(32)         # name understood by neurofit.pipelines.analysis.rdm_comparison
    ---
    description: varchar(255)
    """
    contents = [
        {"comparison_method": name, "description": text}
        for name, text in rdm_comparison.COMPARISON_DESCRIPTIONS.items()
    ]


@schema
class ReferenceNoiseCeiling(dj.Computed):
    """Noise ceiling of one reference RDM under one comparison method (Nili et al. 2014)."""

    definition = f"""
    -> ReferenceRDM
    -> ComparisonMethod
    ---
    lower = null: float64                  # leave-one-subject-out: subject vs mean of the others
    upper = null: float64                  # subject vs mean of all subjects
    {provenance.attributes("ReferenceNoiseCeiling")}
    """

    @property
    def key_source(self):
        return (ReferenceRDM & "n_subjects >= 2").proj() * ComparisonMethod.proj()

    def make_fetch(self, key):
        return [(ReferenceRDM & key).fetch1("n_subjects")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, n_subjects):
        # to_dicts keeps the lazy references; to_arrays would stack them through __array__.
        subjects = np.stack([read_stored(row["rdm"]) for row in (ReferenceRDM.Subject & key).to_dicts()])
        lower, upper = rdm_comparison.noise_ceiling(subjects, method=key["comparison_method"])
        return [float(lower), float(upper)]

    def make_insert(self, key, lower, upper, record):
        self.insert1({**key, "lower": lower, "upper": upper, **record})


@schema
class RDMComparison(dj.Computed):
    """Similarity of one layer's RDM to one reference RDM of the same stimulus set."""

    definition = f"""
    -> RDM
    -> ReferenceRDM
    -> ComparisonMethod
    ---
    similarity: float64                    # mean over subjects of the comparison with each subject's RDM (with the mean RDM if there are no subjects); comparable with the noise ceiling
    similarity_sem = null: float64         # standard error of that mean over subjects
    similarity_to_mean: float64            # comparison with the subject-averaged reference RDM
    {provenance.attributes("RDMComparison")}
    """

    @property
    def key_source(self):
        # Natural join on stimulus_set: only a reference of the same stimuli is compared.
        return (RDM.proj() * ReferenceRDM.proj("stimulus_set") * ComparisonMethod.proj()).proj()

    def make_fetch(self, key):
        return [(RDM & key).fetch1("n_stimuli")]

    @provenance.recorded(device="cpu")
    def make_compute(self, key, n_stimuli):
        method = key["comparison_method"]
        model_rdm = read_stored((RDM & key).fetch1("rdm"))
        to_mean = float(rdm_comparison.compare_rdms(model_rdm, read_stored((ReferenceRDM & key).fetch1("rdm")), method=method)[0, 0])
        subjects = [read_stored(row["rdm"]) for row in (ReferenceRDM.Subject & key).to_dicts()]
        if not subjects:
            return [to_mean, None, to_mean]
        # Per subject, then averaged: the quantity the noise ceiling bounds (Nili et al. 2014).
        per_subject = rdm_comparison.compare_rdms(model_rdm, np.stack(subjects), method=method)[0]
        sem = float(per_subject.std(ddof=1) / np.sqrt(len(per_subject))) if len(per_subject) > 1 else None
        return [float(per_subject.mean()), sem, to_mean]

    def make_insert(self, key, similarity, sem, to_mean, record):
        self.insert1({**key, "similarity": similarity, "similarity_sem": sem, "similarity_to_mean": to_mean,
                      **record})


def layer_comparisons(restriction: Any = None):
    """RDM comparisons with layer order and noise ceilings, as a tidy pandas DataFrame."""
    rows = (RDMComparison * Activations.Layer.proj("layer_index") & (restriction or {})).to_pandas().reset_index()
    ceilings = ReferenceNoiseCeiling.to_pandas().reset_index() if ReferenceNoiseCeiling() else None
    if ceilings is not None and len(rows):
        rows = rows.merge(ceilings, on=["reference_rdm", "comparison_method"], how="left")
    return rows

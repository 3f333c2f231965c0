"""Computation through dynamics: task-trained models -> simulated spikes as a Dataset -> data-trained
models -> comparison of their dynamics (the Computation-Through-Dynamics benchmark).

Tables (schema ``dynamics``):

* `SimulationConfig`: how spikes are simulated from a task model's latents (hashed parameters).
* `SimulationSelection`: which task-trained `TrainedModel` x simulation to run.
* `SimulatedData`: runs the task model on every trial of its dataset, simulates spikes, writes a
  CtD-layout h5 file to the object store and registers it as a core `Dataset` row
  (``neurofit.ctd_spikes`` naming the stored file by its store-relative path and checksum, and a
  ``source`` naming the task model and simulation) derived from the task model
  (`neurofit.schemas.derived.DerivedDataset`): data-trained models select it like any dataset.
* `SimulatedDataset`: the link from a simulation to the `Dataset` row it registered.
* `DynamicsComparison`: one data-trained `TrainedModel` of a simulated dataset against its task
  model (rate R², state R² both ways, cycle consistency, co-bps).
* `FixedPointSettings`, `FixedPoints` (+ ``Point``): fixed points of any trained recurrent model.
* `DSAScore`: Dynamical Similarity Analysis (``dsa-metric``, optional) between task and data model.

Deleting: a plain ``(TrainedModel & task_key).delete()`` (or a delete of anything upstream of it)
removes, in one transaction, the `Dataset` rows simulated from the task model and with them the
data-trained models, their comparisons and fixed points (`neurofit.schemas.cascading`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import datajoint as dj
import numpy as np

from neurofit.pipelines import hashing

from .config import Dataset
from .derived import DerivedDataset
from .storage import check_stored_path
from .training import TrainedModel, load_model

schema = dj.Schema()
schema_name = "dynamics"

__all__ = ["DSAScore", "DSASettings", "DynamicsComparison", "FixedPointSettings", "FixedPoints", "SimulatedData",
           "SimulatedDataset", "SimulationConfig", "SimulationSelection", "comparison_frame",
           "register_ctd_file", "schema", "schema_name"]

#: Model builders whose `TrainedModel` rows are task models (their ``run`` gives outputs, latents).
TASK_MODELS = ("neurofit.noisy_gru", "neurofit.gru", "neurofit.vanilla_rnn", "neurofit.node")
#: Builders of data-trained latent models.
LATENT_MODELS = ("neurofit.sae", "neurofit.lfads")
_TASK_KEY = ("dataset_fn", "dataset_hash", "model_fn", "model_hash", "trainer_fn", "trainer_hash", "seed")


@schema
class SimulationConfig(dj.Manual):
    """One way of simulating spikes from latents (`neurofit.datasets.spike_simulation.simulate_spikes`)."""

    definition = """
    sim_hash: char(32)                 # md5 of the canonical parameters
    ---
    n_heldin: int32                    # neurons the data models' encoders see
    n_heldout: int32                   # neurons scored by co-bps only
    fr_scaling: float64                # z-scored activity is divided by this (dimensionless)
    nonlinearity: varchar(16)          # exp | softplus
    noise: varchar(16)                 # poisson | overdispersed
    dispersion: float64                # gamma shape of over-dispersed counts (dimensionless)
    sim_seed: int64                    # seed of the embedding and the spikes
    """

    @classmethod
    def add(cls, *, n_heldin: int = 50, n_heldout: int = 10, fr_scaling: float = 2.0, nonlinearity: str = "exp",
            noise: str = "poisson", dispersion: float = 5.0, sim_seed: int = 0) -> dict[str, str]:
        """Insert (or find) a simulation config and return its key; bad values raise before any insert."""
        row = {"n_heldin": int(n_heldin), "n_heldout": int(n_heldout), "fr_scaling": float(fr_scaling),
               "nonlinearity": nonlinearity, "noise": noise, "dispersion": float(dispersion), "sim_seed": int(sim_seed)}
        if row["n_heldin"] < 1 or row["n_heldout"] < 1 or row["fr_scaling"] <= 0 or row["dispersion"] <= 0:
            raise ValueError(f"simulation config {row}: need n_heldin, n_heldout >= 1, fr_scaling, dispersion > 0")
        if nonlinearity not in ("exp", "softplus") or noise not in ("poisson", "overdispersed"):
            raise ValueError(f"nonlinearity {nonlinearity!r} / noise {noise!r}: use exp|softplus, poisson|overdispersed")
        key = {"sim_hash": hashing.config_hash(row)}
        cls().insert1({**key, **row}, skip_duplicates=True)
        return key


@schema
class SimulationSelection(dj.Manual):
    """One task-trained model x simulation config chosen to simulate."""

    definition = """
    -> TrainedModel
    -> SimulationConfig
    """

    @classmethod
    def add(cls, task_key: dict, sim_key: dict) -> dict[str, Any]:
        rows = (TrainedModel & task_key).keys()
        if len(rows) != 1 or rows[0]["model_fn"] not in TASK_MODELS:
            raise ValueError(f"{task_key!r} must match one TrainedModel of a task model ({', '.join(TASK_MODELS)})")
        key = {**rows[0], **sim_key}
        cls().insert1(key, skip_duplicates=True)
        return key


def _source(key: dict) -> str:
    task = json.dumps({k: key[k] for k in _TASK_KEY}, sort_keys=True)
    return f"ctd-sim:{hashlib.md5(task.encode()).hexdigest()}:{key['sim_hash']}"


@schema
class SimulatedData(dj.Computed):
    """One simulated spiking dataset: a task model's latents embedded and sampled as spikes.

    The h5 file (CtD layout, `neurofit.datasets.ctd_files`) is in the object store; the
    `Dataset` row it registers is in `SimulatedDataset`.
    """

    definition = """
    -> SimulationSelection
    ---
    h5: <object@neurofit>              # CtD-layout h5 file
    h5_sha256: char(64)                # checksum of the file
    n_trials: int32                    # train + validation trials
    n_neurons: int32                   # held-in + held-out neurons
    n_latents: int32                   # task model latents
    mean_rate: float64                 # mean true rate (spikes per bin)
    task_bit_accuracy = null: float64  # the task model's bit accuracy on these trials (NBFF only)
    """

    def make_fetch(self, key):
        return [(SimulationConfig & key).fetch1()]

    def make_compute(self, key, sim):
        from neurofit.datasets import ctd_files, spike_simulation
        from neurofit.pipelines import training
        from neurofit.pipelines.analysis import dynamics

        model = load_model({k: key[k] for k in _TASK_KEY}, device="cpu")
        data = training.build_data(key["dataset_fn"], Dataset.config(key), key["seed"])
        run = dynamics.run_task_model(model, {t: data.loaders[t] for t in ("train", "validation")})
        latents = np.concatenate([run["train"]["latents"], run["validation"]["latents"]])
        simulated = spike_simulation.simulate_spikes(
            latents, n_heldin=sim["n_heldin"], n_heldout=sim["n_heldout"], fr_scaling=sim["fr_scaling"],
            nonlinearity=sim["nonlinearity"], noise=sim["noise"], dispersion=sim["dispersion"], seed=sim["sim_seed"])
        simulated["n_heldin"] = sim["n_heldin"]
        arrays = spike_simulation.ctd_arrays(run, simulated)
        with tempfile.TemporaryDirectory() as folder:
            content = ctd_files.write_ctd_h5(Path(folder) / "sim.h5", arrays).read_bytes()
        accuracy = None
        if data.info.extra.get("task") == "nbff":
            v = run["validation"]
            accuracy = dynamics.bit_accuracy(v["outputs"], v["targets"], v["weights"])
        return [content, latents.shape, float(simulated["rates"].mean()), accuracy, sim["n_heldout"]]

    def make_insert(self, key, content, shape, mean_rate, accuracy, n_heldout):
        self.insert1({**key, "h5": content, "h5_sha256": hashlib.sha256(content).hexdigest(),
                      "n_trials": int(shape[0]), "n_neurons": int(n_heldout + (SimulationConfig & key).fetch1("n_heldin")),
                      "n_latents": int(shape[2]), "mean_rate": mean_rate, "task_bit_accuracy": accuracy})
        # Register the stored file as a dataset derived from the task model, in the same transaction
        # as the row. Its config names the file by store-relative path: the store may be a bucket.
        ref = (self & key).fetch1("h5")
        check_stored_path(ref)
        config = {"stored": str(ref.path), "stored_sha256": hashlib.sha256(content).hexdigest(),
                  "n_heldout": int(n_heldout), "source": _source(key)}
        dataset = Dataset.add("neurofit.ctd_spikes", config,
                              comment=f"simulated from task model {key['model_fn']}:{key['model_hash'][:8]}")
        DerivedDataset.add(dataset, key, "dynamics.SimulatedData")
        SimulatedDataset.insert1({**key, "derived_fn": dataset["dataset_fn"], "derived_hash": dataset["dataset_hash"]})


@schema
class SimulatedDataset(dj.Manual):
    """The `Dataset` row a simulation registered (written by `SimulatedData`, never by hand)."""

    definition = """
    -> SimulatedData
    ---
    -> Dataset.proj(derived_fn="dataset_fn", derived_hash="dataset_hash")
    """

    @classmethod
    def dataset_key(cls, key: dict) -> dict[str, str]:
        """The `Dataset` key simulated from ``key`` (a task model x simulation)."""
        fn, h = (cls & key).fetch1("derived_fn", "derived_hash")
        return {"dataset_fn": fn, "dataset_hash": h}


def register_ctd_file(path: str | Path, *, n_heldout: int = 10, comment: str = "") -> dict[str, str]:
    """Check a CtD (or neurofit) h5 file, then add it as a ``neurofit.ctd_spikes`` `Dataset`.

    Raises:
        neurofit.datasets.ctd_files.CtdFileError: missing keys or wrong shapes (nothing inserted).
    """
    from neurofit.datasets import ctd_files

    arrays = ctd_files.read_ctd_h5(path)
    ctd_files.split_heldout(arrays, n_heldout)
    return Dataset.add("neurofit.ctd_spikes", {"path": str(Path(path).resolve()), "n_heldout": n_heldout},
                       comment=comment)


def _truth(dataset_key: dict) -> dict[str, np.ndarray]:
    from neurofit.datasets import ctd_files

    return ctd_files.read_ctd_dataset(Dataset.config(dataset_key))


def _inferred(model, data) -> dict[str, np.ndarray]:
    from torch.utils.data import DataLoader

    from neurofit.pipelines.trainers.spikes import predict_spikes

    out = {}
    for split, tier in (("train", "train"), ("valid", "validation")):
        loader = data.loaders[tier]["all"]
        pred = predict_spikes(model, DataLoader(loader.dataset, batch_size=64), "cpu")  # stored order
        out[f"{split}_latents"], out[f"{split}_rates"] = pred["latents"], pred["rates"]
    return out


def _simulated_models():
    pairs = SimulatedDataset.proj("derived_fn", "derived_hash").to_dicts()
    return TrainedModel & [{"dataset_fn": p["derived_fn"], "dataset_hash": p["derived_hash"]} for p in pairs]


@schema
class DynamicsComparison(dj.Computed):
    """One data-trained model of simulated spikes compared with the task model that generated them."""

    definition = """
    -> TrainedModel
    ---
    task_model_fn: varchar(64)         # builder of the task model
    task_model_hash: char(32)          # its model config
    task_seed: int64                   # its seed
    sim_hash: char(32)                 # the simulation
    rate_r2: float64                   # VW-R² of inferred vs true rates, validation trials
    state_r2: float64                  # VW-R² of inferred latents from true latents (CtD's direction)
    state_r2_reverse: float64          # VW-R² of true latents from inferred latents
    cycle_consistency: float64         # CtD's cycle consistency (VW-R²)
    co_bps: float64                    # co-smoothing bits per spike of held-out neurons (NLB)
    co_bps_ctd: float64                # the same with CtD's formula
    """

    @property
    def key_source(self):
        return _simulated_models()

    def make_fetch(self, key):
        return [key]

    def make_compute(self, key, _):
        from neurofit.datasets.info import DataInfo
        from neurofit.pipelines import training
        from neurofit.pipelines.analysis import dynamics

        link = (SimulatedDataset & {"derived_fn": key["dataset_fn"], "derived_hash": key["dataset_hash"]}).to_dicts(
            limit=1)[0]
        truth = _truth(key)
        info = DataInfo.from_dict((TrainedModel & key).fetch1("data_info"))
        data = training.build_data(key["dataset_fn"], Dataset.config(key), key["seed"])
        inferred = _inferred(load_model(key, device="cpu"), data)
        n_heldin = int(info.extra["n_heldin"])
        scores = dynamics.compare_dynamics(truth, inferred, n_heldin)
        scores["co_bps_ctd"] = dynamics.co_bps(inferred["valid_rates"], truth["valid_recon_data"], n_heldin,
                                               variant="ctd")
        return [link, scores]

    def make_insert(self, key, link, scores):
        self.insert1({**key, "task_model_fn": link["model_fn"], "task_model_hash": link["model_hash"],
                      "task_seed": link["seed"], "sim_hash": link["sim_hash"], **scores})


@schema
class FixedPointSettings(dj.Lookup):
    """One way of searching fixed points (`neurofit.pipelines.analysis.fixed_points`)."""

    definition = """
    fp_settings: varchar(32)           # name
    ---
    n_initial: int32                   # initial states, drawn from visited validation states
    n_iters: int32                     # Adam iterations
    lr: float64                        # Adam learning rate
    q_threshold: float64               # speed below which a point counts as converged (state units²)
    unique_radius: float64             # points closer than this are one (state units)
    """
    contents = [
        {"fp_settings": "default", "n_initial": 256, "n_iters": 1500, "lr": 1e-2, "q_threshold": 1e-5,
         "unique_radius": 0.3},
        {"fp_settings": "quick", "n_initial": 64, "n_iters": 600, "lr": 2e-2, "q_threshold": 1e-4,
         "unique_radius": 0.3},
    ]


@schema
class FixedPoints(dj.Computed):
    """The fixed points of one trained recurrent model (task model or latent model) under zero input."""

    definition = """
    -> TrainedModel
    -> FixedPointSettings
    ---
    n_converged: int32                 # initial states that converged
    n_unique: int32                    # distinct converged points
    n_stable: int32                    # distinct points with every |eigenvalue| < 1
    n_patterns = null: int32           # distinct bit patterns the stable points read out (NBFF task models)
    seconds: float64                   # wall time of the search (s)
    """

    class Point(dj.Part):
        """One distinct fixed point."""

        definition = """
        -> master
        point_id: int32                # index among the distinct points
        ---
        q: float64                     # final speed ½‖F(h) - h‖² (state units²)
        stable: bool                   # every |eigenvalue| of dF/dh < 1
        max_abs_eig: float64           # spectral radius of dF/dh
        state: json                    # the point (n_latents floats)
        pattern = "": varchar(64)      # bits the task readout gives there (NBFF task models)
        """

    @property
    def key_source(self):
        return (TrainedModel & [{"model_fn": m} for m in TASK_MODELS + LATENT_MODELS]) * FixedPointSettings

    def make_fetch(self, key):
        return [(FixedPointSettings & key).fetch1()]

    def make_compute(self, key, settings):
        import time

        import torch

        from neurofit.pipelines import training
        from neurofit.pipelines.analysis import dynamics
        from neurofit.pipelines.analysis import fixed_points as fp

        started = time.perf_counter()
        model = load_model(key, device="cpu")
        data = training.build_data(key["dataset_fn"], Dataset.config(key), key["seed"])
        task = key["model_fn"] in TASK_MODELS
        if task:
            latents = dynamics.run_task_model(model, {"validation": data.loaders["validation"]})["validation"]["latents"]
        else:
            latents = _inferred(model, data)["valid_latents"]
        states = latents.reshape(-1, latents.shape[-1])
        rng = np.random.default_rng(0)
        initial = states[rng.choice(len(states), min(settings["n_initial"], len(states)), replace=False)]
        n_in = data.info.input_shape[-1]
        found = fp.find_fixed_points(model.step, initial, np.zeros(n_in), lr=settings["lr"],
                                     n_iters=settings["n_iters"], q_threshold=settings["q_threshold"])
        conv = np.flatnonzero(found["converged"])
        keep = conv[fp.unique_points(found["points"][conv], settings["unique_radius"])]
        points = found["points"][keep]
        eig = fp.jacobian_eigenvalues(model.step, points, np.zeros(n_in)) if len(points) else np.zeros((0, 1))
        stable = fp.classify(eig) if len(points) else np.zeros(0, bool)
        patterns = [""] * len(points)
        if task and data.info.extra.get("task") == "nbff" and len(points):
            with torch.no_grad():
                out = model.readout(torch.as_tensor(points, dtype=torch.float32)).numpy()
            patterns = ["".join(str(int(b)) for b in row) for row in out > 0.5]
        return [found["q"][keep], points, stable, np.abs(eig).max(-1) if len(points) else np.zeros(0), patterns,
                int(len(conv)), task and data.info.extra.get("task") == "nbff", time.perf_counter() - started]

    def make_insert(self, key, q, points, stable, radius, patterns, n_converged, nbff, seconds):
        stable_patterns = {p for p, s in zip(patterns, stable) if s}
        self.insert1({**key, "n_converged": n_converged, "n_unique": len(points), "n_stable": int(stable.sum()),
                      "n_patterns": len(stable_patterns) if nbff else None, "seconds": seconds})
        self.Point.insert([{**key, "point_id": i, "q": float(q[i]), "stable": bool(stable[i]),
                            "max_abs_eig": float(radius[i]), "state": points[i].tolist(), "pattern": patterns[i]}
                           for i in range(len(points))])


@schema
class DSASettings(dj.Lookup):
    """One way of running DSA (`DSA.DSA`): delay embedding, DMD rank, Procrustes optimisation."""

    definition = """
    dsa_settings: varchar(32)          # name
    ---
    n_delays: int32                    # delays of the Hankel embedding (time steps)
    rank: int32                        # rank of the reduced-rank DMD (at most n_delays x latents)
    n_iters: int32                     # Adam iterations of the Procrustes fit over vector fields
    lr: float64                        # their learning rate
    n_trials: int32                    # validation trials compared (at most)
    """
    contents = [
        # CtD's comparison: 20 delays, rank 50, DSA's optimiser defaults.
        {"dsa_settings": "ctd", "n_delays": 20, "rank": 50, "n_iters": 1500, "lr": 5e-3, "n_trials": 20},
        {"dsa_settings": "quick", "n_delays": 5, "rank": 10, "n_iters": 200, "lr": 1e-2, "n_trials": 10},
    ]


@schema
class DSAScore(dj.Computed):
    """Dynamical Similarity Analysis (Ostrow et al. 2023) between a data-trained model and its task model.

    Needs the optional ``dsa-metric`` package (imported as ``DSA`` only here). The ``angular``
    score as CtD uses it (lower: more similar), on the first validation trials; the optimiser is
    seeded, so a row is reproducible.
    """

    definition = """
    -> DynamicsComparison
    -> DSASettings
    ---
    dsa_angular: float64               # angular Procrustes distance between the DMD operators (rad)
    n_trials: int32                    # validation trials used
    seconds: float64                   # wall time of the fit (s)
    """

    def make_fetch(self, key):
        return [(DSASettings & key).fetch1()]

    def make_compute(self, key, settings):
        import time

        import torch

        from neurofit.pipelines import training

        try:
            import DSA  # noqa: N811 (the package's own name)
        except ImportError as error:
            raise ImportError("DSAScore needs the optional package dsa-metric: pip install dsa-metric") from error
        truth = _truth(key)
        data = training.build_data(key["dataset_fn"], Dataset.config(key), key["seed"])
        inferred = _inferred(load_model(key, device="cpu"), data)
        n = min(settings["n_trials"], len(truth["valid_latents"]))
        x, y = truth["valid_latents"][:n], inferred["valid_latents"][:n]  # (n, T, latents)
        rank = min(settings["rank"], settings["n_delays"] * min(x.shape[-1], y.shape[-1]))
        started = time.perf_counter()
        torch.manual_seed(0)  # DSA's Procrustes fit starts from a random rotation
        model = DSA.DSA(x, y, n_delays=settings["n_delays"], delay_interval=1, rank=rank, score_method="angular",
                        iters=settings["n_iters"], lr=settings["lr"], verbose=False, device="cpu")
        score = float(np.asarray(model.fit_score()).ravel()[0])
        return [score, n, time.perf_counter() - started]

    def make_insert(self, key, score, n, seconds):
        self.insert1({**key, "dsa_angular": score, "n_trials": n, "seconds": seconds})


def comparison_frame(restriction=None, *, dsa_settings: str = "ctd"):
    """One row per task model x data-trained model: metrics, the data model's config and fixed points.

    Returns:
        pandas DataFrame with the task model (``task_model_fn``, ``task_model_hash``, ``task_seed``,
        ``sim_hash``), the data model (``model_fn``, ``model_hash``, ``seed``, ``latent_size``
        where its config has one), every `DynamicsComparison` score and ``dsa_angular`` (NaN
        where not computed with ``dsa_settings``).
    """
    import pandas as pd

    from .config import Model

    rows = (DynamicsComparison & (restriction or {})).to_dicts()
    scored = (DSAScore & {"dsa_settings": dsa_settings}).to_dicts()
    dsa = {tuple(r[k] for k in _TASK_KEY): r["dsa_angular"] for r in scored}
    for row in rows:
        config = Model.config(row)
        row["latent_size"] = config.get("latent_size", config.get("generator"))
        row["dsa_angular"] = dsa.get(tuple(row[k] for k in _TASK_KEY), np.nan)
    columns = ["task_model_fn", "task_model_hash", "task_seed", "sim_hash", "model_fn", "model_hash", "seed",
               "latent_size", "rate_r2", "state_r2", "state_r2_reverse", "cycle_consistency", "co_bps", "co_bps_ctd",
               "dsa_angular"]
    return pd.DataFrame(rows, columns=columns)

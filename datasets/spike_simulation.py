"""Simulated spiking from the latents of a task-trained network (CtD's ``NeuralDataSimulator``).

Pure numpy. Each neuron reads one latent unit, chosen by stacked random permutations of the
latent units (so every unit is used before any is used twice); the chosen activity is z-scored
with ONE global mean and s.d. (not per neuron), divided by ``fr_scaling`` (higher: lower and less
modulated rates), passed through exp (CtD) or softplus, and sampled as Poisson counts, or
over-dispersed counts (gamma-Poisson, i.e. negative binomial with variance λ + λ²/dispersion).
The first ``n_heldin`` neurons are held in (seen by data-trained encoders), the last
``n_heldout`` held out (scored by co-bps).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["ctd_arrays", "embed_latents", "simulate_spikes"]


def embed_latents(n_latents: int, n_neurons: int, rng: np.random.Generator) -> np.ndarray:
    """Latent unit read by each neuron: (n_neurons,) int64, stacked permutations of the units."""
    n_stacks = -(-n_neurons // n_latents)
    return np.concatenate([rng.permutation(n_latents) for _ in range(n_stacks)])[:n_neurons].astype(np.int64)


def simulate_spikes(latents: np.ndarray, *, n_heldin: int = 50, n_heldout: int = 10, fr_scaling: float = 2.0,
                    nonlinearity: Literal["exp", "softplus"] = "exp",
                    noise: Literal["poisson", "overdispersed"] = "poisson", dispersion: float = 5.0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Rates and spikes of ``n_heldin + n_heldout`` neurons driven by ``latents``.

    Args:
        latents: (n_trials, T, n_latents) float activity of the task-trained network.
        n_heldin, n_heldout: neuron counts (held-in first).
        fr_scaling: the z-scored activity is divided by this (CtD: 2, 4 for RandomTarget).
        nonlinearity: "exp" or "softplus" from scaled activity to rate (spikes per bin).
        noise: "poisson" or "overdispersed" (gamma-Poisson with shape ``dispersion``).
        dispersion: shape of the gamma mixing distribution (larger: closer to Poisson).
        seed: seed of the embedding and of the spikes.

    Returns:
        ``spikes`` (n_trials, T, N) float64 counts, ``rates`` (n_trials, T, N) expected counts,
        ``perm_neurons`` (N,) latent unit of each neuron, ``readout`` (n_latents, N) one-hot
        embedding matrix, ``orig_mean`` and ``orig_std`` (1, 1, 1) the global statistics.

    Raises:
        ValueError: bad shapes or settings, or latents without variance.
    """
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 3 or not np.isfinite(latents).all():
        raise ValueError(f"latents must be finite with shape (n_trials, T, n_latents), got {latents.shape}")
    if n_heldin < 1 or n_heldout < 0 or fr_scaling <= 0 or dispersion <= 0:
        raise ValueError("need n_heldin >= 1, n_heldout >= 0, fr_scaling > 0 and dispersion > 0")
    if nonlinearity not in ("exp", "softplus") or noise not in ("poisson", "overdispersed"):
        raise ValueError(f"nonlinearity {nonlinearity!r} / noise {noise!r}: use exp|softplus and poisson|overdispersed")
    rng = np.random.default_rng(seed)
    n_neurons = n_heldin + n_heldout
    perm = embed_latents(latents.shape[-1], n_neurons, rng)
    activity = latents[..., perm]
    mean, std = activity.mean(keepdims=True), activity.std(keepdims=True)
    if not std.item() > 0:
        raise ValueError("the latents are constant: there is nothing to embed")
    scaled = (activity - mean) / (fr_scaling * std)
    rates = np.exp(scaled) if nonlinearity == "exp" else np.logaddexp(0.0, scaled)
    lam = rates if noise == "poisson" else rng.gamma(dispersion, rates / dispersion)
    readout = np.zeros((latents.shape[-1], n_neurons))
    readout[perm, np.arange(n_neurons)] = 1.0
    return {"spikes": rng.poisson(lam).astype(np.float64), "rates": rates, "perm_neurons": perm,
            "readout": readout, "orig_mean": mean, "orig_std": std}


def ctd_arrays(task_run: dict[str, dict[str, np.ndarray]], simulated: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CtD h5 arrays (`neurofit.datasets.ctd_files`) from a task model's run and its simulated spikes.

    Args:
        task_run: ``{"train": {...}, "validation": {...}}`` with ``inputs`` and ``latents``
            (n, T, ...), as `neurofit.pipelines.analysis.dynamics.run_task_model` returns.
        simulated: `simulate_spikes` of the train trials followed by the validation trials, plus
            ``n_heldin`` (int).

    Returns:
        Every key of the CtD layout; the encoder data hold the held-in neurons only.
    """
    n_train = len(task_run["train"]["latents"])
    n_valid = len(task_run["validation"]["latents"])
    n_heldin = int(simulated["n_heldin"])
    arrays: dict[str, np.ndarray] = {}
    for split, tier, rows in (("train", "train", slice(0, n_train)),
                              ("valid", "validation", slice(n_train, n_train + n_valid))):
        arrays[f"{split}_encod_data"] = simulated["spikes"][rows, :, :n_heldin]
        arrays[f"{split}_recon_data"] = simulated["spikes"][rows]
        arrays[f"{split}_activity"] = simulated["rates"][rows]
        arrays[f"{split}_inputs"] = task_run[tier]["inputs"]
        arrays[f"{split}_latents"] = task_run[tier]["latents"]
        arrays[f"{split}_extra"] = np.zeros((rows.stop - rows.start, 1))
        arrays[f"{split}_inds"] = np.arange(rows.start, rows.stop)
    for name in ("readout", "orig_mean", "orig_std", "perm_neurons"):
        arrays[name] = simulated[name]
    return arrays

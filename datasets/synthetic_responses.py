"""Synthetic neural responses with known ground truth: a Poisson linear-nonlinear population.

Every session has its own neurons and its own images. Each neuron has a localized Gabor filter;
its expected spike count for an image is ``gain * exp(slope * z)``, where ``z`` is the filter's
drive (filter . image), standardized over the session's images. A fraction of neurons can be
"complex" (drive = energy of a quadrature Gabor pair), which a linear model cannot capture but a
CNN can. Observed responses are Poisson draws of the expected counts.

Train and validation images are shown once; every test image is shown ``n_repeats`` times
(repeats share a ``stimulus_id``), so the test tier supports noise-ceiling estimates. Because the
true rates are known, the ceiling a perfect model would reach on this very noise draw is stored in
``DataInfo.ceiling``, and the ground truth (filters, gains, slopes, ...) in ``DataBundle.artefacts``.

Two seeds, two roles:
    * ``ground_truth_seed`` fixes the neurons, the images and the Poisson draws, so trainings with
      different seeds see exactly the same data.
    * ``seed`` only changes the order in which the train loaders shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ._correlation import pearson_columns
from .info import TIERS, DataBundle, DataInfo

__all__ = [
    "SyntheticTier",
    "SyntheticSession",
    "simulate_sessions",
    "ground_truth_ceiling",
    "ground_truth_artefacts",
    "build_synthetic_responses",
    "session_name",
]


@dataclass(frozen=True)
class SyntheticTier:
    """Trial-level arrays of one tier of one session.

    Attributes:
        images: stimuli, shape (n_trials, 1, image_size, image_size), float32, z-scored per image.
            Repeats of a test image are identical copies.
        rates: true expected spike counts, shape (n_trials, n_neurons), float64.
        counts: observed spike counts (Poisson draws of ``rates``), shape (n_trials, n_neurons),
            float32.
        stimulus_id: image label per trial, shape (n_trials,), int64; unique per image within a
            session (train, validation and test ids do not overlap), shared by repeats.
    """

    images: np.ndarray
    rates: np.ndarray
    counts: np.ndarray
    stimulus_id: np.ndarray


@dataclass(frozen=True)
class SyntheticSession:
    """Ground truth and data of one session.

    Attributes:
        tiers: ``{tier: SyntheticTier}`` for every tier in ``TIERS``.
        filters: Gabor filters, shape (n_neurons, 2, image_size, image_size), float64, unit L2
            norm; index 1 is the quadrature partner, used only by complex neurons.
        is_complex: whether each neuron is an energy (complex) cell, shape (n_neurons,), bool.
        centers: receptive-field centres in pixels (row, column), shape (n_neurons, 2), float64.
        gain: multiplicative gain per neuron, shape (n_neurons,), float64.
        slope: slope of the exponential nonlinearity per neuron, shape (n_neurons,), float64.
    """

    tiers: dict[str, SyntheticTier]
    filters: np.ndarray
    is_complex: np.ndarray
    centers: np.ndarray
    gain: np.ndarray
    slope: np.ndarray


def session_name(index: int) -> str:
    """Name of the ``index``-th synthetic session (no dots: names become ModuleDict keys)."""
    return f"session_{index}"


def _smooth_images(rng: np.random.Generator, n: int, size: int, smoothness: float) -> np.ndarray:
    """White noise low-pass filtered in the Fourier domain, then z-scored per image.

    Returns:
        Images, shape (n, size, size), float64.
    """
    noise = rng.standard_normal((n, size, size))
    freq = np.fft.fftfreq(size)
    f2 = freq[:, None] ** 2 + freq[None, :] ** 2
    # Fourier transform of a spatial Gaussian with sd `smoothness` pixels (periodic boundary).
    transfer = np.exp(-2.0 * np.pi**2 * smoothness**2 * f2)
    images = np.fft.ifft2(np.fft.fft2(noise) * transfer).real
    images -= images.mean(axis=(1, 2), keepdims=True)
    images /= images.std(axis=(1, 2), keepdims=True)
    return images


def _gabor_pairs(
    rng: np.random.Generator, n: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random localized Gabor quadrature pairs.

    Returns:
        filters, shape (n, 2, size, size), unit L2 norm each; centres (row, col), shape (n, 2).
    """
    # Centres stay in the middle half so that receptive fields are not cut by the image border.
    centers = rng.uniform(0.3 * size, 0.7 * size, size=(n, 2))
    theta = rng.uniform(0.0, np.pi, size=n)
    wavelength = rng.uniform(4.0, 8.0, size=n)
    sigma = rng.uniform(0.3, 0.45, size=n) * wavelength
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    dy = rows[None] - centers[:, 0, None, None]
    dx = cols[None] - centers[:, 1, None, None]
    along = dx * np.cos(theta)[:, None, None] + dy * np.sin(theta)[:, None, None]
    envelope = np.exp(-(dx**2 + dy**2) / (2.0 * sigma[:, None, None] ** 2))
    carrier = 2.0 * np.pi * along / wavelength[:, None, None] + phase[:, None, None]
    filters = np.stack([envelope * np.cos(carrier), envelope * np.sin(carrier)], axis=1)
    filters /= np.linalg.norm(filters.reshape(n, 2, -1), axis=-1)[..., None, None]
    return filters, centers


def simulate_sessions(
    ground_truth_seed: int = 0,
    *,
    n_sessions: int = 1,
    n_neurons: int = 60,
    image_size: int = 32,
    n_train_images: int = 1000,
    n_validation_images: int = 200,
    n_test_images: int = 50,
    n_repeats: int = 10,
    mean_rate: float = 2.0,
    complex_fraction: float = 0.0,
    image_smoothness: float = 1.0,
) -> dict[str, SyntheticSession]:
    """Simulates the ground-truth population and its responses (pure, deterministic).

    Session ``i`` draws from its own stream ``np.random.default_rng([ground_truth_seed, i])``, so
    adding sessions does not change the earlier ones.

    Args:
        ground_truth_seed: fixes neurons, images and Poisson draws.
        n_sessions: number of sessions; each has ``n_neurons`` different neurons and its own images.
        n_neurons: neurons per session.
        image_size: images are (1, image_size, image_size).
        n_train_images: train images, shown once each.
        n_validation_images: validation images, shown once each.
        n_test_images: test images, each shown ``n_repeats`` times.
        n_repeats: presentations of each test image.
        mean_rate: population median of the per-neuron mean expected count per presentation.
        complex_fraction: fraction of neurons that are energy (complex) cells.
        image_smoothness: sd, in pixels, of the Gaussian low-pass filter applied to white noise.

    Returns:
        ``{session_name: SyntheticSession}``, sessions in order.

    Raises:
        ValueError: on non-positive sizes or a fraction outside [0, 1].
    """
    for name, value in {
        "n_sessions": n_sessions,
        "n_neurons": n_neurons,
        "image_size": image_size,
        "n_train_images": n_train_images,
        "n_validation_images": n_validation_images,
        "n_test_images": n_test_images,
        "n_repeats": n_repeats,
    }.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_train_images < 2 or n_validation_images < 2 or n_test_images < 2:
        raise ValueError("every tier needs at least 2 images for correlations to be defined")
    if not 0.0 <= complex_fraction <= 1.0:
        raise ValueError(f"complex_fraction must lie in [0, 1], got {complex_fraction!r}")
    if mean_rate <= 0 or image_smoothness < 0:
        raise ValueError("mean_rate must be positive and image_smoothness non-negative")

    sessions = {}
    n_images = {"train": n_train_images, "validation": n_validation_images, "test": n_test_images}
    for index in range(n_sessions):
        rng = np.random.default_rng([ground_truth_seed, index])
        filters, centers = _gabor_pairs(rng, n_neurons, image_size)
        is_complex = rng.random(n_neurons) < complex_fraction
        slope = rng.uniform(0.5, 1.0, size=n_neurons)
        # E[exp(slope * z)] = exp(slope**2 / 2) for standard normal z, so this gain makes each
        # neuron's mean expected count close to its target rate.
        target = mean_rate * np.exp(0.3 * rng.standard_normal(n_neurons))
        gain = target * np.exp(-(slope**2) / 2.0)

        tier_images = {
            t: _smooth_images(rng, n, image_size, image_smoothness) for t, n in n_images.items()
        }
        all_images = np.concatenate([tier_images[t] for t in TIERS])
        flat = filters.reshape(n_neurons, 2, -1)
        projections = np.einsum("ip,nkp->ink", all_images.reshape(len(all_images), -1), flat)
        drive = np.where(
            is_complex,
            np.sqrt((projections**2).sum(axis=-1)),
            projections[..., 0],
        )
        # Standardizing over all of the session's images makes the slope, not the filter's
        # match to the image spectrum, set each neuron's dynamic range.
        drive = (drive - drive.mean(axis=0)) / drive.std(axis=0)
        all_rates = gain * np.exp(slope * drive)

        tiers = {}
        first = 0
        for tier in TIERS:
            n = n_images[tier]
            repeats = n_repeats if tier == "test" else 1
            image_index = np.repeat(np.arange(n), repeats)
            rates = all_rates[first : first + n][image_index]
            counts = rng.poisson(rates).astype(np.float32)
            tiers[tier] = SyntheticTier(
                images=tier_images[tier][image_index][:, None].astype(np.float32),
                rates=rates,
                counts=counts,
                stimulus_id=(first + image_index).astype(np.int64),
            )
            first += n
        sessions[session_name(index)] = SyntheticSession(
            tiers=tiers,
            filters=filters,
            is_complex=is_complex,
            centers=centers,
            gain=gain,
            slope=slope,
        )
    return sessions


def ground_truth_ceiling(tier: SyntheticTier) -> dict[str, list[float]]:
    """Per-neuron scores of the perfect model (the true rates) on one tier's noise draw.

    Args:
        tier: usually the test tier, whose repeats make ``correlation_to_average`` meaningful.

    Returns:
        ``{"single_trial_correlation": [...], "correlation_to_average": [...]}``, one float per
        neuron: Pearson r of the true rate with the single-trial counts, and with the counts
        averaged over the repeats of each stimulus (across stimuli).
    """
    ids, inverse = np.unique(tier.stimulus_id, return_inverse=True)
    n_per_id = np.bincount(inverse, minlength=len(ids)).astype(float)[:, None]
    mean_counts = np.zeros((len(ids), tier.counts.shape[1]))
    np.add.at(mean_counts, inverse, tier.counts.astype(np.float64))
    mean_counts /= n_per_id
    mean_rates = np.zeros_like(mean_counts)
    np.add.at(mean_rates, inverse, tier.rates)
    mean_rates /= n_per_id
    return {
        "single_trial_correlation": pearson_columns(tier.rates, tier.counts).tolist(),
        "correlation_to_average": pearson_columns(mean_rates, mean_counts).tolist(),
    }


class _TrialDataset(Dataset):
    """One session's tier as a map-style dataset of batch-format dicts (see ``DataBundle``)."""

    def __init__(self, tier: SyntheticTier):
        self.inputs = torch.from_numpy(np.ascontiguousarray(tier.images))
        self.responses = torch.from_numpy(np.ascontiguousarray(tier.counts))
        self.stimulus_id = torch.from_numpy(np.ascontiguousarray(tier.stimulus_id))

    def __len__(self) -> int:
        return len(self.stimulus_id)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "inputs": self.inputs[index],
            "responses": self.responses[index],
            "stimulus_id": self.stimulus_id[index],
        }


class _ReshuffleSampler(Sampler[int]):
    """A new random order on every pass, reproducible without hidden per-loader state.

    The order of a pass depends on the dataset ``seed`` and one draw from torch's global RNG.
    A loader's own ``torch.Generator`` would instead advance across passes, so a second training
    on the same bundle would see other orders than the first even with the same training seed;
    here the trainer's ``set_seed`` resets the orders, and the dataset seed still changes them.
    """

    def __init__(self, n: int, seed: int, stream: int):
        self.n = n
        self.seed = seed
        self.stream = stream

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        draw = int(torch.randint(0, 2**31 - 1, (1,)).item())
        rng = np.random.default_rng([self.seed, self.stream, draw])
        return iter(rng.permutation(self.n).tolist())


def build_synthetic_responses(
    seed: int,
    *,
    n_sessions: int = 1,
    n_neurons: int = 60,
    image_size: int = 32,
    n_train_images: int = 1000,
    n_validation_images: int = 200,
    n_test_images: int = 50,
    n_repeats: int = 10,
    mean_rate: float = 2.0,
    complex_fraction: float = 0.0,
    image_smoothness: float = 1.0,
    batch_size: int = 64,
    ground_truth_seed: int = 0,
) -> DataBundle:
    """Builds loaders over a simulated Poisson LN population (see the module docstring).

    Args:
        seed: non-negative; changes only the shuffling of the train loaders.
        n_sessions: sessions, named ``session_0``, ``session_1``, ...
        n_neurons: neurons per session.
        image_size: inputs are (batch, 1, image_size, image_size).
        n_train_images: train trials per session (each image shown once).
        n_validation_images: validation trials per session (each image shown once).
        n_test_images: distinct test images per session; the test tier has
            ``n_test_images * n_repeats`` trials.
        n_repeats: presentations of each test image.
        mean_rate: typical mean expected spike count per presentation.
        complex_fraction: fraction of energy-model (complex) neurons.
        image_smoothness: sd in pixels of the low-pass filter that makes the images smooth.
        batch_size: batch size of every loader.
        ground_truth_seed: fixes the neurons, the images and the noise.

    Returns:
        A `DataBundle`. Batches hold ``inputs`` (batch, 1, image_size, image_size) float32,
        ``responses`` (batch, n_neurons) float32 spike counts and ``stimulus_id`` (batch,) int64.
        Only train loaders shuffle. ``info.mean_response`` is the train mean per neuron and
        ``info.ceiling`` the perfect model's test scores averaged over all neurons of all
        sessions (``single_trial_correlation``, ``correlation_to_average``). The artefacts
        (fixed by the config, whatever ``seed``) are the ground truth: see `ground_truth_artefacts`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed!r}")
    settings = dict(
        n_sessions=n_sessions,
        n_neurons=n_neurons,
        image_size=image_size,
        n_train_images=n_train_images,
        n_validation_images=n_validation_images,
        n_test_images=n_test_images,
        n_repeats=n_repeats,
        mean_rate=mean_rate,
        complex_fraction=complex_fraction,
        image_smoothness=image_smoothness,
    )
    sessions = simulate_sessions(ground_truth_seed, **settings)

    loaders: dict[str, dict[str, DataLoader]] = {tier: {} for tier in TIERS}
    mean_response = {}
    ceiling_by_session = {}
    per_neuron = []
    for index, (name, session) in enumerate(sessions.items()):
        for tier in TIERS:
            dataset = _TrialDataset(session.tiers[tier])
            # The session index as a stream gives sessions distinct orders under one seed.
            sampler = _ReshuffleSampler(len(dataset), seed, index) if tier == "train" else None
            loaders[tier][name] = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
        mean_response[name] = session.tiers["train"].counts.mean(axis=0, dtype=np.float64).tolist()
        per_neuron.append(ground_truth_ceiling(session.tiers["test"]))
        ceiling_by_session[name] = {k: float(np.mean(v)) for k, v in per_neuron[-1].items()}

    ceiling = {
        key: float(np.mean(np.concatenate([p[key] for p in per_neuron])))
        for key in ("single_trial_correlation", "correlation_to_average")
    }
    info = DataInfo(
        input_shape=(1, image_size, image_size),
        n_neurons={name: n_neurons for name in sessions},
        input_unit="luminance, z-scored per image",
        response_unit="spike count per presentation",
        modality="image",
        input_axes=("channel", "height", "width"),
        mean_response=mean_response,
        ceiling=ceiling,
    )
    artefacts = ground_truth_artefacts(sessions, {"ground_truth_seed": ground_truth_seed, **settings})
    artefacts["ceiling_by_session"] = ceiling_by_session
    return DataBundle(loaders=loaders, info=info, artefacts=artefacts)


def ground_truth_artefacts(sessions: dict[str, SyntheticSession], settings: dict) -> dict:
    """The simulation's ground truth as dataset artefacts (`neurofit.datasets.artefacts`).

    Args:
        sessions: the output of `simulate_sessions`.
        settings: its arguments (``ground_truth_seed`` included).

    Returns:
        ``ground_truth``: ``{"model": "poisson_ln_gabor", **settings, "sessions": {session:
        {"centers", "gain", "slope", "is_complex"}}}`` (per-neuron lists, centres as (row,
        column) pixels); ``<session>.filters``: the Gabor filters, (n_neurons, 2, size, size)
        float64 (index 1 is the quadrature partner of complex cells). The builder adds
        ``ceiling_by_session`` (``{session: {score: mean over neurons}}``).
    """
    out: dict = {
        "ground_truth": {
            "model": "poisson_ln_gabor",
            **settings,
            "sessions": {
                name: {
                    "centers": session.centers.tolist(),
                    "gain": session.gain.tolist(),
                    "slope": session.slope.tolist(),
                    "is_complex": session.is_complex.tolist(),
                }
                for name, session in sessions.items()
            },
        }
    }
    for name, session in sessions.items():
        out[f"{name}.filters"] = session.filters
    return out

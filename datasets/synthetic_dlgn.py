"""Synthetic dLGN recordings of movie responses with known ground truth.

A Poisson linear-nonlinear population in the dorsal lateral geniculate nucleus (dLGN) of a
mouse watching movie clips while running, moving its eyes and having cortical feedback
silenced (or not) by an optogenetic laser. The output is the "dict of arrays" trial format:
one trial is one presentation of one clip to one recording session.

Ground truth of neuron ``n`` at frame ``t`` of a trial (all vectorised over neurons and frames):

* Receptive-field position: ``c_n(t) = rf_center_n + pupil_shift_gain * pupil_center(t)``
  (pixels, (x, y) = (column, row)); the eye moving moves every receptive field with it.
* Spatial drive: ``s_n(t) = on_off_n * sum_xy DoG_n(x, y; c_n(t)) * video(t, y, x)`` with
  ``DoG = N(c, center_sigma^2 I) - surround_weight * N(c, surround_sigma^2 I)``
  (normalised 2-D Gaussians, so ``surround_weight`` is the surround's share of the centre's
  integral); ``on_off = +1`` (ON cell) or ``-1`` (OFF cell).
* Temporal filter (causal, biphasic): ``d_n(t) = sum_{lag=0}^{K-1} k_n(lag) * s_n(t - lag)``
  with frames before the clip start being mean grey (0); ``k_n`` is a fast positive gamma lobe
  minus a slower, weaker one, unit L2 norm, ``K = temporal_kernel_length``.
* Rate: ``r_n(t) = rate_scale_n * softplus(slope_n * drive_scale_n * d_n(t) + offset_n)
  * (1 + running_gain_n * (1 - exp(-running_speed(t) / running_saturation)))
  * (1 + (optogenetic_gain_n - 1) * optogenetic_signal(t))``.
  ``drive_scale_n`` makes the drive unit-variance on calibration movies and ``rate_scale_n``
  makes the stationary, laser-off mean rate of neuron ``n`` about ``mean_rate * exp(0.3 z_n)``
  (exact for a Gaussian drive), ``z_n ~ N(0, 1)``.
  Unmodulated neurons have ``optogenetic_gain_n = 1``.
* Observed responses: ``Poisson(r_n(t))`` spike counts per frame bin.

Movies are drifting 1/f-amplitude noise with Gaussian temporal correlation (natural-movie-like,
z-scored per clip, float32, shape (T, H, W)). Behaviour is continuous over a session and cut into
trials (1 s grey inter-trial interval): running speed in cm/s comes in smooth bouts (exactly 0
when still), pupil dilation (relative area, a.u.) follows running with a lag plus slow noise,
and the pupil centre (a.u., sd about 1) wanders smoothly. Pupil dilation has no direct effect on
the rates; it is only correlated with running.

Every session records its own ``n_neurons`` neurons, all watching the same clip pool: each train
and validation clip once (lengths uniform in ``clip_length``), each test clip (all of maximal
length) ``n_test_repeats`` times, half of those repeats with the laser on. Train and validation
trials get the laser with probability ``laser_probability``, for the whole trial.

Two seeds, two roles (unlike ``synthetic_responses``, whose ``ground_truth_seed`` also fixes
the stimuli and the noise, here the data varies with ``seed``):
    * ``ground_truth_seed`` fixes the neurons (receptive fields, kernels, nonlinearities,
      running and optogenetic gains): session ``i`` draws them from
      ``np.random.default_rng([ground_truth_seed, i])``, so adding sessions does not change the
      earlier ones.
    * ``seed`` fixes the clips (``default_rng([seed, 0])``), and per session ``i`` the trial
      order, the laser, the behaviour and the spikes (``default_rng([seed, 1, i])``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ._correlation import pearson_columns

__all__ = [
    "BEHAVIOR_NAMES",
    "DLGNPopulation",
    "SyntheticDLGN",
    "make_population",
    "movie_clip",
    "receptive_field_drive",
    "running_factor",
    "session_name",
    "simulate_dlgn",
    "spatial_receptive_fields",
    "true_rate",
]

BEHAVIOR_NAMES = ("running_speed", "pupil_dilation")

# Calibration movies (drawn from the ground-truth stream) that fix each neuron's drive scale.
_CALIBRATION_CLIPS = 8
_CALIBRATION_LENGTH = 96
# Running speed in cm/s per unit of the latent running variable, and its threshold.
_RUNNING_SCALE = 15.0
_RUNNING_THRESHOLD = 0.25


def session_name(index: int) -> str:
    """Name of the ``index``-th synthetic session (no dots: names become ModuleDict keys)."""
    return f"session_{index}"


@dataclass(frozen=True)
class DLGNPopulation:
    """Ground-truth parameters of one session's neurons (all arrays have length n_neurons).

    Attributes:
        rf_center: receptive-field centres at pupil position (0, 0), pixels (x=column, y=row),
            shape (n, 2), float64.
        center_sigma: sd of the centre Gaussian in pixels, shape (n,).
        surround_sigma: sd of the surround Gaussian in pixels, shape (n,).
        surround_weight: integral of the surround relative to the centre, shape (n,), in (0, 1).
        on_off: +1 for ON, -1 for OFF cells, shape (n,), int64.
        temporal_kernel: weight of the frame ``lag`` frames ago (index 0 = current frame),
            shape (n, K), unit L2 norm per neuron.
        drive_scale: 1 / sd of the filtered drive on calibration movies, shape (n,).
        slope: softplus input gain, shape (n,).
        offset: softplus input offset, shape (n,).
        rate_scale: softplus output gain (expected count per frame bin), shape (n,).
        running_gain: rate gain at saturating running speed minus 1, shape (n,), > -1.
        optogenetic_gain: rate factor with the laser fully on, shape (n,); 1 if unmodulated.
        modulated: whether the laser changes the neuron's rate, shape (n,), bool.
        pupil_shift_gain: receptive-field shift in pixels per unit of pupil displacement.
        running_saturation: running speed (cm/s) at which the running gain reaches 63 %.
    """

    rf_center: np.ndarray
    center_sigma: np.ndarray
    surround_sigma: np.ndarray
    surround_weight: np.ndarray
    on_off: np.ndarray
    temporal_kernel: np.ndarray
    drive_scale: np.ndarray
    slope: np.ndarray
    offset: np.ndarray
    rate_scale: np.ndarray
    running_gain: np.ndarray
    optogenetic_gain: np.ndarray
    modulated: np.ndarray
    pupil_shift_gain: float
    running_saturation: float

    @property
    def n_neurons(self) -> int:
        return len(self.on_off)

    def to_json(self) -> dict:
        """JSON-able ground truth (lists, floats, ints, bools) of this population."""
        return {
            "optogenetic_gain": self.optogenetic_gain.tolist(),
            "modulated": self.modulated.tolist(),
            "rf_center": self.rf_center.tolist(),
            "on_off": self.on_off.tolist(),
            "running_gain": self.running_gain.tolist(),
            "pupil_shift_gain": float(self.pupil_shift_gain),
            "running_saturation": float(self.running_saturation),
            "center_sigma": self.center_sigma.tolist(),
            "surround_sigma": self.surround_sigma.tolist(),
            "surround_weight": self.surround_weight.tolist(),
            "temporal_kernel": self.temporal_kernel.tolist(),
            "drive_scale": self.drive_scale.tolist(),
            "slope": self.slope.tolist(),
            "offset": self.offset.tolist(),
            "rate_scale": self.rate_scale.tolist(),
        }


@dataclass
class SyntheticDLGN:
    """A simulated dLGN data set and its ground truth.

    Attributes:
        trials: the dict-of-arrays trial format: ``session``, ``tier``, ``clip_id`` (lists of
            str/str/int) and per trial ``videos`` (T_i, H, W) float32 z-scored luminance,
            ``responses`` (T_i, n) float32 spike counts, ``behavior`` (T_i, 2) float32
            (running speed cm/s, pupil dilation a.u.), ``pupil_center`` (T_i, 2) float32 (x, y),
            ``optogenetic_signal`` (T_i,) float32 in {0, 1}.
        neurons: ``{session: {"unit_id": (n,) int64, "depth_um": (n,) float64}}``.
        frame_rate: frames per second.
        behavior_names: ``["running_speed", "pupil_dilation"]``.
        rates: true expected count per frame bin of every trial, (T_i, n) float64, aligned
            with ``trials``.
        ground_truth: JSON-able; ``sessions`` ({session: `DLGNPopulation.to_json()`}),
            ``ceiling`` ({session: mean over neurons of Pearson r(true rate, counts) over all
            test-trial frames}), ``ceiling_per_neuron`` ({session: [r per neuron]}),
            ``settings`` (the simulation arguments), ``seed``, ``ground_truth_seed``, ``model``.
        populations: ``{session: DLGNPopulation}``, the same ground truth as arrays, for
            ``true_rate`` and the other pure helpers.
    """

    trials: dict[str, list]
    neurons: dict[str, dict[str, np.ndarray]]
    frame_rate: float
    behavior_names: list[str]
    rates: list[np.ndarray]
    ground_truth: dict
    populations: dict[str, DLGNPopulation] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Stimuli and behaviour
# ----------------------------------------------------------------------------------------------


def movie_clip(
    rng: np.random.Generator,
    length: int,
    frame_size: tuple[int, int],
    *,
    temporal_correlation: float = 2.0,
    drift_speed: float = 0.3,
) -> np.ndarray:
    """One natural-movie-like clip: drifting 1/f noise, z-scored over the clip.

    The spatial amplitude spectrum falls as 1/f (as in natural images); the whole pattern
    drifts with a random velocity (sd ``drift_speed`` px/frame per axis) and changes besides
    the drift with a Gaussian temporal correlation of sd ``temporal_correlation`` frames.
    The noise is generated on a padded grid and cropped, so the clip does not wrap around.

    Args:
        rng: source of randomness.
        length: number of frames T.
        frame_size: (H, W) in pixels.
        temporal_correlation: frames; larger is smoother in time.
        drift_speed: pixels per frame.

    Returns:
        Video, shape (T, H, W), float32, mean 0 and sd 1 over the clip.
    """
    height, width = frame_size
    pad_t = 2 * int(math.ceil(3 * temporal_correlation)) + 8
    pad_s = 4
    shape = (length + 2 * pad_t, height + 2 * pad_s, width + 2 * pad_s)
    velocity = rng.normal(0.0, drift_speed, size=2)  # (vx, vy)
    noise = rng.standard_normal(shape)
    ft = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    # 1/f amplitude with a cutoff at the frame size, so the mean luminance does not dominate.
    spatial = 1.0 / (np.sqrt(fx**2 + fy**2) + 1.0 / max(height, width))
    # A pattern drifting with velocity v has its energy on the plane ft = -(fx vx + fy vy);
    # the Gaussian around that plane is the Fourier transform of the temporal correlation.
    off_plane = ft + fx * velocity[0] + fy * velocity[1]
    temporal = np.exp(-2.0 * np.pi**2 * temporal_correlation**2 * off_plane**2)
    video = np.fft.irfftn(np.fft.rfftn(noise) * spatial * temporal, s=shape, axes=(0, 1, 2))
    video = video[pad_t : pad_t + length, pad_s : pad_s + height, pad_s : pad_s + width]
    video = (video - video.mean()) / video.std()
    return video.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, sd_frames: float) -> np.ndarray:
    """Gaussian-filtered white noise (padded, so not periodic), unit sd, shape (n,)."""
    pad = int(math.ceil(4 * sd_frames)) + 1
    total = n + 2 * pad
    freq = np.fft.rfftfreq(total)
    smooth = np.fft.irfft(
        np.fft.rfft(rng.standard_normal(total)) * np.exp(-2.0 * np.pi**2 * sd_frames**2 * freq**2),
        n=total,
    )[pad : pad + n]
    return (smooth - smooth.mean()) / smooth.std()


def _session_behavior(
    rng: np.random.Generator, n_frames: int, frame_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous behaviour of one session.

    Returns:
        running speed (n_frames,) cm/s (>= 0, exactly 0 when still), pupil dilation
        (n_frames,) a.u. (> 0), pupil centre (n_frames, 2) a.u.
    """
    latent = _smooth_noise(rng, n_frames, 1.5 * frame_rate)
    running = _RUNNING_SCALE * np.maximum(latent - _RUNNING_THRESHOLD, 0.0)
    # Pupil dilation follows running with a lag: a trailing one-second average of the
    # saturated speed (cumulative sums keep it vectorised and free of wrap-around).
    lag = max(int(round(frame_rate)), 1)
    saturated = 1.0 - np.exp(-running / 10.0)
    cumulative = np.concatenate([[0.0], np.cumsum(saturated)])
    index = np.arange(n_frames)
    lagged = (cumulative[index + 1] - cumulative[np.maximum(index + 1 - lag, 0)]) / lag
    dilation = 1.0 + 0.5 * lagged + 0.15 * _smooth_noise(rng, n_frames, 3.0 * frame_rate)
    dilation = np.maximum(dilation, 0.1)
    pupil = np.stack(
        [_smooth_noise(rng, n_frames, 1.0 * frame_rate) for _ in range(2)], axis=1
    )
    return running, dilation, pupil


# ----------------------------------------------------------------------------------------------
# Neurons and the ground-truth rate
# ----------------------------------------------------------------------------------------------


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _gaussians(coords: np.ndarray, centers: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """1-D Gaussian profiles exp(-(u - c)^2 / (2 sigma^2)).

    Args:
        coords: pixel coordinates, shape (P,).
        centers: shape (T, n).
        sigma: shape (n,).

    Returns:
        shape (T, n, P).
    """
    return np.exp(-((coords - centers[..., None]) ** 2) / (2.0 * sigma[:, None] ** 2))


def _as_pupil(pupil_center: np.ndarray, n_frames: int) -> np.ndarray:
    pupil = np.asarray(pupil_center, dtype=np.float64)
    if pupil.shape != (n_frames, 2):
        raise ValueError(
            f"pupil_center has shape {pupil.shape}, expected ({n_frames}, 2) = (frames, (x, y)); "
            "pass one pupil position per video frame"
        )
    return pupil


def receptive_field_drive(
    population: DLGNPopulation, video: np.ndarray, pupil_center: np.ndarray
) -> np.ndarray:
    """Spatial drive of every neuron to every frame, before temporal filtering.

    Each neuron's difference-of-Gaussians receptive field sits at
    ``rf_center + pupil_shift_gain * pupil_center[t]`` for frame ``t``. Isotropic Gaussians
    are separable, so the projection costs O(T n H W) without building (T, n, H, W) filters.

    Args:
        population: the neurons.
        video: frames, shape (T, H, W), z-scored luminance.
        pupil_center: (x, y) per frame, shape (T, 2).

    Returns:
        ``on_off * (DoG . frame)``, shape (T, n), float64.
    """
    video = np.asarray(video, dtype=np.float64)
    if video.ndim != 3:
        raise ValueError(f"video has shape {video.shape}, expected (T, H, W)")
    n_frames, height, width = video.shape
    pupil = _as_pupil(pupil_center, n_frames)
    centers = population.rf_center[None] + population.pupil_shift_gain * pupil[:, None]  # (T,n,2)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    drive = np.zeros((n_frames, population.n_neurons))
    for sigma, weight in (
        (population.center_sigma, 1.0),
        (population.surround_sigma, -population.surround_weight),
    ):
        gx = _gaussians(xs, centers[..., 0], sigma)  # (T, n, W)
        gy = _gaussians(ys, centers[..., 1], sigma)  # (T, n, H)
        rows = np.einsum("tyx,tnx->tny", video, gx)
        drive += weight / (2.0 * np.pi * sigma**2) * np.einsum("tny,tny->tn", rows, gy)
    return population.on_off * drive


def spatial_receptive_fields(
    population: DLGNPopulation, frame_size: tuple[int, int], pupil_center=(0.0, 0.0)
) -> np.ndarray:
    """The signed spatial filters for one pupil position (for plots and probes).

    ``receptive_field_drive(video, pupil)[t] == einsum("nyx,yx->n", filters, video[t])`` for a
    constant pupil position.

    Args:
        population: the neurons.
        frame_size: (H, W).
        pupil_center: one (x, y) pupil position.

    Returns:
        Filters, shape (n, H, W), float64 (ON centres positive, OFF centres negative).
    """
    height, width = frame_size
    pupil = _as_pupil(np.asarray(pupil_center, dtype=np.float64)[None], 1)
    centers = population.rf_center + population.pupil_shift_gain * pupil  # (n, 2)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    filters = np.zeros((population.n_neurons, height, width))
    for sigma, weight in (
        (population.center_sigma, 1.0),
        (population.surround_sigma, -population.surround_weight),
    ):
        gx = _gaussians(xs, centers[None, :, 0], sigma)[0]  # (n, W)
        gy = _gaussians(ys, centers[None, :, 1], sigma)[0]  # (n, H)
        filters += (weight / (2.0 * np.pi * sigma**2))[:, None, None] * gy[:, :, None] * gx[:, None]
    return population.on_off[:, None, None] * filters


def _causal_filter(spatial: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``out[t, n] = sum_lag kernel[n, lag] * spatial[t - lag, n]``, zero before t = 0.

    Args:
        spatial: shape (T, n).
        kernel: shape (n, K); index 0 weighs the current frame.

    Returns:
        shape (T, n).
    """
    n_lags = kernel.shape[1]
    padded = np.concatenate([np.zeros((n_lags - 1, spatial.shape[1])), spatial])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_lags, axis=0)  # (T, n, K)
    # The window's last element is the current frame, so reversing the kernel aligns lags.
    return np.einsum("tnk,nk->tn", windows, kernel[:, ::-1])


def running_factor(population: DLGNPopulation, running_speed: np.ndarray) -> np.ndarray:
    """``1 + running_gain * (1 - exp(-speed / running_saturation))``, shape (T, n)."""
    speed = np.asarray(running_speed, dtype=np.float64)
    saturated = 1.0 - np.exp(-np.maximum(speed, 0.0) / population.running_saturation)
    return 1.0 + population.running_gain * saturated[:, None]


def true_rate(
    population: DLGNPopulation,
    video: np.ndarray,
    pupil_center: np.ndarray,
    running_speed: np.ndarray,
    optogenetic_signal: np.ndarray | None = None,
) -> np.ndarray:
    """The ground-truth expected spike count per frame bin (see the module docstring).

    Causal: row ``t`` depends only on frames, pupil positions, running speeds and laser
    values at times ``<= t``.

    Args:
        population: the neurons.
        video: shape (T, H, W), z-scored luminance.
        pupil_center: shape (T, 2), (x, y).
        running_speed: shape (T,), cm/s.
        optogenetic_signal: shape (T,), in [0, 1]; None means laser off.

    Returns:
        Rates, shape (T, n), float64, strictly positive.
    """
    spatial = receptive_field_drive(population, video, pupil_center)
    n_frames = spatial.shape[0]
    running_speed = np.asarray(running_speed, dtype=np.float64)
    if running_speed.shape != (n_frames,):
        raise ValueError(
            f"running_speed has shape {running_speed.shape}, expected ({n_frames},): "
            "one speed per video frame"
        )
    drive = _causal_filter(spatial, population.temporal_kernel) * population.drive_scale
    rate = population.rate_scale * _softplus(population.slope * drive + population.offset)
    rate = rate * running_factor(population, running_speed)
    if optogenetic_signal is not None:
        laser = np.asarray(optogenetic_signal, dtype=np.float64)
        if laser.shape != (n_frames,):
            raise ValueError(
                f"optogenetic_signal has shape {laser.shape}, expected ({n_frames},)"
            )
        rate = rate * (1.0 + (population.optogenetic_gain - 1.0) * laser[:, None])
    return rate


def _temporal_kernels(rng: np.random.Generator, n: int, n_lags: int) -> np.ndarray:
    """Biphasic kernels: fast gamma lobe minus a slower, weaker one, unit L2 norm, (n, K)."""
    lag = np.arange(n_lags, dtype=np.float64) + 0.5  # the current frame is half a frame old
    fast = rng.uniform(0.45, 0.75, size=n)[:, None]  # gamma(3) scale: peak at 2 * scale frames
    slow = rng.uniform(1.1, 1.5, size=n)[:, None]
    rebound = rng.uniform(0.5, 0.9, size=n)[:, None]
    lobe_fast = (lag / fast) ** 2 * np.exp(-lag / fast)
    lobe_slow = (lag / slow) ** 2 * np.exp(-lag / slow)
    kernel = (
        lobe_fast / lobe_fast.sum(axis=1, keepdims=True)
        - rebound * lobe_slow / lobe_slow.sum(axis=1, keepdims=True)
    )
    return kernel / np.linalg.norm(kernel, axis=1, keepdims=True)


def make_population(
    ground_truth_seed: int,
    session_index: int,
    *,
    n_neurons: int = 30,
    frame_size: tuple[int, int] = (16, 24),
    modulated_fraction: float = 0.4,
    optogenetic_gain: float = 0.4,
    enhanced_fraction: float = 0.25,
    mean_rate: float = 0.3,
    running_gain_range: tuple[float, float] = (-0.3, 1.0),
    pupil_shift_gain: float = 1.0,
    running_saturation: float = 10.0,
    temporal_kernel_length: int = 8,
    temporal_correlation: float = 2.0,
    drift_speed: float = 0.3,
) -> DLGNPopulation:
    """Draws one session's neurons from ``default_rng([ground_truth_seed, session_index])``.

    The draws are made in a fixed order whatever the fractions and ``mean_rate``, so changing
    those keeps every receptive field. Arguments are those of `simulate_dlgn`.

    Returns:
        The session's `DLGNPopulation`.
    """
    rng = np.random.default_rng([ground_truth_seed, session_index])
    height, width = frame_size
    n = n_neurons
    # Centres in the middle half, so that the pupil-shifted centre lobe stays on the screen.
    rf_center = np.stack(
        [rng.uniform(0.25, 0.75, n) * (width - 1), rng.uniform(0.25, 0.75, n) * (height - 1)],
        axis=1,
    )
    center_sigma = rng.uniform(0.8, 1.4, n)
    surround_sigma = center_sigma * rng.uniform(2.0, 3.0, n)
    surround_weight = rng.uniform(0.5, 0.9, n)
    on_off = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int64)
    temporal_kernel = _temporal_kernels(rng, n, temporal_kernel_length)
    slope = rng.uniform(1.0, 2.0, n)
    offset = rng.uniform(-1.5, -0.5, n)
    target = mean_rate * np.exp(0.3 * rng.standard_normal(n))
    running_gain = rng.uniform(running_gain_range[0], running_gain_range[1], n)
    order = rng.permutation(n)
    n_modulated = int(round(modulated_fraction * n))
    n_enhanced = int(round(enhanced_fraction * n_modulated))
    modulated = np.zeros(n, dtype=bool)
    modulated[order[:n_modulated]] = True
    gain = np.ones(n)
    gain[order[:n_modulated]] = optogenetic_gain
    # A few modulated neurons are facilitated instead of suppressed (reciprocal factor).
    gain[order[:n_enhanced]] = 1.0 / optogenetic_gain

    partial = DLGNPopulation(
        rf_center=rf_center,
        center_sigma=center_sigma,
        surround_sigma=surround_sigma,
        surround_weight=surround_weight,
        on_off=on_off,
        temporal_kernel=temporal_kernel,
        drive_scale=np.ones(n),
        slope=slope,
        offset=offset,
        rate_scale=np.ones(n),
        running_gain=running_gain,
        optogenetic_gain=gain,
        modulated=modulated,
        pupil_shift_gain=float(pupil_shift_gain),
        running_saturation=float(running_saturation),
    )
    # Calibration on movies from the ground-truth stream: the neurons' scales then depend on
    # ground_truth_seed only, not on the clips that `seed` draws.
    squares = np.zeros(n)
    frames = 0
    for _ in range(_CALIBRATION_CLIPS):
        clip = movie_clip(
            rng,
            _CALIBRATION_LENGTH,
            frame_size,
            temporal_correlation=temporal_correlation,
            drift_speed=drift_speed,
        )
        drive = _causal_filter(
            receptive_field_drive(partial, clip, np.zeros((len(clip), 2))), temporal_kernel
        )[temporal_kernel_length:]  # skip the start-up frames with grey history
        squares += (drive**2).sum(axis=0)
        frames += len(drive)
    drive_scale = 1.0 / np.sqrt(squares / frames)
    # E[softplus(slope z + offset)] for z ~ N(0, 1) by Gauss-Hermite quadrature, so that the
    # stationary, laser-off mean rate is the target.
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    expected = _softplus(slope[:, None] * nodes + offset[:, None]) @ weights / math.sqrt(2 * math.pi)
    return dataclasses.replace(partial, drive_scale=drive_scale, rate_scale=target / expected)


# ----------------------------------------------------------------------------------------------
# The data set
# ----------------------------------------------------------------------------------------------


def _check_positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _validate(settings: dict) -> None:
    for name, minimum in (
        ("n_sessions", 1),
        ("n_neurons", 1),
        ("n_train_clips", 1),
        ("n_validation_clips", 1),
        ("n_test_clips", 1),
        ("n_test_repeats", 4),
        ("temporal_kernel_length", 1),
    ):
        _check_positive_int(name, settings[name], minimum)
    frame_size = settings["frame_size"]
    if len(frame_size) != 2:
        raise ValueError(f"frame_size must be (height, width), got {frame_size!r}")
    for value in frame_size:
        _check_positive_int("frame_size entries", value, 4)
    low, high = settings["clip_length"]
    _check_positive_int("clip_length[0]", low, 1)
    _check_positive_int("clip_length[1]", high, 1)
    if low > high:
        raise ValueError(f"clip_length must be (min, max) with min <= max, got {(low, high)!r}")
    for name in ("modulated_fraction", "enhanced_fraction", "laser_probability"):
        if not 0.0 <= settings[name] <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {settings[name]!r}")
    for name in ("frame_rate", "optogenetic_gain", "mean_rate", "running_saturation",
                 "temporal_correlation"):
        if not settings[name] > 0:
            raise ValueError(f"{name} must be positive, got {settings[name]!r}")
    if settings["drift_speed"] < 0:
        raise ValueError(f"drift_speed must be non-negative, got {settings['drift_speed']!r}")
    gain_low, gain_high = settings["running_gain_range"]
    if not -1.0 < gain_low <= gain_high:
        raise ValueError(
            f"running_gain_range must be (low, high) with -1 < low <= high (rates must stay "
            f"positive), got {settings['running_gain_range']!r}"
        )


def simulate_dlgn(
    seed: int,
    *,
    n_sessions: int = 2,
    n_neurons: int = 30,
    frame_size: tuple[int, int] = (16, 24),
    n_train_clips: int = 40,
    n_validation_clips: int = 8,
    n_test_clips: int = 4,
    n_test_repeats: int = 6,
    clip_length: tuple[int, int] = (40, 80),
    frame_rate: float = 30.0,
    modulated_fraction: float = 0.4,
    optogenetic_gain: float = 0.4,
    enhanced_fraction: float = 0.25,
    laser_probability: float = 0.5,
    mean_rate: float = 0.3,
    running_gain_range: tuple[float, float] = (-0.3, 1.0),
    pupil_shift_gain: float = 1.0,
    running_saturation: float = 10.0,
    temporal_kernel_length: int = 8,
    temporal_correlation: float = 2.0,
    drift_speed: float = 0.3,
    ground_truth_seed: int = 0,
) -> SyntheticDLGN:
    """Simulates dLGN sessions watching movie clips (see the module docstring for the model).

    Args:
        seed: fixes the clips, trial order, laser, behaviour and spikes.
        n_sessions: sessions, named ``session_0``, ``session_1``, ...; each has its own neurons.
        n_neurons: neurons per session.
        frame_size: (H, W) of the videos.
        n_train_clips: train clips, shown once per session (clip ids 0 ...).
        n_validation_clips: validation clips, shown once per session (ids after train).
        n_test_clips: test clips (ids after validation), each shown ``n_test_repeats`` times
            per session.
        n_test_repeats: repeats of each test clip per session (>= 4); ``n_test_repeats // 2``
            with the laser on, the rest off.
        clip_length: (min, max) frames of train and validation clips (uniform, inclusive);
            test clips have the max length.
        frame_rate: frames per second; the behaviour's time scales are in seconds, the
            temporal kernel is in frames.
        modulated_fraction: fraction of neurons (rounded) whose rate the laser changes.
        optogenetic_gain: rate factor of modulated neurons with the laser on (0.4 = 60 %
            suppression).
        enhanced_fraction: fraction of the modulated neurons (rounded) facilitated instead, by
            ``1 / optogenetic_gain``.
        laser_probability: probability that a train or validation trial has the laser on.
        mean_rate: median over neurons of the stationary, laser-off mean expected count per
            frame bin (0.3 = 9 spikes/s at 30 Hz).
        running_gain_range: per-neuron running gains are uniform in this range.
        pupil_shift_gain: pixels of receptive-field shift per unit of pupil displacement.
        running_saturation: cm/s at which the running gain reaches 63 % of its maximum.
        temporal_kernel_length: frames K of the causal temporal kernel.
        temporal_correlation: frames; temporal smoothness of the movies.
        drift_speed: pixels per frame; sd of each clip's drift velocity per axis.
        ground_truth_seed: fixes the neurons independently of ``seed``.

    Returns:
        A `SyntheticDLGN`; ``trials`` lists the sessions one after the other, each session's
        trials in a random presentation order.

    Raises:
        ValueError: on a size, fraction, rate or range outside its valid domain (the message
            names the argument).
    """
    settings = dict(
        n_sessions=n_sessions,
        n_neurons=n_neurons,
        frame_size=tuple(frame_size),
        n_train_clips=n_train_clips,
        n_validation_clips=n_validation_clips,
        n_test_clips=n_test_clips,
        n_test_repeats=n_test_repeats,
        clip_length=tuple(clip_length),
        frame_rate=float(frame_rate),
        modulated_fraction=float(modulated_fraction),
        optogenetic_gain=float(optogenetic_gain),
        enhanced_fraction=float(enhanced_fraction),
        laser_probability=float(laser_probability),
        mean_rate=float(mean_rate),
        running_gain_range=tuple(float(v) for v in running_gain_range),
        pupil_shift_gain=float(pupil_shift_gain),
        running_saturation=float(running_saturation),
        temporal_kernel_length=temporal_kernel_length,
        temporal_correlation=float(temporal_correlation),
        drift_speed=float(drift_speed),
    )
    _validate(settings)

    # The clip pool, shared by all sessions.
    clip_rng = np.random.default_rng([seed, 0])
    tiers = ["train"] * n_train_clips + ["validation"] * n_validation_clips
    tiers += ["test"] * n_test_clips
    lengths = np.concatenate(
        [
            clip_rng.integers(clip_length[0], clip_length[1] + 1, n_train_clips + n_validation_clips),
            np.full(n_test_clips, clip_length[1]),
        ]
    )
    clips = [
        movie_clip(
            clip_rng,
            int(length),
            settings["frame_size"],
            temporal_correlation=temporal_correlation,
            drift_speed=drift_speed,
        )
        for length in lengths
    ]

    population_keys = (
        "n_neurons", "frame_size", "modulated_fraction", "optogenetic_gain", "enhanced_fraction",
        "mean_rate", "running_gain_range", "pupil_shift_gain", "running_saturation",
        "temporal_kernel_length", "temporal_correlation", "drift_speed",
    )
    trials: dict[str, list] = {
        key: []
        for key in ("session", "tier", "clip_id", "videos", "responses", "behavior",
                    "pupil_center", "optogenetic_signal")
    }
    rates: list[np.ndarray] = []
    neurons: dict[str, dict[str, np.ndarray]] = {}
    populations: dict[str, DLGNPopulation] = {}
    ceiling: dict[str, float] = {}
    ceiling_per_neuron: dict[str, list[float]] = {}
    iti = max(int(round(frame_rate)), 1)  # grey inter-trial interval, frames

    for index in range(n_sessions):
        name = session_name(index)
        population = make_population(
            ground_truth_seed, index, **{key: settings[key] for key in population_keys}
        )
        populations[name] = population
        neurons[name] = {
            "unit_id": np.arange(n_neurons, dtype=np.int64),
            # Recording depth along the probe: metadata only, no effect on responses.
            "depth_um": np.sort(
                np.random.default_rng([ground_truth_seed, index, 1]).uniform(0, 800, n_neurons)
            ),
        }
        rng = np.random.default_rng([seed, 1, index])
        n_once = n_train_clips + n_validation_clips
        clip_ids = np.concatenate(
            [np.arange(n_once), np.repeat(np.arange(n_once, len(clips)), n_test_repeats)]
        )
        # Test clips: exactly half of the repeats (rounded down) with the laser on.
        test_laser = np.tile(
            np.arange(n_test_repeats) < n_test_repeats // 2, n_test_clips
        )
        laser = np.concatenate([rng.random(n_once) < laser_probability, test_laser])
        order = rng.permutation(len(clip_ids))
        clip_ids, laser = clip_ids[order], laser[order]

        trial_lengths = lengths[clip_ids]
        starts = np.concatenate([[0], np.cumsum(trial_lengths + iti)[:-1]])
        running, dilation, pupil = _session_behavior(
            rng, int(starts[-1] + trial_lengths[-1]), frame_rate
        )
        session_rates, session_counts = [], []
        for clip_id, on, start, length in zip(clip_ids, laser, starts, trial_lengths):
            frames = slice(int(start), int(start + length))
            behavior = np.stack([running[frames], dilation[frames]], axis=1).astype(np.float32)
            pupil_center = pupil[frames].astype(np.float32)
            signal = np.full(int(length), float(on), dtype=np.float32)
            video = clips[clip_id]
            # The rates use the stored float32 values, so true_rate(trial) reproduces them.
            rate = true_rate(population, video, pupil_center, behavior[:, 0], signal)
            counts = rng.poisson(rate).astype(np.float32)
            trials["session"].append(name)
            trials["tier"].append(tiers[clip_id])
            trials["clip_id"].append(int(clip_id))
            trials["videos"].append(video)
            trials["responses"].append(counts)
            trials["behavior"].append(behavior)
            trials["pupil_center"].append(pupil_center)
            trials["optogenetic_signal"].append(signal)
            rates.append(rate)
            if tiers[clip_id] == "test":
                session_rates.append(rate)
                session_counts.append(counts)
        per_neuron = pearson_columns(
            np.concatenate(session_rates), np.concatenate(session_counts).astype(np.float64)
        )
        ceiling_per_neuron[name] = per_neuron.tolist()
        ceiling[name] = float(per_neuron.mean())

    ground_truth = {
        "model": "dlgn_lnp",
        "seed": int(seed),
        "ground_truth_seed": int(ground_truth_seed),
        "settings": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in settings.items()
        },
        "sessions": {name: population.to_json() for name, population in populations.items()},
        "ceiling": ceiling,
        "ceiling_per_neuron": ceiling_per_neuron,
    }
    return SyntheticDLGN(
        trials=trials,
        neurons=neurons,
        frame_rate=float(frame_rate),
        behavior_names=list(BEHAVIOR_NAMES),
        rates=rates,
        ground_truth=ground_truth,
        populations=populations,
    )

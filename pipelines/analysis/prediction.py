"""Prediction-performance scores for neural response models.

Pure numpy: arrays in, arrays out, computed in float64 and batched over neurons
(no Python loop over neurons or stimuli).

Conventions shared by every function:

* ``responses`` and ``predictions`` have shape ``(n_trials, n_neurons)``: axis 0 is the
  sample axis (one row per trial, i.e. per presentation of a stimulus; a repeat of a
  stimulus is its own row), axis 1 indexes neurons. Values are in the units of the
  recorded responses (e.g. deconvolved calcium activity or spike counts); correlations
  and fractions of variance are dimensionless.
* ``stimulus_id`` has shape ``(n_trials,)`` and labels which stimulus each trial showed.
  Trials with equal ids are repeats of one stimulus. Ids can be any type
  :func:`numpy.unique` can sort (integers, strings, ...); their order is irrelevant and
  repeat counts may differ between stimuli.
* Inputs must be finite; a ``ValueError`` with both shapes is raised on mismatches.

Notation (as in the project note ``metrics.md``, section 1): ``r[s, k, n]`` is the
response to stimulus ``s``, repeat ``k`` (``k = 1..R_s``), neuron ``n``; ``ŷ`` is the
prediction.

References:
    Willeke, K. F. et al. (2022). The Sensorium competition on predicting large-scale
    mouse primary visual cortex activity. arXiv:2206.08666.

    Cadena, S. A. et al. (2019). Deep convolutional models improve predictions of
    macaque V1 responses to natural images. PLoS Comput. Biol. 15(4): e1006897.

    Walker, E. Y. et al. (2019). Inception loops discover what excites neurons most
    using deep predictive models. Nat. Neurosci. 22: 2060-2065.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import ArrayLike

from ._validation import numeric

__all__ = [
    "correlation",
    "trial_average",
    "correlation_to_average",
    "fev",
    "feve",
    "oracle_correlation",
]


# ----------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------


def _as_matrix(values: ArrayLike, name: str) -> np.ndarray:
    """Converts ``values`` to a finite float64 array of shape (n_samples, n_neurons)."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_neurons), got shape {array.shape}"
        )
    return numeric(array, name)


def _check_pair(responses: ArrayLike, predictions: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validates two (n_samples, n_neurons) arrays of identical shape with >= 2 samples."""
    responses = _as_matrix(responses, "responses")
    predictions = _as_matrix(predictions, "predictions")
    if responses.shape != predictions.shape:
        raise ValueError(
            "responses and predictions must have the same shape, got responses "
            f"{responses.shape} and predictions {predictions.shape}"
        )
    if responses.shape[0] < 2:
        raise ValueError(
            f"at least 2 samples (rows) are needed, got {responses.shape[0]} "
            f"(shape {responses.shape})"
        )
    return responses, predictions


def _as_ids(stimulus_id: ArrayLike, n_trials: int, values_shape: tuple[int, ...]) -> np.ndarray:
    """Validates a 1-D stimulus id vector with one entry per trial."""
    ids = np.asarray(stimulus_id)
    if ids.ndim != 1:
        raise ValueError(f"stimulus_id must be 1-D with shape (n_trials,), got shape {ids.shape}")
    if ids.shape[0] != n_trials:
        raise ValueError(
            f"stimulus_id has length {ids.shape[0]} (shape {ids.shape}) but the responses "
            f"have {n_trials} trials (shape {values_shape})"
        )
    return ids


def _group(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups trials by stimulus.

    Returns:
        ``(unique_ids, inverse, counts)``: sorted unique ids ``(n_stimuli,)``; for each
        trial the index of its stimulus in ``unique_ids`` ``(n_trials,)``; and the number
        of trials (repeats) of each stimulus ``(n_stimuli,)``.
    """
    unique_ids, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse, minlength=unique_ids.shape[0])
    return unique_ids, inverse, counts


def _group_sums(values: np.ndarray, inverse: np.ndarray, n_stimuli: int) -> np.ndarray:
    """Sums rows of ``values`` per stimulus: (n_trials, n) -> (n_stimuli, n).

    Unbuffered ``np.add.at`` scatter-add, vectorised over trials and neurons.
    """
    sums = np.zeros((n_stimuli, values.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, values)
    return sums


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Pearson r per column of two validated (n_samples, n_neurons) float64 arrays.

    Columns where ``a`` or ``b`` is constant (all samples exactly equal) give 0.
    """
    a_c = a - a.mean(axis=0)
    b_c = b - b.mean(axis=0)
    numerator = np.einsum("ij,ij->j", a_c, b_c)
    denominator = np.sqrt(np.einsum("ij,ij->j", a_c, a_c) * np.einsum("ij,ij->j", b_c, b_c))
    # "Constant" is decided on the raw values, not on the centred ones: the mean of a
    # constant column need not round to that constant, which leaves ~1e-17 residuals.
    constant = (np.ptp(a, axis=0) == 0) | (np.ptp(b, axis=0) == 0) | (denominator == 0)
    r = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=~constant)
    return np.clip(r, -1.0, 1.0)


def _variance_components(
    responses: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Total and noise variance per neuron (both ddof=1), see :func:`fev`."""
    unique_ids, inverse, counts = _group(ids)
    repeated = counts >= 2
    if not np.any(repeated):
        raise ValueError(
            "the noise variance needs at least one stimulus shown >= 2 times, but every "
            f"one of the {unique_ids.shape[0]} stimuli was shown once"
        )
    total_var = responses.var(axis=0, ddof=1)
    means = _group_sums(responses, inverse, counts.shape[0]) / counts[:, None]
    residuals = responses - means[inverse]
    ss_within = _group_sums(residuals * residuals, inverse, counts.shape[0])[repeated]
    noise_var = (ss_within / (counts[repeated, None] - 1)).mean(axis=0)
    return total_var, noise_var


# ----------------------------------------------------------------------------------------
# public scores
# ----------------------------------------------------------------------------------------


def correlation(responses: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Pearson correlation per neuron over the sample axis (single-trial correlation).

    ``r_n = mean_i(z(responses)[i, n] * z(predictions)[i, n])`` with
    ``z(x) = (x - mean) / std`` and ``std`` taken with ddof=0 on both sides, so the
    normalisations are consistent and ``r_n`` is exactly Pearson's r (the ddof-1 torch
    variant shrinks r by (N-1)/N; see the note's pitfall). Used per trial as the
    "single-trial correlation" of Willeke et al. (2022), Sensorium.

    Policy for undefined values: a neuron whose responses or predictions are constant
    over all samples (0/0) gets correlation 0. This matches Sensorium, which sets NaN
    correlations to 0 before averaging. Unlike neuralpredictors' ``corr`` no ``eps`` is
    added to the standard deviations, so non-constant neurons get the exact value.

    Args:
        responses: Recorded responses, shape (n_samples, n_neurons), response units.
        predictions: Model predictions, same shape and units as ``responses``.

    Returns:
        Correlation per neuron, shape (n_neurons,), dimensionless, in [-1, 1].

    Raises:
        ValueError: On shapes that are not 2-D or differ, fewer than 2 samples, or
            non-finite values.

    Examples:
        >>> correlation(np.array([[1.0], [2.0], [3.0]]), np.array([[3.0], [5.0], [7.0]]))
        array([1.])
    """
    responses, predictions = _check_pair(responses, predictions)
    return _pearson(responses, predictions)


def trial_average(values: ArrayLike, stimulus_id: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the repeats of each stimulus.

    ``ȳ[s, n] = mean_k values[s, k, n]``; repeat counts may differ between stimuli.
    Vectorised with :func:`numpy.unique` and an :func:`numpy.add.at` scatter-add.

    Args:
        values: Responses or predictions, shape (n_trials, n_neurons), any units.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        ``(averaged, unique_ids)``: the per-stimulus means, shape (n_stimuli, n_neurons),
        in the units of ``values``, float64; and the sorted unique stimulus ids, shape
        (n_stimuli,), such that row ``s`` of ``averaged`` belongs to ``unique_ids[s]``.

    Raises:
        ValueError: If ``values`` is not 2-D or has no rows, on non-finite values, or if
            ``stimulus_id`` is not 1-D with one entry per trial.

    Examples:
        >>> trial_average(np.array([[1.0], [5.0], [3.0]]), np.array([7, 2, 7]))[0].ravel()
        array([5., 2.])
    """
    values = _as_matrix(values, "values")
    ids = _as_ids(stimulus_id, values.shape[0], values.shape)
    if values.shape[0] == 0:
        raise ValueError(f"values has no trials (shape {values.shape})")
    unique_ids, inverse, counts = _group(ids)
    averaged = _group_sums(values, inverse, counts.shape[0]) / counts[:, None]
    return averaged, unique_ids


def correlation_to_average(
    responses: ArrayLike, predictions: ArrayLike, stimulus_id: ArrayLike
) -> np.ndarray:
    """Correlation between repeat-averaged responses and repeat-averaged predictions.

    Responses and predictions are first averaged over the repeats of each stimulus
    (:func:`trial_average`), then correlated per neuron across stimuli with
    :func:`correlation` (ddof 0, constant neurons give 0). This is Sensorium's
    "correlation to average" (Willeke et al., 2022). Each stimulus counts once whatever
    its repeat count.

    Args:
        responses: Recorded responses, shape (n_trials, n_neurons), response units.
        predictions: Predictions per trial, same shape and units as ``responses``.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        Correlation per neuron, shape (n_neurons,), dimensionless, in [-1, 1].

    Raises:
        ValueError: On mismatched or non-2-D shapes, non-finite values, a
            ``stimulus_id`` of the wrong length, or fewer than 2 distinct stimuli.

    Examples:
        >>> correlation_to_average(np.array([[1.0], [3.0], [5.0], [6.0]]),
        ...                        np.array([[0.0], [0.0], [1.0], [1.0]]), [0, 0, 1, 1])
        array([1.])
    """
    responses, predictions = _check_pair(responses, predictions)
    ids = _as_ids(stimulus_id, responses.shape[0], responses.shape)
    mean_responses, unique_ids = trial_average(responses, ids)
    if unique_ids.shape[0] < 2:
        raise ValueError(
            f"at least 2 distinct stimuli are needed, got {unique_ids.shape[0]} "
            f"across {responses.shape[0]} trials"
        )
    mean_predictions, _ = trial_average(predictions, ids)
    return _pearson(mean_responses, mean_predictions)


def fev(responses: ArrayLike, stimulus_id: ArrayLike) -> np.ndarray:
    """Fraction of explainable variance per neuron (Cadena et al., 2019).

    ::

        total_var = Var over all trials of r[:, n]                      (ddof=1)
        noise_var = mean over stimuli s of Var_k r[s, k, n]             (ddof=1)
        FEV_n     = (total_var - noise_var) / total_var

    The noise variance is computed per stimulus and then averaged (unweighted) over
    stimuli. Unequal repeat counts are allowed: a stimulus shown only once has no
    within-stimulus variance, so it contributes to ``total_var`` but not to
    ``noise_var``. With unequal repeat counts the total variance weights stimuli by
    their repeat count, which biases the estimate (see the note's pitfalls).

    Policy: a neuron with zero total variance (constant responses) gets NaN. FEV can be
    negative for neurons whose repeats vary more than the stimuli do.

    Args:
        responses: Recorded responses, shape (n_trials, n_neurons), response units.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        FEV per neuron, shape (n_neurons,), dimensionless, at most 1.

    Raises:
        ValueError: On non-2-D shapes, non-finite values, fewer than 2 trials, a
            ``stimulus_id`` of the wrong length, or no stimulus with >= 2 repeats.

    Examples:
        >>> fev(np.array([[0.0], [2.0], [10.0], [12.0]]), [0, 0, 1, 1])
        array([0.94230769])
    """
    responses = _as_matrix(responses, "responses")
    ids = _as_ids(stimulus_id, responses.shape[0], responses.shape)
    if responses.shape[0] < 2:
        raise ValueError(
            f"at least 2 trials are needed, got {responses.shape[0]} (shape {responses.shape})"
        )
    total_var, noise_var = _variance_components(responses, ids)
    defined = total_var > 0
    return np.divide(
        total_var - noise_var, total_var, out=np.full_like(total_var, np.nan), where=defined
    )


def feve(responses: ArrayLike, predictions: ArrayLike, stimulus_id: ArrayLike) -> np.ndarray:
    """Fraction of explainable variance explained per neuron (Cadena et al., 2019).

    ::

        MSE_n  = mean over all trials of (r - ŷ)²       (single-trial squared error)
        FEVE_n = 1 - (MSE_n - noise_var) / (total_var - noise_var)

    with ``total_var`` and ``noise_var`` as in :func:`fev`. A perfect model of the
    stimulus-driven signal has FEVE ≈ 1; predicting a constant gives FEVE ≈ 0 or below.
    Sensorium reports the mean FEVE over neurons with FEV >= 0.15 (Willeke et al.,
    2022), because FEVE explodes when the explainable variance is close to 0.

    Policy: where the explainable variance ``total_var - noise_var`` is <= 0 FEVE is
    undefined and NaN is returned for that neuron.

    Args:
        responses: Recorded responses, shape (n_trials, n_neurons), response units.
        predictions: Predictions per trial, same shape and units as ``responses``.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        FEVE per neuron, shape (n_neurons,), dimensionless, at most 1 plus estimation
        noise (unbounded below), NaN where undefined.

    Raises:
        ValueError: On mismatched or non-2-D shapes, non-finite values, fewer than 2
            trials, a ``stimulus_id`` of the wrong length, or no stimulus with >= 2
            repeats.

    Examples:
        >>> r = np.array([[0.0], [2.0], [10.0], [12.0]])
        >>> feve(r, np.array([[2.0], [2.0], [10.0], [10.0]]), [0, 0, 1, 1])
        array([1.])
    """
    responses, predictions = _check_pair(responses, predictions)
    ids = _as_ids(stimulus_id, responses.shape[0], responses.shape)
    total_var, noise_var = _variance_components(responses, ids)
    error = responses - predictions
    mse = np.einsum("ij,ij->j", error, error) / responses.shape[0]
    explainable = total_var - noise_var
    defined = explainable > 0
    fraction = np.divide(
        mse - noise_var, explainable, out=np.full_like(explainable, np.nan), where=defined
    )
    return 1.0 - fraction


def oracle_correlation(responses: ArrayLike, stimulus_id: ArrayLike) -> np.ndarray:
    """Leave-one-out (jackknife) oracle correlation per neuron (Walker et al., 2019).

    Each trial ``r[s, k, n]`` is paired with the mean of the *other* repeats of its
    stimulus, ``(sum_j r[s, j, n] - r[s, k, n]) / (R_s - 1)``, and the two are
    correlated per neuron over all trials of stimuli with ``R_s >= 2`` (ddof 0,
    constant neurons give 0, as in :func:`correlation`). It estimates how well the
    best stimulus-only predictor can correlate with single trials, and is commonly used
    as an (under-estimated) ceiling for the single-trial correlation.

    Stimuli shown only once are excluded (they have no "other" repeats). This differs
    from neuralpredictors' ``oracle_corr_jackknife``, which keeps such trials with an
    oracle set to 0.

    Args:
        responses: Recorded responses, shape (n_trials, n_neurons), response units.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        Oracle correlation per neuron, shape (n_neurons,), dimensionless, in [-1, 1].

    Raises:
        ValueError: On non-2-D shapes, non-finite values, a ``stimulus_id`` of the
            wrong length, or no stimulus with >= 2 repeats.

    Examples:
        >>> oracle_correlation(np.array([[0.0], [0.0], [1.0], [1.0]]), [0, 0, 1, 1])
        array([1.])
    """
    responses = _as_matrix(responses, "responses")
    ids = _as_ids(stimulus_id, responses.shape[0], responses.shape)
    unique_ids, inverse, counts = _group(ids)
    if not np.any(counts >= 2):
        raise ValueError(
            "the oracle needs at least one stimulus shown >= 2 times, but every one of the "
            f"{unique_ids.shape[0]} stimuli was shown once"
        )
    keep = counts[inverse] >= 2
    sums = _group_sums(responses, inverse, counts.shape[0])
    kept = responses[keep]
    kept_counts = counts[inverse[keep]][:, None]
    others_mean = (sums[inverse[keep]] - kept) / (kept_counts - 1)
    return _pearson(kept, others_mean)


# ----------------------------------------------------------------------------------------
# noise ceilings from repeats: signal power, CCabs, CCmax, CCnorm, split-half CCmax
# (metrics.md section 1c)
#
# These functions take ``repeats`` of shape ``(n_repeats, n_samples, n_neurons)``: every
# sample (time bin or stimulus) was recorded in each of ``N = n_repeats`` repeats, and
# ``predictions`` of shape ``(n_samples, n_neurons)`` (one prediction per sample, the same
# for every repeat). :func:`repeats_array` builds ``repeats`` from the (n_trials, n_neurons)
# layout used above. All variances, covariances and powers are over the sample axis with
# ddof 0 (divide by n_samples), one convention throughout: SP is then exactly unbiased for
# the ddof-0 variance of the noise-free signal, and CCnorm = CCabs / CCmax holds exactly.
# (Schoppe's MATLAB mixes ddof 1 in SP with ddof 0 in Cov/Var, a factor sqrt((T-1)/T).)
#
# References:
#     Sahani, M. & Linden, J. F. (2003). How linear are auditory cortical responses?
#     NIPS 15: 125-132.
#
#     Schoppe, O., Harper, N. S., Willmore, B. D. B., King, A. J. & Schnupp, J. W. H.
#     (2016). Measuring the performance of neural models. Front. Comput. Neurosci. 10: 10.
#
#     Hsu, A., Borst, A. & Theunissen, F. E. (2004). Quantifying variability in neural
#     responses and its application for the validation of model predictions. Network:
#     Comput. Neural Syst. 15(2): 91-109.
# ----------------------------------------------------------------------------------------

__all__ += [
    "repeats_array",
    "signal_power",
    "cc_abs",
    "cc_max",
    "cc_norm",
    "split_half_cc_max",
]


def _as_repeats(repeats: ArrayLike) -> np.ndarray:
    """Validates a finite (n_repeats >= 2, n_samples >= 2, n_neurons) array, as float64."""
    array = np.asarray(repeats)
    if array.ndim != 3:
        raise ValueError(
            "repeats must be 3-D with shape (n_repeats, n_samples, n_neurons), got shape "
            f"{array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"repeats must be numeric, got dtype {array.dtype}")
    if array.shape[0] < 2:
        raise ValueError(
            f"at least 2 repeats are needed, got {array.shape[0]} (shape {array.shape})"
        )
    if array.shape[1] < 2:
        raise ValueError(
            f"at least 2 samples are needed, got {array.shape[1]} (shape {array.shape})"
        )
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError("repeats contains non-finite values (NaN or inf)")
    return array


def _check_repeats_and_predictions(
    repeats: ArrayLike, predictions: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    repeats = _as_repeats(repeats)
    predictions = _as_matrix(predictions, "predictions")
    if predictions.shape != repeats.shape[1:]:
        raise ValueError(
            "predictions must have shape (n_samples, n_neurons) matching repeats "
            f"(n_repeats, n_samples, n_neurons), got predictions {predictions.shape} and "
            f"repeats {repeats.shape}"
        )
    return repeats, predictions


def _signal_power(repeats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(SP, P(ȳ))`` per neuron for validated repeats (ddof 0)."""
    n_repeats = repeats.shape[0]
    power_of_mean = repeats.mean(axis=0).var(axis=0)
    mean_power = repeats.var(axis=1).mean(axis=0)
    return (n_repeats * power_of_mean - mean_power) / (n_repeats - 1), power_of_mean


def repeats_array(responses: ArrayLike, stimulus_id: ArrayLike) -> np.ndarray:
    """Stacks the repeats of each stimulus: (n_trials, n_neurons) -> (N, n_stimuli, n_neurons).

    Stimuli are ordered as the sorted unique ids (:func:`numpy.unique`, as in
    :func:`trial_average`); within a stimulus, repeats keep the order in which its trials
    appear in ``responses``. Every stimulus must have been shown the same number of
    times ``N``.

    Args:
        responses: Responses per trial, shape (n_trials, n_neurons), any units.
        stimulus_id: Stimulus label of each trial, shape (n_trials,).

    Returns:
        ``repeats[k, s, n]`` = the ``k``-th trial of the ``s``-th sorted stimulus id,
        neuron ``n``; shape (n_repeats, n_stimuli, n_neurons), float64.

    Raises:
        ValueError: On a non-2-D or empty ``responses``, non-finite values, a
            ``stimulus_id`` of the wrong length, or unequal repeat counts (the message
            lists the distinct counts and an example stimulus for each).

    Examples:
        >>> repeats_array(np.array([[1.0], [2.0], [3.0], [4.0]]), ["b", "a", "b", "a"])[..., 0]
        array([[2., 1.],
               [4., 3.]])
    """
    responses = _as_matrix(responses, "responses")
    ids = _as_ids(stimulus_id, responses.shape[0], responses.shape)
    if responses.shape[0] == 0:
        raise ValueError(f"responses has no trials (shape {responses.shape})")
    unique_ids, inverse, counts = _group(ids)
    distinct = np.unique(counts)
    if distinct.shape[0] != 1:
        examples = ", ".join(
            f"{int(c)} (e.g. stimulus {unique_ids[np.argmax(counts == c)].item()!r})"
            for c in distinct
        )
        raise ValueError(
            "every stimulus must have the same number of repeats, got repeat counts "
            f"{examples} across {unique_ids.shape[0]} stimuli"
        )
    order = np.argsort(inverse, kind="stable")  # by stimulus, then by trial order
    stacked = responses[order].reshape(unique_ids.shape[0], int(distinct[0]), -1)
    return np.ascontiguousarray(stacked.transpose(1, 0, 2))


def signal_power(repeats: ArrayLike) -> np.ndarray:
    """Signal power per neuron from repeated responses (Sahani & Linden, 2003).

    With ``N`` repeats ``r_k``, their mean ``ȳ`` and ``P(x)`` = variance over samples
    (ddof 0)::

        SP = (N · P(ȳ) - mean_k P(r_k)) / (N - 1)
           = (Var(Σ_k r_k) - Σ_k Var(r_k)) / (N (N - 1))       (Schoppe et al., 2016)

    For ``r_k = s + ε_k`` with noise independent across repeats, SP is an unbiased
    estimate of ``P(s)``, the (ddof-0) variance of the noise-free signal; the noise power
    is ``mean_k P(r_k) - SP``. SP can be negative for very noisy neurons.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons), any units.

    Returns:
        Signal power per neuron, shape (n_neurons,), in squared response units.

    Raises:
        ValueError: On a non-3-D array, fewer than 2 repeats or samples, or non-finite
            values.

    Examples:
        >>> signal_power(np.array([[[0.0], [2.0]], [[2.0], [4.0]]]))  # r = s ± 1, P(s) = 1
        array([1.])
    """
    return _signal_power(_as_repeats(repeats))[0]


def cc_abs(repeats: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Correlation of the predictions with the repeat-averaged response, per neuron.

    ``CCabs = Cov(ȳ, ŷ) / sqrt(Var(ȳ) Var(ŷ))`` over samples (Schoppe et al., 2016), i.e.
    :func:`correlation` of ``repeats.mean(axis=0)`` and ``predictions`` (same policy: a
    constant ``ȳ`` or ``ŷ`` gives 0). It is biased low as a measure of model quality,
    because ``ȳ`` still contains noise; see :func:`cc_norm`.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons), same units.

    Returns:
        CCabs per neuron, shape (n_neurons,), dimensionless, in [-1, 1].

    Raises:
        ValueError: On wrong or mismatched shapes (both are named), too few repeats or
            samples, or non-finite values.

    Examples:
        >>> r = np.array([[[0.0], [2.0], [4.0]], [[2.0], [2.0], [6.0]]])
        >>> cc_abs(r, np.array([[1.0], [2.0], [5.0]]))
        array([1.])
    """
    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    return _pearson(repeats.mean(axis=0), predictions)


def cc_max(repeats: ArrayLike) -> np.ndarray:
    """Noise ceiling of CCabs per neuron: ``CCmax = sqrt(SP / Var(ȳ))`` (Schoppe et al., 2016).

    The highest correlation with ``ȳ`` that a noise-free prediction of the signal can
    reach given the trial-to-trial noise, with SP from :func:`signal_power` (ddof 0
    throughout). ``CCmax`` is at most 1.

    Policy: where ``SP <= 0`` (no detectable signal, including a constant ``ȳ``) the
    ceiling is undefined and NaN is returned.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).

    Returns:
        CCmax per neuron, shape (n_neurons,), dimensionless, in (0, 1], NaN where
        undefined.

    Raises:
        ValueError: On a non-3-D array, too few repeats or samples, or non-finite values.

    Examples:
        >>> cc_max(np.array([[[0.0], [2.0]], [[2.0], [4.0]]]))  # SP = 1, Var(ȳ) = 1
        array([1.])
    """
    sp, power_of_mean = _signal_power(_as_repeats(repeats))
    defined = sp > 0
    ratio = np.divide(sp, power_of_mean, out=np.full_like(sp, np.nan), where=defined)
    # SP <= Var(ȳ) always (mean_k P(r_k) >= P(ȳ)); the clip only removes rounding.
    return np.sqrt(np.minimum(ratio, 1.0))


def cc_norm(repeats: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Normalised correlation coefficient per neuron (Schoppe et al., 2016).

    ::

        CCnorm = Cov(ȳ, ŷ) / sqrt(SP · Var(ŷ)) = CCabs / CCmax

    (covariance and variances over samples with ddof 0, SP from :func:`signal_power`). It
    estimates the correlation between the prediction and the noise-free signal, so it is
    not biased low by the recording noise as :func:`cc_abs` is. Because SP is an estimate,
    CCnorm can exceed 1 (or fall below -1), mostly for neurons with little signal.

    Policy: NaN where ``SP <= 0`` (undefined; such neurons are usually excluded);
    otherwise 0 for a constant prediction (the convention of :func:`correlation`).

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons), same units.

    Returns:
        CCnorm per neuron, shape (n_neurons,), dimensionless, NaN where undefined.

    Raises:
        ValueError: On wrong or mismatched shapes (both are named), too few repeats or
            samples, or non-finite values.

    Examples:
        >>> r = np.array([[[0.0], [2.0]], [[2.0], [4.0]]])  # SP = 1
        >>> cc_norm(r, np.array([[0.0], [1.0]]))
        array([1.])
    """
    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    sp, _ = _signal_power(repeats)
    mean_response = repeats.mean(axis=0)
    pred_c = predictions - predictions.mean(axis=0)
    n_samples = predictions.shape[0]
    covariance = np.einsum("ij,ij->j", mean_response - mean_response.mean(axis=0), pred_c)
    covariance /= n_samples
    pred_var = np.einsum("ij,ij->j", pred_c, pred_c) / n_samples
    constant = np.ptp(predictions, axis=0) == 0
    result = np.zeros_like(sp)
    ok = (sp > 0) & ~constant & (pred_var > 0)
    result[ok] = covariance[ok] / np.sqrt(sp[ok] * pred_var[ok])
    result[~(sp > 0)] = np.nan
    return result


def _split_halves(n_used: int, n_splits: int, seed: int) -> np.ndarray:
    """Boolean membership (n, n_used) of half A for distinct complementary half-splits.

    A split and its complement are the same split, so half A always holds repeat 0. All
    ``C(n_used - 1, n_used / 2 - 1)`` splits are used when there are at most ``n_splits``
    of them (in lexicographic order); otherwise ``n_splits`` distinct ones are drawn at
    random with ``numpy.random.default_rng(seed)``.
    """
    half = n_used // 2
    total = math.comb(n_used - 1, half - 1)
    if total <= n_splits:
        rows = [(0, *rest) for rest in itertools.combinations(range(1, n_used), half - 1)]
        members = np.zeros((total, n_used), dtype=bool)
        members[np.repeat(np.arange(total), half), np.asarray(rows).reshape(-1)] = True
        return members
    rng = np.random.default_rng(seed)
    found = np.zeros((0, n_used), dtype=bool)
    while found.shape[0] < n_splits:
        perms = np.argsort(rng.random((2 * n_splits, n_used)), axis=1)[:, :half]
        batch = np.zeros((2 * n_splits, n_used), dtype=bool)
        batch[np.arange(2 * n_splits)[:, None], perms] = True
        batch[~batch[:, 0]] = ~batch[~batch[:, 0]]  # canonical: half A holds repeat 0
        found = np.concatenate([found, batch])
        _, first = np.unique(found, axis=0, return_index=True)
        found = found[np.sort(first)]  # distinct splits, in order of drawing
    return found[:n_splits]


def split_half_cc_max(repeats: ArrayLike, n_splits: int = 126, seed: int = 0) -> np.ndarray:
    """Split-half noise ceiling CCmax per neuron (Hsu, Borst & Theunissen, 2004).

    The repeats are split into two complementary halves A and B; ``CC_half`` is the
    Pearson correlation (over samples) between the mean response of A and that of B. It
    is averaged over up to ``n_splits`` distinct splits, and the Spearman-Brown
    correction gives the ceiling for the mean of all repeats::

        CCmax = sqrt(2 / (1 + 1 / |mean CC_half|))

    This is the order of deepSTRF's ``compute_CCmax`` (average ``CC_half``, then
    transform), but per neuron (deepSTRF averages ``CC_half`` over its whole batch before
    the transform). With an odd number of repeats the last repeat is dropped. With ``N``
    used repeats there are ``C(N, N/2) / 2`` distinct splits (126 for N = 10, all of
    which are used by default); if there are more than ``n_splits``, a random subset is
    drawn, deterministically for a given ``seed``. It estimates the same quantity as
    :func:`cc_max`; ``cc_abs / split_half_cc_max`` is deepSTRF's normalised CC.

    Computed from the per-neuron covariance matrix of the repeats (quadratic forms, no
    per-split copies of the data). A half whose mean response is constant counts as
    ``CC_half = 0``; a mean ``CC_half`` of 0 gives CCmax 0.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        n_splits: Maximum number of half-splits to average over, >= 1.
        seed: Seed of the split sampling (used only when not all splits are taken).

    Returns:
        CCmax per neuron, shape (n_neurons,), dimensionless, in [0, 1].

    Raises:
        ValueError: On a non-3-D array, too few repeats or samples, non-finite values, or
            ``n_splits < 1``.

    Examples:
        >>> r = np.array([[[0.0], [2.0], [4.0]], [[1.0], [3.0], [5.0]]])  # CC_half = 1
        >>> split_half_cc_max(r)
        array([1.])
    """
    repeats = _as_repeats(repeats)
    if int(n_splits) != n_splits or n_splits < 1:
        raise ValueError(f"n_splits must be a positive integer, got {n_splits!r}")
    n_used = repeats.shape[0] - repeats.shape[0] % 2
    used = repeats[:n_used]
    members = _split_halves(n_used, int(n_splits), seed)
    weights_a = members / (n_used // 2)
    weights_b = ~members / (n_used // 2)
    centred = used - used.mean(axis=1, keepdims=True)
    by_neuron = centred.transpose(2, 0, 1)  # (n_neurons, n_used, n_samples)
    cov = by_neuron @ by_neuron.transpose(0, 2, 1)  # (n_neurons, n_used, n_used)

    def quadratic(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        # left_s · C_n · right_s for every split s and neuron n -> (n_splits, n_neurons)
        return np.einsum("sk,nks->sn", left, cov @ right.T)

    cov_ab = quadratic(weights_a, weights_b)
    var_a = quadratic(weights_a, weights_a)
    var_b = quadratic(weights_b, weights_b)
    # A half mean is "constant" if its variance is at rounding level relative to the
    # repeats' own variance (or if every repeat of the neuron is exactly constant).
    scale = np.trace(cov, axis1=1, axis2=2) / n_used**2
    tiny = 1e-24 * scale
    varying = np.any(np.ptp(used, axis=1) > 0, axis=0)
    ok = (var_a > tiny) & (var_b > tiny) & varying
    cc_half = np.zeros_like(cov_ab)
    cc_half[ok] = cov_ab[ok] / np.sqrt(var_a[ok] * var_b[ok])
    mean_abs = np.abs(np.clip(cc_half, -1.0, 1.0).mean(axis=0))
    return np.sqrt(2.0 * mean_abs / (1.0 + mean_abs))


# ----------------------------------------------------------------------------------------
# auditory-encoding scores (deepSTRF's benchmark): Hsu-normalised CC, TTRC, Sahani-Linden
# predictive power, signal power explained, jackknife intervals of CCnorm
#
# Same layout as above: ``repeats`` (n_repeats, n_samples, n_neurons), ``predictions``
# (n_samples, n_neurons), powers over samples with ddof 0.
#
# References:
#     Pennington, J. R. & David, S. V. (2023). A convolutional neural network provides a
#     generalizable model of natural sound coding by neural populations in auditory cortex.
#     PLoS Comput. Biol. 19(5): e1011110.
#
#     Efron, B. & Stein, C. (1981). The jackknife estimate of variance. Ann. Stat. 9: 586-596.
# ----------------------------------------------------------------------------------------

__all__ += [
    "cc_max_schoppe",
    "cc_max_hsu",
    "cc_norm_hsu",
    "ttrc",
    "predictive_power",
    "signal_power_explained",
    "cc_norm_jackknife",
]

#: CCmax from the signal power (Schoppe et al. 2016); the same function as :func:`cc_max`.
cc_max_schoppe = cc_max
#: CCmax from split halves with Spearman-Brown (Hsu et al. 2004); :func:`split_half_cc_max`.
cc_max_hsu = split_half_cc_max


def cc_norm_hsu(repeats: ArrayLike, predictions: ArrayLike, n_splits: int = 126, seed: int = 0) -> np.ndarray:
    """deepSTRF's normalised CC per neuron: ``CCabs / CCmax_hsu`` (split-half ceiling).

    Policy: NaN where the split-half ceiling is 0 (no reliable signal).

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons).
        n_splits, seed: see :func:`split_half_cc_max`.

    Returns:
        CCnorm (Hsu) per neuron, shape (n_neurons,), NaN where undefined.

    Examples:
        >>> r = np.array([[[0.0], [2.0], [4.0]], [[1.0], [3.0], [5.0]]])
        >>> cc_norm_hsu(r, np.array([[1.0], [2.0], [3.0]]))
        array([1.])
    """
    ceiling = split_half_cc_max(repeats, n_splits=n_splits, seed=seed)
    raw = cc_abs(repeats, predictions)
    return np.divide(raw, ceiling, out=np.full_like(raw, np.nan), where=ceiling > 0)


def _z(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scores over the sample axis (-2) and whether each series varies (ddof 0)."""
    centred = values - values.mean(axis=-2, keepdims=True)
    sd = np.sqrt((centred**2).mean(axis=-2, keepdims=True))
    varies = sd > 0
    return np.divide(centred, sd, out=np.zeros_like(centred), where=varies), varies[..., 0, :]


def ttrc(repeats: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Trial-to-trial-reliability-corrected correlation per neuron (Pennington & David 2023).

    ::

        TTRC = mean_k corr(ŷ, r_k) / sqrt(mean_{k != j} corr(r_k, r_j))

    the single-trial prediction correlation divided by the square root of the mean pairwise
    correlation between repeats (all Pearson r over samples, ddof 0). Policy: NaN where the mean
    repeat-to-repeat correlation is <= 0; a constant repeat or prediction counts as r = 0.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons).

    Returns:
        TTRC per neuron, shape (n_neurons,), NaN where undefined.

    Examples:
        >>> r = np.array([[[0.0], [2.0], [4.0]], [[1.0], [3.0], [5.0]]])
        >>> ttrc(r, np.array([[1.0], [2.0], [3.0]]))
        array([1.])
    """
    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    n_repeats, n_samples = repeats.shape[:2]
    z_r, _ = _z(repeats)
    z_p, _ = _z(predictions)
    single = np.einsum("ksn,sn->kn", z_r, z_p) / n_samples  # (n_repeats, n_neurons)
    pairs = np.einsum("ksn,jsn->kjn", z_r, z_r) / n_samples
    off_diagonal = (pairs.sum(axis=(0, 1)) - np.einsum("kkn->n", pairs)) / (n_repeats * (n_repeats - 1))
    reliable = off_diagonal > 0
    return np.divide(single.mean(axis=0), np.sqrt(np.where(reliable, off_diagonal, 1.0)),
                     out=np.full(off_diagonal.shape, np.nan), where=reliable)


def predictive_power(repeats: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Sahani & Linden (2003) predictive power per neuron, from the single-trial error.

    ::

        TP = mean_k P(r_k)                 total power
        SP = (N P(ȳ) - TP) / (N - 1)       signal power (:func:`signal_power`)
        E  = mean_k P(r_k - ŷ)             power of the single-trial error
        PP = (TP - E) / SP

    The expected error of a prediction ŷ is P(s - ŷ) + NP, so PP estimates 1 - P(s - ŷ) / P(s):
    the fraction of the signal power the model explains (1 for ŷ = s, 0 for a constant ŷ at
    the mean, negative for worse). Algebraically equal to :func:`signal_power_explained`
    (``TP - E = 2 Cov(ȳ, ŷ) - P(ŷ) = P(ȳ) - P(ȳ - ŷ)``).

    deepSTRF's ``sahani_performance`` (urancon/deepSTRF ``metrics/metrics.py``, 83a4bd5)
    computes TP from the trial-averaged response, so its SP collapses to P(ȳ); that is not
    this definition (see the project note ``metrics.md``).

    Policy: NaN where SP <= 0.

    Args:
        repeats: Responses, shape (n_repeats >= 2, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons), in response units.

    Returns:
        Predictive power per neuron, shape (n_neurons,), at most about 1, NaN where undefined.

    Examples:
        >>> r = np.array([[[0.0], [2.0]], [[2.0], [4.0]]])  # s = (1, 3), SP = 1
        >>> predictive_power(r, np.array([[1.0], [3.0]]))
        array([1.])
    """
    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    sp, _ = _signal_power(repeats)
    total = repeats.var(axis=1).mean(axis=0)
    error = (repeats - predictions[None]).var(axis=1).mean(axis=0)
    return np.divide(total - error, sp, out=np.full_like(sp, np.nan), where=sp > 0)


def signal_power_explained(repeats: ArrayLike, predictions: ArrayLike) -> np.ndarray:
    """Signal power explained per neuron (Schoppe et al. 2016, ``calc_SPE.m``).

    ``SPE = (P(ȳ) - P(ȳ - ŷ)) / SP``, powers with ddof 0 (Schoppe's MATLAB uses ddof 1
    throughout, which gives the same ratio up to SP's (T-1)/T). Equal to
    :func:`predictive_power`. Policy: NaN where SP <= 0.

    Examples:
        >>> r = np.array([[[0.0], [2.0]], [[2.0], [4.0]]])
        >>> signal_power_explained(r, np.array([[1.0], [3.0]]))
        array([1.])
    """
    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    sp, power_of_mean = _signal_power(repeats)
    residual = (repeats.mean(axis=0) - predictions).var(axis=0)
    return np.divide(power_of_mean - residual, sp, out=np.full_like(sp, np.nan), where=sp > 0)


def cc_norm_jackknife(
    repeats: ArrayLike, predictions: ArrayLike, confidence: float = 0.95
) -> dict[str, np.ndarray]:
    """Leave-one-repeat-out jackknife of CCnorm per neuron, with a confidence interval.

    For each repeat k, :func:`cc_norm` of the other N - 1 repeats (``calc_CCnorm_jackknife`` of
    Schoppe's code keeps these values and their percentiles). The jackknife standard error is
    ``sqrt((N - 1) / N · Σ_k (θ_k - θ̄)²)`` and the interval ``CCnorm ± z · SE`` with z the
    normal quantile of ``confidence`` (Efron & Stein 1981). Needs N >= 3 repeats (each
    leave-one-out set must keep 2). Neurons with an undefined leave-one-out value get NaN.

    Args:
        repeats: Responses, shape (n_repeats >= 3, n_samples >= 2, n_neurons).
        predictions: Predictions, shape (n_samples, n_neurons).
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``{"cc_norm", "se", "low", "high"}`` each (n_neurons,), and ``"values"``
        (n_repeats, n_neurons) the leave-one-out estimates.

    Raises:
        ValueError: fewer than 3 repeats, or ``confidence`` outside (0, 1).
    """
    from statistics import NormalDist

    repeats, predictions = _check_repeats_and_predictions(repeats, predictions)
    n = repeats.shape[0]
    if n < 3:
        raise ValueError(f"the jackknife of CCnorm needs >= 3 repeats, got {n} (shape {repeats.shape})")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    keep = ~np.eye(n, dtype=bool)
    values = np.stack([cc_norm(repeats[keep[k]], predictions) for k in range(n)])  # loop over repeats
    estimate = cc_norm(repeats, predictions)
    se = np.sqrt((n - 1) / n * ((values - values.mean(axis=0)) ** 2).sum(axis=0))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return {"cc_norm": estimate, "se": se, "low": estimate - z * se, "high": estimate + z * se, "values": values}

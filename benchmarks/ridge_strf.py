"""Closed-form ridge STRF against the same linear STRF fitted by gradient descent (no database).

One simulated dataset (`neurofit.synthetic_strf`, by default natural-like sounds: 20 neurons,
18 bands, 15 lags, 60 train clips of 200 bins) and one linear STRF model (`neurofit.strf_linear`)
fitted two ways, in the same run:

* ``neurofit.ridge_strf``: XᵀX eigendecomposed once, a path of 6 penalties λ, each neuron keeping
  the λ of its best validation CCnorm (best of ``--repeats`` timings).
* ``neurofit.auditory`` (MSE, AdamW, deepSTRF's fitter): epochs until the mean validation CCnorm
  reaches a fraction of the ridge fit's (1.0, 0.99 and 0.95 are reported); early stopping is off
  (patience = ``--max-epochs``) so that a plateau does not end the race early. Timed from the
  call of the trainer to the end of the epoch whose validation reached the target, after an
  untimed one-epoch warm-up.

Prints seconds, the ratio (gradient / ridge) and both models' test CCnorm. Threads are pinned to
one (``OMP_NUM_THREADS`` and torch), so the ratio measures the method, not the core count.

Usage: .venv/bin/python benchmarks/ridge_strf.py [--stimulus natural|drc] [--max-epochs 300] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch are imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

FRACTIONS = (0.95, 0.99, 1.0)


def ridge_fit(data, repeats: int):
    """Best-of-``repeats`` seconds of the ridge fit, its validation CCnorm and the fitted model."""
    from neurofit.models.auditory import build_strf_linear
    from neurofit.pipelines.trainers.auditory import train_ridge_strf
    from neurofit.pipelines.training import RunContext

    times = []
    for _ in range(repeats):
        model = build_strf_linear(data.info, 0, n_lags=data.info.extra["strf_lags"])
        started = time.perf_counter()
        result = train_ridge_strf(model, data, 0, RunContext())
        times.append(time.perf_counter() - started)
    return min(times), result.score, result.model


def gradient_fit(data, target: float, max_epochs: int):
    """Seconds after which the gradient fit first reached each fraction of ``target``, and its model."""
    from neurofit.models.auditory import build_strf_linear
    from neurofit.pipelines.seeding import set_seed
    from neurofit.pipelines.trainers.auditory import train_auditory
    from neurofit.pipelines.training import Preempted, RunContext

    reached: dict[float, tuple[float, int]] = {}
    curve: list[float] = []
    started = time.perf_counter()

    def on_epoch(row):
        curve.append(row["validation_score"])
        for fraction in FRACTIONS:
            if fraction not in reached and row["validation_score"] >= fraction * target:
                reached[fraction] = (time.perf_counter() - started, row["epoch"])

    # Warm-up (first convolutions, loader start), untimed, as the ridge fit is timed warm too.
    train_auditory(build_strf_linear(data.info, 0, n_lags=data.info.extra["strf_lags"]), data, 0, RunContext(),
                   max_epochs=1)
    set_seed(0)
    model = build_strf_linear(data.info, 0, n_lags=data.info.extra["strf_lags"])
    context = RunContext(on_epoch=on_epoch, stop_requested=lambda: 1.0 in reached)
    started = time.perf_counter()
    try:
        train_auditory(model, data, 0, context, loss="mse", max_epochs=max_epochs, patience=max_epochs)
    except Preempted:  # the target was reached: the race is over
        pass
    return reached, time.perf_counter() - started, curve, model


def test_cc_norm(model, data) -> float:
    from neurofit.pipelines.performance import evaluate

    scores = evaluate(model, data, "cpu", "test")
    return float(np.nanmean(np.concatenate([s["cc_norm"] for s in scores.values()])))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stimulus", choices=["natural", "drc"], default="natural")
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from neurofit.datasets.auditory import build_synthetic_strf

    data = build_synthetic_strf(0, stimulus=args.stimulus)
    ridge_seconds, target, ridge_model = ridge_fit(data, args.repeats)
    reached, gradient_seconds, curve, gradient_model = gradient_fit(data, target, args.max_epochs)

    print(f"linear STRF, {args.stimulus} sounds: {data.info.n_neurons['session_0']} neurons, "
          f"{data.info.extra['strf_lags']} lags; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, torch threads 1")
    print(f"  ridge (closed form, 6 lambdas)   {ridge_seconds:8.2f} s   validation CCnorm {target:.4f} "
          f"(best of {args.repeats})")
    for fraction in FRACTIONS:
        if fraction in reached:
            seconds, epoch = reached[fraction]
            print(f"  gradient descent to {fraction:4.0%} of it  {seconds:8.2f} s   epoch {epoch:4d}   "
                  f"ratio {seconds / ridge_seconds:7.1f}x")
        else:
            print(f"  gradient descent to {fraction:4.0%} of it  not reached in {len(curve)} epochs "
                  f"({gradient_seconds:.1f} s; best validation CCnorm {max(curve):.4f}): "
                  f"ratio > {gradient_seconds / ridge_seconds:.1f}x")
    print(f"  test CCnorm: ridge {test_cc_norm(ridge_model, data):.4f}, "
          f"gradient descent {test_cc_norm(gradient_model, data):.4f}")


if __name__ == "__main__":
    main()

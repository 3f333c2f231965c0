"""Training-step time of neurofit's trainer against the same model in a bare PyTorch loop.

Both train the same video model (factorised 3D core + Gaussian readouts + shifter + gain
modulator) on the same simulated dLGN loaders (two sessions) for ``--epochs`` epochs with Adam
and a Poisson loss. The bare loop is what a lab would write by hand: interleave sessions, forward,
drop the burn-in frames, loss, backward, step, and no validation. neurofit's trainer is
``neurofit.pipelines.trainers.poisson.train_poisson`` with early stopping switched off by a huge
patience; the time of its validation passes (which a bare loop does not do) is measured
separately and subtracted, so the ratio compares training steps only.

Target: ratio <= 1.05. No database is used.

Usage: python benchmarks/video_training_step.py [--epochs 3] [--repeats 2] [--model neurofit.factorized_3d]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from neurofit.pipelines.registry import resolve
from neurofit.pipelines.seeding import set_seed
from neurofit.pipelines.trainers.poisson import train_poisson, validation_correlation
from neurofit.pipelines.training import TrainingContext, build_data, build_model

DATA = ("neurofit.synthetic_dlgn", {"n_train_clips": 48, "subsequence_length": 40, "burn_in": 10})


def bare_loop(model: nn.Module, data, epochs: int, lr: float) -> None:
    burn_in = data.info.burn_in
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        iterators = {s: iter(loader) for s, loader in data.loaders["train"].items()}
        while iterators:
            for session in list(iterators):
                try:
                    batch = next(iterators[session])
                except StopIteration:
                    del iterators[session]
                    continue
                inputs = batch.pop("inputs")
                responses = batch.pop("responses")[:, burn_in:]
                extra = {k: v for k, v in batch.items() if k in ("behavior", "pupil_center", "optogenetic_signal")}
                output = model(inputs, session, **extra)[:, burn_in:]
                loss = nn.functional.poisson_nll_loss(output, responses, log_input=False, reduction="sum") / (
                    responses.shape[0] * responses.shape[1])
                loss = loss + model.regularizer(session)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="neurofit.factorized_3d")
    args = parser.parse_args()
    torch.set_num_threads(1)
    resolve("model", args.model)  # registers the built-ins
    data = build_data(*DATA, seed=0)
    lr = 0.005

    def fresh_model():
        model = build_model(args.model, {}, data.info, seed=0)
        set_seed(0)
        return model

    timings = {"bare": [], "neurofit": [], "validation": []}
    for _ in range(args.repeats):
        model = fresh_model()
        started = time.perf_counter()
        bare_loop(model, data, args.epochs, lr)
        timings["bare"].append(time.perf_counter() - started)

        model = fresh_model()
        started = time.perf_counter()
        validation_correlation(model, data.loaders["validation"], "cpu", data.info.burn_in)
        timings["validation"].append(time.perf_counter() - started)

        model = fresh_model()
        started = time.perf_counter()
        train_poisson(model, data, 0, TrainingContext(device="cpu"), max_epochs=args.epochs, lr=lr,
                      patience=1000)
        timings["neurofit"].append(time.perf_counter() - started)

    bare = min(timings["bare"])
    validation = min(timings["validation"])
    # train_poisson validates once before training and after every epoch.
    ours = min(timings["neurofit"]) - (args.epochs + 1) * validation
    print(f"model {args.model}, {args.epochs} epochs, best of {args.repeats}, 1 thread")
    print(f"bare PyTorch loop:               {bare:8.2f} s")
    print(f"neurofit train_poisson (total):  {min(timings['neurofit']):8.2f} s")
    print(f"  of which validation passes:    {(args.epochs + 1) * validation:8.2f} s ({args.epochs + 1} x {validation:.2f} s)")
    print(f"  training steps:                {ours:8.2f} s")
    print(f"ratio neurofit / bare (steps):   {ours / bare:8.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()

"""The default thread count of workers: 2 workers on 2 cores, with and without it.

Each `neurofit worker` now sets torch's CPU threads to the machine's cores divided by the live
workers on it (1 each here). Before, torch started one thread per core in each worker: 2
workers ran 4 threads on 2 cores. Both configurations run the same short trainings, alternating
rounds so drifts in machine load hit both; the ratio is jobs/s with the default over jobs/s
with ``--threads <cores>`` (the old behaviour). Target: > 1.

Usage: python benchmarks/worker_threads.py [--rounds 2] [--jobs 6]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import isolated_prefix

SPEC = ({"n_train_images": 300}, {"hidden_channels": 8, "layers": 2}, {"max_epochs": 3, "patience": 100})


def run_two_workers(prefix, where, threads):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["NEUROFIT_PREFIX"] = prefix
    extra = ["--threads", str(threads)] if threads else []
    started = time.perf_counter()
    workers = [
        subprocess.Popen([sys.executable, "-m", "neurofit.schemas.cli", "worker", "TrainedModel", "--device", "cpu",
                          "--where", where, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=1800) == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=6)
    args = parser.parse_args()
    prefix = isolated_prefix()
    from neurofit import schemas

    schemas.activate(prefix)
    data, model, trainer = SPEC
    dataset = schemas.Dataset.add("neurofit.synthetic_responses", data)
    network = schemas.Model.add("neurofit.gaussian_cnn", model)
    cores = len(os.sched_getaffinity(0))
    rates = {"default": [], "oversubscribed": []}
    seed = 0
    for _ in range(args.rounds):
        for name, threads in (("default", None), ("oversubscribed", cores)):
            fit = schemas.Trainer.add("neurofit.poisson", {**trainer, "lr": 0.01 + 1e-6 * seed})  # fresh jobs
            schemas.TrainingSelection.add_grid(dataset, network, fit, list(range(seed, seed + args.jobs)))
            seconds = run_two_workers(prefix, f"trainer_hash = '{fit['trainer_hash']}'", threads)
            rates[name].append(args.jobs / seconds)
            seed += args.jobs
    default, old = statistics.median(rates["default"]), statistics.median(rates["oversubscribed"])
    print(f"2 workers on {cores} cores, {args.jobs} jobs x {args.rounds} rounds: default threads "
          f"{default:.3f} jobs/s, {cores} threads per worker {old:.3f} jobs/s, ratio {default / old:.2f}")
    schemas.schema.drop(prompt=False)


if __name__ == "__main__":
    main()

"""The worker machinery's cost: per-job overhead against direct training, and 1 vs 2 workers.

Per-job overhead: the same ~10 s training (the demo's data, a fixed number of epochs) called
directly through `neurofit.pipelines.training.train`, and run by `run_worker` (reservation,
heartbeats, per-epoch checkpoints in the object store, result insertion). Target: <= 1.02.

Throughput: N short trainings done by one worker process, then by two at once (each limited
to one thread so both configurations use the same CPU budget per worker).

Usage: python benchmarks/worker_throughput.py [--repeats 3] [--jobs 8]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import isolated_prefix

from neurofit.pipelines.training import RunContext

LONG = ({}, {"hidden_channels": 8, "layers": 2}, {"max_epochs": 17, "patience": 100})  # ~10 s on 2 cores
SHORT = ({"n_train_images": 300}, {"hidden_channels": 8, "layers": 2}, {"max_epochs": 4, "patience": 100})


def select(schemas, spec, seeds):
    data, model, trainer = spec
    return schemas.TrainingSelection.add_grid(
        schemas.Dataset.add("neurofit.synthetic_responses", data),
        schemas.Model.add("neurofit.gaussian_cnn", model),
        schemas.Trainer.add("neurofit.poisson", trainer), seeds,
    )


def run_workers(n, env):
    started = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, "-m", "neurofit.schemas.cli", "worker", "TrainedModel", "--device", "cpu"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]
    for process in processes:
        process.wait(timeout=1800)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()

    prefix = isolated_prefix()
    os.environ["NEUROFIT_PREFIX"] = prefix
    from neurofit import schemas
    from neurofit.pipelines import training

    schemas.activate(prefix)
    keys = select(schemas, LONG, list(range(args.repeats)))

    def direct(key):
        training.train("neurofit.synthetic_responses", schemas.Dataset.config(key), "neurofit.gaussian_cnn",
                       schemas.Model.config(key), "neurofit.poisson", schemas.Trainer.config(key), key["seed"],
                       RunContext())

    direct(keys[0])  # warm-up
    # Paired and alternating, so drifts in machine load hit both sides; each worker run pays its
    # start-up (registration, queue refresh), which a long-running worker pays once.
    direct_times, worker_times = [], []
    for key in keys:
        started = time.perf_counter()
        direct(key)
        direct_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        summary = schemas.run_worker("TrainedModel", key, device="cpu", progress=False)
        worker_times.append(time.perf_counter() - started)
        assert summary.done["TrainedModel"] == 1
    d = statistics.median(direct_times)
    overhead = statistics.median(w - x for w, x in zip(worker_times, direct_times))
    print(f"per-job ({len(keys)} pairs): direct {d:.2f} s, median paired overhead {overhead:+.3f} s, "
          f"ratio worker/direct = {(d + overhead) / d:.3f} "
          f"(checkpoint interval {os.environ.get('NEUROFIT_CHECKPOINT_INTERVAL', 30)} s)")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    select(schemas, SHORT, list(range(1000, 1000 + args.jobs)))
    one = run_workers(1, env)
    select(schemas, SHORT, list(range(2000, 2000 + args.jobs)))
    two = run_workers(2, env)
    print(f"throughput ({args.jobs} jobs, 1 thread per worker): 1 worker {args.jobs / one:.2f} jobs/s, "
          f"2 workers {args.jobs / two:.2f} jobs/s, ratio 2/1 = {one / two:.2f}")
    schemas.schema.drop(prompt=False)


if __name__ == "__main__":
    main()

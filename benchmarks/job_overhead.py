"""Per-job overhead of populate() against the same training called directly.

Usage: python benchmarks/job_overhead.py [--repeats 3]
"""

import argparse
import statistics
import time

from _common import isolated_prefix

from neurofit.pipelines.training import RunContext

DATA = {}  # the demo's dataset: ~1 s per epoch on 2 cores
MODEL = {"hidden_channels": 8, "layers": 2}
TRAINER = {"max_epochs": 10, "patience": 100}  # fixed epoch count (~10 s): both paths do identical work


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from neurofit import schemas
    from neurofit.pipelines import training

    schemas.activate(isolated_prefix())
    dataset = schemas.Dataset.add("neurofit.synthetic_responses", DATA)
    model = schemas.Model.add("neurofit.gaussian_cnn", MODEL)
    trainer = schemas.Trainer.add("neurofit.poisson", TRAINER)
    keys = schemas.TrainingSelection.add_grid(dataset, model, trainer, list(range(args.repeats)))

    def run_direct(key):
        training.train("neurofit.synthetic_responses", schemas.Dataset.config(key),
                       "neurofit.gaussian_cnn", schemas.Model.config(key),
                       "neurofit.poisson", schemas.Trainer.config(key), key["seed"], RunContext())

    run_direct(keys[0])  # warm-up: imports and first-call allocations count for neither side
    direct, managed = [], []
    for key in keys:
        started = time.perf_counter()
        run_direct(key)
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        schemas.populate("TrainedModel", key, display_progress=False, suppress_errors=False)
        managed.append(time.perf_counter() - started)
    schemas.schema.drop(prompt=False)

    d, m = statistics.median(direct), statistics.median(managed)
    print(f"direct training (median of {len(keys)}): {d:.2f} s")
    print(f"through populate()            : {m:.2f} s")
    print(f"per-job overhead: {m - d:+.3f} s, ratio populate/direct = {m / d:.3f}")


if __name__ == "__main__":
    main()

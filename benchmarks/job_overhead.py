"""Per-job overhead of populate() against the same training called directly.

Usage: python benchmarks/job_overhead.py [--repeats 3]
"""

import argparse
import statistics
import time

from _common import isolated_prefix

DATA = {"n_neurons": 30, "n_train_images": 600, "n_validation_images": 100, "n_test_images": 30, "n_repeats": 5}
MODEL = {"hidden_channels": 8, "layers": 2}
TRAINER = {"max_epochs": 5, "patience": 100}  # fixed epoch count: both paths do identical work


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

    direct, managed = [], []
    for key in keys:
        started = time.perf_counter()
        training.train("neurofit.synthetic_responses", schemas.Dataset.config(key),
                       "neurofit.gaussian_cnn", schemas.Model.config(key),
                       "neurofit.poisson", schemas.Trainer.config(key), key["seed"], device="cpu")
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

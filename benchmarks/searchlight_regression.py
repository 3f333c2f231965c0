"""Searchlight regression and variance partitioning: one batched solve against a per-searchlight loop.

1000 searchlights x 50 images (1225 pairs) regressed on 3 groups x 2 layer RDMs (the
dnn-to-brain design: 2-D, 3-D and semantic networks, two layers each) and partitioned into
its 7 parts. Baseline: `variance_partitioning` called once per searchlight, as the public
code loops. Candidate: `batched_variance_partitioning` on all searchlights at once. Both run
in this process, on the same data; the script prints seconds (minimum over repeats), the
ratio and the largest disagreement (no database).

Usage: python benchmarks/searchlight_regression.py [--searchlights 1000] [--images 50] [--repeats 3]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from neurofit.pipelines.analysis.rsa_regression import (  # noqa: E402
    batched_variance_partitioning,
    variance_partitioning,
)


def data(n_searchlights: int, n_images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_pairs = n_images * (n_images - 1) // 2
    latent = rng.standard_normal((6, n_pairs))
    groups = {name: np.column_stack([latent[2 * k], latent[2 * k] + 0.5 * latent[2 * k + 1]])
              for k, name in enumerate(("2D", "3D", "semantic"))}
    mixing = rng.dirichlet(np.ones(3), n_searchlights)
    targets = mixing @ latent[::2] + rng.standard_normal((n_searchlights, n_pairs))
    return targets, groups


def best_of(repeats: int, function):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searchlights", type=int, default=1000)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    targets, groups = data(args.searchlights, args.images)

    def loop():
        return np.array([[v for v in variance_partitioning(t, groups)["unique"].values()] for t in targets]).T

    loop_s, unique_loop = best_of(args.repeats, loop)
    batched_s, out = best_of(args.repeats, lambda: batched_variance_partitioning(targets, groups))
    error = float(np.abs(out["unique"] - unique_loop).max())
    print(f"{args.searchlights} searchlights x {args.images} images, 3 groups x 2 RDMs, 7 subset models")
    print(f"per-searchlight loop : {loop_s:8.3f} s")
    print(f"one batched solve    : {batched_s:8.3f} s")
    print(f"ratio (loop / batched): {loop_s / batched_s:.1f}x; largest |difference| of unique variance {error:.1e}")


if __name__ == "__main__":
    main()

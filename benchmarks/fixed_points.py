"""Fixed-point search: all initial states in one batched problem vs one optimisation per state.

A GRU(64) (random weights scaled to have many slow points; no training needed for timing) is
searched from K initial states with the same Adam settings both ways; the ratio is
one-by-one time / batched time, measured in the same run. Usage:
``OMP_NUM_THREADS=1 python benchmarks/fixed_points.py [K] [n_iters]``.
"""

import sys
import time

import numpy as np
import torch

from neurofit.pipelines.analysis import fixed_points as fp


def main(k: int = 64, n_iters: int = 300) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(3, 64)
    initial = np.random.default_rng(0).normal(0, 0.5, (k, 64))
    inputs = np.zeros(3)
    step = lambda h, u: cell(u, h)  # noqa: E731
    fp.find_fixed_points(step, initial[:2], inputs, n_iters=5)  # warm-up
    timings = {}
    for name, search in (("batched", fp.find_fixed_points), ("one_by_one", fp.find_fixed_points_one_by_one)):
        started = time.perf_counter()
        result = search(step, initial, inputs, n_iters=n_iters, tolerance=0.0)
        timings[name] = time.perf_counter() - started
        timings[f"{name}_converged"] = int(result["converged"].sum())
    timings["ratio"] = timings["one_by_one"] / timings["batched"]
    print(f"K={k} states, {n_iters} iterations: batched {timings['batched']:.2f} s, one by one "
          f"{timings['one_by_one']:.2f} s, ratio {timings['ratio']:.1f}x "
          f"(converged {timings['batched_converged']} / {timings['one_by_one_converged']})")
    return timings


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

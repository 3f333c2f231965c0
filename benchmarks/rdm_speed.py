"""Speed and agreement of neurofit's RSA functions against rsatoolbox 0.3.2.

Times (minimum over --repeats runs) on random float64 data:

* correlation-distance and (squared) euclidean RDMs of a 4000 x 512 pattern matrix,
  ``neurofit...rdm.rdm`` vs ``rsatoolbox.rdm.calc_rdm``;
* spearman, kendall-tau-a and whitened-cosine comparisons of two 4000-stimulus RDMs
  (7,998,000 entries each), ``compare_rdms`` vs ``rsatoolbox.rdm.compare``;
* correlation RDMs of all layers of a network on 4000 stimuli (widths
  64, 128, 256, 512, 512, 256), total time.

Prints each time, the speed-up (rsatoolbox time / ours) and the largest absolute
difference between the two results. No database is used.

Usage: python benchmarks/rdm_speed.py [--repeats 3] [--n-stimuli 4000] [--n-channels 512]
"""

import argparse
import time
import warnings

import numpy as np

LAYER_WIDTHS = (64, 128, 256, 512, 512, 256)


def best_time(function, repeats: int):
    """Minimum wall time over ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def report(task: str, ours: float, theirs: float | None, difference: float | None) -> None:
    if theirs is None:
        print(f"{task:<40} {ours:8.3f} s")
        return
    print(
        f"{task:<40} {ours:8.3f} s {theirs:8.3f} s   x{theirs / ours:6.2f}   "
        f"max|diff| {difference:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-stimuli", type=int, default=4000)
    parser.add_argument("--n-channels", type=int, default=512)
    args = parser.parse_args()

    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import RDMs, calc_rdm, compare

    from neurofit.pipelines.analysis.rdm import rdm
    from neurofit.pipelines.analysis.rdm_comparison import compare_rdms

    warnings.simplefilter("ignore")  # rsatoolbox's descriptor-casting warnings
    rng = np.random.default_rng(0)
    n, repeats = args.n_stimuli, args.repeats
    patterns = rng.standard_normal((n, args.n_channels))
    dataset = Dataset(patterns)
    print(f"{n} stimuli x {args.n_channels} channels, float64, min of {repeats} runs")
    print(f"{'task':<40} {'neurofit':>10} {'rsatoolbox':>10}   speed-up")

    results = {}
    for method in ("correlation", "euclidean"):
        ours_t, ours = best_time(lambda: rdm(patterns, method), repeats)  # noqa: B023 (called at once)
        theirs_t, theirs = best_time(
            lambda: calc_rdm(dataset, method=method).get_vectors()[0], repeats  # noqa: B023 (called at once)
        )
        report(f"{method} RDM", ours_t, theirs_t, float(np.abs(ours - theirs).max()))
        results[method] = ours

    # two RDMs to compare: the correlation RDM and that of a noisy copy of the patterns
    rdm_a = results["correlation"]
    rdm_b = rdm(patterns + rng.standard_normal(patterns.shape), "correlation")
    rdms_a, rdms_b = RDMs(rdm_a[None, :]), RDMs(rdm_b[None, :])
    for ours_name, theirs_name in (
        ("spearman", "spearman"),
        ("kendall-tau-a", "tau-a"),
        ("whitened-cosine", "cosine_cov"),
    ):
        ours_t, ours = best_time(lambda: compare_rdms(rdm_a, rdm_b, ours_name), repeats)  # noqa: B023 (called at once)
        theirs_t, theirs = best_time(lambda: compare(rdms_a, rdms_b, theirs_name), repeats)  # noqa: B023 (called at once)
        report(
            f"compare {ours_name} ({rdm_a.size} entries)",
            ours_t,
            theirs_t,
            float(np.abs(ours - theirs).max()),
        )

    layers = [
        np.maximum(rng.standard_normal((n, width)) + 0.5, 0.0) for width in LAYER_WIDTHS
    ]
    layer_datasets = [Dataset(layer) for layer in layers]

    def ours_all():
        return [rdm(layer, "correlation") for layer in layers]

    def theirs_all():
        return [calc_rdm(ds, method="correlation").get_vectors()[0] for ds in layer_datasets]

    ours_t, ours = best_time(ours_all, repeats)
    theirs_t, theirs = best_time(theirs_all, repeats)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    report(f"all {len(LAYER_WIDTHS)} layer RDMs (correlation)", ours_t, theirs_t, difference)
    print(f"layer widths {LAYER_WIDTHS}; target for ours: < 10 s")


if __name__ == "__main__":
    main()

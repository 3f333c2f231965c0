"""Linear CKA: neurofit's cka functions against the n x n Gram form (no database).

1. One pair, 4000 x 512 vs 4000 x 512: ``linear_cka`` (feature-space form) against the
   Gram form of Kornblith et al.'s reference (``gram_linear`` + ``center_gram`` + ``cka``).
2. Six layers of widths 64, 128, 256, 512, 512, 256 at n = 4000, every pair (6 x 6):
   ``cka_matrix`` (each layer prepared once, symmetry used) against (a) looping over all
   36 pairs with the Gram form, as most CKA scripts do, and (b) the Gram form with each
   layer's centred Gram computed once and only the 21 upper-triangle pairs.

Prints seconds (minimum over repeats) and ratios, and the largest disagreement.

Usage: python benchmarks/cka_speed.py [--repeats 3] [--n 4000]
"""

import argparse
import time

import numpy as np

WIDTHS = [64, 128, 256, 512, 512, 256]


def gram_linear(x):
    return x @ x.T


def center_gram(gram):
    gram = gram.copy()
    means = np.mean(gram, 0)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def cka_gram(gram_x, gram_y):
    """Kornblith's cka(gram_x, gram_y) (biased): centre both Gram matrices, cosine."""
    gram_x = center_gram(gram_x)
    gram_y = center_gram(gram_y)
    return gram_x.ravel() @ gram_y.ravel() / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y))


def reference_pair(x, y):
    return cka_gram(gram_linear(x), gram_linear(y))


def reference_matrix_naive(layers):
    size = len(layers)
    out = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            out[i, j] = reference_pair(layers[i], layers[j])
    return out


def reference_matrix_cached(layers):
    grams = [center_gram(gram_linear(x)) for x in layers]
    norms = [np.linalg.norm(g) for g in grams]
    size = len(layers)
    out = np.empty((size, size))
    for i in range(size):
        for j in range(i, size):
            out[i, j] = out[j, i] = grams[i].ravel() @ grams[j].ravel() / (norms[i] * norms[j])
    return out


def best_of(repeats, function, *args):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=4000)
    args = parser.parse_args()

    from neurofit.pipelines.analysis.cka import cka_matrix, linear_cka

    rng = np.random.default_rng(0)
    n = args.n
    x = rng.standard_normal((n, 512))
    y = np.tanh(x @ rng.standard_normal((512, 512)) / 20) + 0.5 * rng.standard_normal((n, 512))
    linear_cka(x[:100], y[:100])  # warm-up (imports, BLAS threads)

    ours, value = best_of(args.repeats, linear_cka, x, y)
    ref, expected = best_of(args.repeats, reference_pair, x, y)
    print(f"linear CKA, one pair {n}x512 vs {n}x512 (best of {args.repeats})")
    print(f"  linear_cka (feature form) {ours:8.3f} s")
    print(f"  Gram form (n x n)         {ref:8.3f} s   ratio {ref / ours:6.1f}x")
    print(f"  |difference| = {abs(value - expected):.1e}   (CKA = {value:.6f})")

    base = rng.standard_normal((n, 32))
    layers = [
        np.maximum(base @ rng.standard_normal((32, w)) + rng.standard_normal((n, w)), 0)
        for w in WIDTHS
    ]
    ours, matrix = best_of(args.repeats, cka_matrix, layers)
    cached, expected_cached = best_of(1, reference_matrix_cached, layers)
    naive, expected_naive = best_of(1, reference_matrix_naive, layers)
    print(f"cka_matrix, 6 layers of widths {WIDTHS}, n = {n}")
    print(f"  cka_matrix                          {ours:8.3f} s (best of {args.repeats})")
    print(f"  Gram form, 36 pairs, naive loop     {naive:8.3f} s   ratio {naive / ours:6.1f}x")
    print(f"  Gram form, Grams once, 21 pairs     {cached:8.3f} s   ratio {cached / ours:6.1f}x")
    diff = max(np.abs(matrix - expected_naive).max(), np.abs(matrix - expected_cached).max())
    print(f"  max |difference| = {diff:.1e}")


if __name__ == "__main__":
    main()

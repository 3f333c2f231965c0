"""Tuning all layers of one DeepDraw network against a per-unit lstsq loop.

One untrained spatial_temporal network ([8, 16] / [16, 32], T = 64) is probed with 1020 PCR
test trajectories (the size of ``benchmarks/tuning_speed.py``); every conv layer's units (channel x muscle row) are fitted to velocity,
position and acceleration at the layers' time centres (13 models):

* neurofit: ``fit_tuning`` once per layer (every unit in one batched solve per model);
* baseline: per unit and model one ``np.linalg.lstsq`` plus R², the DeepDraw way (the loop of
  ``benchmarks/tuning_speed.py``), with the designs and split precomputed.

Both get the layers' activations as the network gives them, float32 (``fit_tuning`` computes in
float64 block by block); the loop's copy is converted to float64 before its clock starts, since
``lstsq`` would otherwise solve in float32.

The two must agree (R² to 1e-8). Prints both times (the batched one as the median of
``REPEATS`` runs) and the ratio (target >= 50x).
Single-threaded BLAS. Run ``.venv/bin/python benchmarks/deepdraw_tuning.py``.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from neurofit.datasets import pcr  # noqa: E402
from neurofit.models import deepdraw  # noqa: E402
from neurofit.pipelines import extract  # noqa: E402
from neurofit.pipelines.analysis import tuning  # noqa: E402

# The batched fit takes a fraction of a second, so one context switch on the shared cores shows
# in a single run: its time is the median of this many runs (the loop's ~10 s average out).
REPEATS = 5


def layers_and_features():
    torch.set_num_threads(1)
    bundle = pcr.build_pcr_characters(0, n_per_class=60, n_time=64, planes=["horizontal"], n_start_points=1,
                                      max_noise=0.0, validation_fraction=0.05, test_fraction=0.85)
    x = np.concatenate([b["inputs"].numpy() for b in bundle.loaders["test"]["all"]])
    model = deepdraw.build_deepdraw_conv(bundle.info, 0).eval()
    names = model.analysis_layers
    acts = extract.extract_activations(model, x, names)
    described = extract.describe_layers(model, x, names)
    out = []
    for name in names:
        info = described[name]
        values = acts[name].reshape(len(x), *info.shape)
        values = np.moveaxis(values, 1 + list(info.axes).index("time"), 1).reshape(len(x), info.n_time, -1)
        centres = np.clip(np.round(np.asarray(info.time_centres)).astype(int), 0, 63)
        feats = {k: bundle.artefacts[f"test_{k}"][:, centres] for k in ("velocity", "position", "acceleration")}
        out.append((name, values, feats))  # float32, as the network (and the Tuning table) hands them over
    return out


def loop_fit(y, features, result):
    """Per unit and model: lstsq on the training samples, R² on the test samples."""
    is_train = np.isin(np.arange(y.shape[0]), result.train_trajectories)
    r2 = np.full((y.shape[2], len(result.model_names)), np.nan)
    for k, name in enumerate(result.model_names):
        feature, family = name.split("/")
        design = tuning.design_matrix(features[feature], family)
        ok = np.isfinite(design).all(axis=-1)
        tr, te = ok & is_train[:, None], ok & ~is_train[:, None]
        x_tr, x_te = design[tr], design[te]
        for u in range(y.shape[2]):
            beta = np.linalg.lstsq(x_tr, y[..., u][tr], rcond=None)[0]
            residual = y[..., u][te] - x_te @ beta
            total = ((y[..., u][te] - y[..., u][te].mean()) ** 2).sum()
            r2[u, k] = 1 - (residual**2).sum() / total if total > 0 else np.nan
    return r2


def main() -> dict:
    layers = layers_and_features()
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        results = [tuning.fit_tuning(y, f) for _, y, f in layers]
        runs.append(time.perf_counter() - started)
    batched = float(np.median(runs))
    as_float64 = [y.astype(np.float64) for _, y, _ in layers]  # lstsq would fit float32 in float32
    started = time.perf_counter()
    loops = [loop_fit(y, f, r) for y, (_, _, f), r in zip(as_float64, layers, results)]
    baseline = time.perf_counter() - started
    for r, loop in zip(results, loops):
        both = np.isfinite(loop) & np.isfinite(r.r2_test) & (r.r2_test != 1.0)
        np.testing.assert_allclose(r.r2_test[both], loop[both], atol=1e-8)
    n_units = sum(y.shape[2] for _, y, _ in layers)
    print(f"{len(layers)} layers, {n_units} units, {layers[0][1].shape[0]} trajectories, 13 models")
    print(f"batched fit_tuning: {batched:.3f} s (median of {REPEATS}); per-unit lstsq loop: {baseline:.2f} s; ratio {baseline / batched:.0f}x")
    return {"batched_s": batched, "loop_s": baseline, "ratio": baseline / batched, "n_units": n_units}


if __name__ == "__main__":
    main()

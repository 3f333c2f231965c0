"""One call that seeds every random number generator a training run draws from.

What ``set_seed`` makes reproducible:

* CPU: two runs with the same seed, code, data, torch version, machine type and thread count
  (``torch.get_num_threads()``) give bitwise identical weights;
  ``tests/unit/test_trainer_poisson.py`` checks this. A different thread count or CPU model may
  change the order of floating-point reductions and hence the last bits, which training can
  amplify over many epochs.
* GPU (CUDA), from PyTorch's reproducibility notes (not yet measured on a GPU in this project):
  seeding alone does NOT make training bitwise repeatable. cuDNN may pick a different
  convolution algorithm per run (``torch.backends.cudnn.benchmark``) and some algorithms are
  nondeterministic; the backward pass of ``grid_sample``, used by the Gaussian readouts, adds with
  atomics in arbitrary order. ``torch.use_deterministic_algorithms(True)`` (plus
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8``) removes the first source but makes ``grid_sample``'s
  backward raise. Expect run-to-run differences of the order of float32 rounding that training
  then amplifies; compare GPU runs by scores, not by weights.
* DataLoader worker processes (``num_workers > 0``): torch seeds ``random``, numpy and torch in
  each worker from a base seed drawn from the global torch RNG, so they follow ``set_seed``.
* Not covered: generators created with their own state, e.g. a ``torch.Generator`` passed to a
  DataLoader (it advances across epochs and is not reset by ``set_seed``) or
  ``np.random.default_rng()`` without a seed.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["set_seed", "get_rng_state", "set_rng_state"]


def set_seed(seed: int) -> None:
    """Seeds python ``random``, numpy's global RNG and torch (CPU and every CUDA device).

    Args:
        seed: integer in [0, 2**32 - 1] (numpy's legacy global RNG accepts no more).

    Raises:
        ValueError: if ``seed`` is not an integer in that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must lie in [0, 2**32 - 1], got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # torch.manual_seed already seeds CUDA lazily; the explicit call documents the intent and
    # covers devices initialised before this call.
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain values (``torch.load(weights_only=True)``-safe).

    Returns:
        ``{"torch": ByteTensor, "cuda": [ByteTensor per device] (empty unless CUDA was
        initialised), "python": {...}, "numpy": {...}}``, the integer arrays as int64 tensors.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        # Only when CUDA is initialised: querying it would otherwise start a context on every GPU,
        # and an uninitialised CUDA RNG is in the state ``set_seed`` leaves on resume anyway.
        "cuda": (
            [s.cpu() for s in torch.cuda.get_rng_state_all()]
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else []
        ),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `get_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state["cuda"])
    if cuda and torch.cuda.is_available():
        for index, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), index)
    python = state["python"]
    random.setstate((
        python["version"], tuple(int(x) for x in python["internal"].tolist()), python["gauss_next"]
    ))
    numpy = state["numpy"]
    np.random.set_state((
        numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
        numpy["has_gauss"], numpy["cached_gaussian"],
    ))

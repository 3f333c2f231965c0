"""Make neuralpredictors 0.3.0 (the newest release, 2022) importable and usable on Python 3.10+.

This module is the ONLY place in neurofit that patches neuralpredictors; every module that uses
neuralpredictors imports it first (``models/__init__.py`` does so for the whole package). Each fix
checks whether it is already in place, so importing or reloading this module twice is harmless.
See the neuralpredictors section of the project's dependency notes for how each defect was found.

Fixes:
    1. ``from collections import Iterable/Mapping`` (removed in Python 3.10): alias the ABCs.
    2. ``import torchvision`` at the top of ``layers/cores/conv2d.py``: no CPU torchvision wheel
       matches our torch, and only ``TransferLearningCore`` uses it, so register an empty stub when
       torchvision cannot be imported (only ``TransferLearningCore`` then fails, when built).
    3. ``layers/hermite.py`` passes numpy floats to ``math.factorial`` (TypeError on 3.10+), so
       ``RotationEquivariant2dCore`` cannot be built: give that module a ``math`` whose factorial
       casts to int.
    4. ``RotationEquivariant2dCore.laplace``/``group_sparsity`` read ``.conv`` (the layers are named
       ``hermite_conv``) and ``LaplaceL2norm`` ``.view()``s the non-contiguous rotated weights:
       replace both methods.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib
import math
import sys
import types

# 1. Only names that are missing are added, so a later Python that restores them is left alone.
for _name in collections.abc.__all__:
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

# 2. A broken torchvision (CUDA build on CPU torch) raises something other than ImportError, hence
# the broad except.
if "torchvision" not in sys.modules:
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001
        _stub = types.ModuleType("torchvision")
        _stub.__doc__ = "Stub registered by neurofit: torchvision is not available."
        sys.modules["torchvision"] = _stub

from neuralpredictors.layers import hermite as _hermite  # noqa: E402  (needs fixes 1 and 2)
from neuralpredictors.layers.cores import conv2d as _conv2d  # noqa: E402


# 3. hermite.py uses `math` only for factorial; the shim keeps every other name of math.
def _int_factorial(n: float) -> int:
    return math.factorial(int(n))


if not getattr(_hermite.math, "_neurofit_compat", False):
    _math_shim = types.SimpleNamespace(**{k: getattr(math, k) for k in dir(math) if k[0] != "_"})
    _math_shim.factorial = _int_factorial
    _math_shim._neurofit_compat = True
    _hermite.math = _math_shim


# 4. The rotated weights are only cached by HermiteConv2D.forward, so they are recomputed here
# (with gradient) from the coefficients; .contiguous() lets LaplaceL2norm .view() them.
def _hermite_weights(conv: "_hermite.HermiteConv2D"):
    """Weights of a HermiteConv2D, shape (out_channels * rotations, in_channels, k, k)."""
    w = conv.rotate_hermite(conv.coeffs)
    w = _hermite.downsample_weights(w, conv.upsampling)
    return w.permute(3, 2, 0, 1).contiguous()


def _rot_eq_laplace(self):
    """Laplace smoothness penalty of the first layer's filters (all rotations)."""
    weights = _hermite_weights(self.features[0].hermite_conv)
    return self._input_weights_regularizer(weights, avg=self.use_avg_reg)


def _rot_eq_group_sparsity(self):
    """Group-sparsity penalty of the hidden filters (all rotations), averaged over layers."""
    ret = 0
    for layer in range(1, self.num_layers):
        w = _hermite_weights(self.features[layer].hermite_conv)
        ret = ret + w.pow(2).sum(3, keepdim=True).sum(2, keepdim=True).sqrt().mean()
    return ret / max(self.num_layers - 1, 1)


_conv2d.RotationEquivariant2dCore.laplace = _rot_eq_laplace
_conv2d.RotationEquivariant2dCore.group_sparsity = _rot_eq_group_sparsity

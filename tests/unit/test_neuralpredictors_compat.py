"""The neuralpredictors compatibility fixes (no database, fast)."""

from __future__ import annotations

import collections
import collections.abc
import importlib
import sys

import torch

import neurofit.models._neuralpredictors_compat as compat


def test_reimport_and_reload_are_harmless():
    shim_before = compat._hermite.math
    laplace_before = compat._conv2d.RotationEquivariant2dCore.laplace
    importlib.reload(compat)
    importlib.import_module("neurofit.models._neuralpredictors_compat")
    # The hermite math shim is not wrapped twice.
    assert compat._hermite.math is shim_before
    assert compat._hermite.math.factorial(4.0) == 24
    # Reloading re-binds equivalent functions; the core still regularizes (checked below).
    assert compat._conv2d.RotationEquivariant2dCore.laplace.__name__ == laplace_before.__name__


def test_collections_aliases_and_torchvision():
    assert collections.Iterable is collections.abc.Iterable
    assert collections.Mapping is collections.abc.Mapping
    assert "torchvision" in sys.modules


def test_hermite_factorial_accepts_numpy_floats():
    import numpy as np
    from neuralpredictors.layers import hermite

    assert hermite.math.factorial(np.float64(5.0)) == 120
    assert hermite.math.pi == np.pi  # the rest of math is still there
    basis = hermite.hermite_2d(5, 10, 2 * np.sqrt(5))[0]
    assert np.isfinite(basis).all()


def test_rotation_equivariant_core_builds_and_regularizes():
    from neuralpredictors.layers.cores import RotationEquivariant2dCore

    torch.manual_seed(0)
    core = RotationEquivariant2dCore(
        1, 4, 5, 3, layers=2, num_rotations=4, gamma_input=1.0, gamma_hidden=0.5,
        use_avg_reg=False,
    )
    out = core(torch.randn(2, 1, 12, 12))
    assert out.shape == (2, 2 * 4 * 4, 12, 12)
    penalty = core.regularizer()
    assert penalty.ndim == 0 and penalty.detach().item() > 0
    penalty.backward()
    coeffs = [layer.hermite_conv.coeffs for layer in core.features]
    # Laplace reaches the first layer, group sparsity the second.
    assert all(c.grad is not None and float(c.grad.abs().sum()) > 0 for c in coeffs)


def test_regularizer_works_before_any_forward():
    # The original methods read weights cached by forward(); the fix recomputes them.
    from neuralpredictors.layers.cores import RotationEquivariant2dCore

    core = RotationEquivariant2dCore(1, 2, 5, 3, layers=2, num_rotations=2, gamma_input=1.0,
                                     use_avg_reg=False)
    assert torch.isfinite(core.laplace())
    assert torch.isfinite(core.group_sparsity())

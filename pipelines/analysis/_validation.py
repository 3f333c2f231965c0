"""Input checks shared by the analysis functions: numeric, real, finite, as float."""

from __future__ import annotations

import numpy as np


def numeric(array: np.ndarray, name: str, *, dtype=np.float64, allow_nan: bool = False) -> np.ndarray:
    """Cast a numeric (or boolean) array to ``dtype`` after checking it holds usable numbers.

    Raises:
        TypeError: if the values are not real numbers (strings, objects, complex).
        ValueError: on infinity, and on NaN unless ``allow_nan``.
    """
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise TypeError(f"{name} must be real numbers, got dtype {array.dtype}")
    array = array.astype(dtype, copy=False)
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if np.any(bad):
        raise ValueError(f"{name} contains {'infinite' if allow_nan else 'non-finite (NaN or inf)'} values")
    return array

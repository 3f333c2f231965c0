"""Per-column Pearson correlation for the synthetic generators' ground-truth ceilings."""

from __future__ import annotations

import numpy as np


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column (ddof 0 throughout; a constant column gives 0), shape (n_columns,).

    Datasets may not import pipelines, so this mirrors
    ``neurofit.pipelines.analysis.prediction.correlation``; ``tests/unit/test_layering.py``
    checks they agree.

    Args:
        a, b: (n_rows, n_columns) arrays.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    numerator = (a * b).sum(axis=0)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

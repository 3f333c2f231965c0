from . import _neuralpredictors_compat  # noqa: F401  (must run before any neuralpredictors import)

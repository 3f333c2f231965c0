"""Trainer functions; each follows the contract in ``neurofit.pipelines.training``."""

from .poisson import train_poisson

__all__ = ["train_poisson"]

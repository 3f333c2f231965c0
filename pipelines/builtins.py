"""Registers neurofit's own builders; imported by the registry on first use."""

from neurofit.datasets.synthetic_responses import build_synthetic_responses
from neurofit.models.encoding import build_gaussian_cnn
from neurofit.pipelines.registry import register
from neurofit.pipelines.trainers.poisson import train_poisson

register("dataset", "neurofit.synthetic_responses")(build_synthetic_responses)
register("model", "neurofit.gaussian_cnn")(build_gaussian_cnn)
register("trainer", "neurofit.poisson")(train_poisson)

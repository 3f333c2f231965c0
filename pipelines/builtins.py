"""Registers neurofit's own builders; imported by the registry on first use."""

from neurofit.datasets.dlgn import build_synthetic_dlgn, build_video_trials
from neurofit.datasets.synthetic_responses import build_synthetic_responses
from neurofit.models.encoding import build_gaussian_cnn
from neurofit.models.video import build_conv_gru, build_factorized_3d
from neurofit.pipelines.registry import register
from neurofit.pipelines.scoring import class_accuracy, neuron_scores
from neurofit.pipelines.trainers.poisson import train_poisson
from neurofit.pipelines.trainers.supervised import train_supervised

register("dataset", "neurofit.synthetic_responses")(build_synthetic_responses)
register("dataset", "neurofit.synthetic_dlgn")(build_synthetic_dlgn)
register("dataset", "neurofit.video_trials")(build_video_trials)
register("model", "neurofit.gaussian_cnn")(build_gaussian_cnn)
register("model", "neurofit.factorized_3d")(build_factorized_3d)
register("model", "neurofit.conv_gru")(build_conv_gru)
register("trainer", "neurofit.poisson")(train_poisson)
register("trainer", "neurofit.supervised")(train_supervised)
register("analysis", "neurofit.neuron_scores", applies_to=("responses",))(neuron_scores)
register("analysis", "neurofit.class_accuracy", applies_to=("labels",))(class_accuracy)

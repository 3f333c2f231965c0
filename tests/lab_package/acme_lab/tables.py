"""The ACME lab's own table, depending on neurofit's TrainedModel."""

import datajoint as dj
import torch

from neurofit.schemas import TrainedModel, load_model  # noqa: F401 (TrainedModel: the definition's -> TrainedModel)

schema = dj.Schema()
schema_name = "acme"


@schema
class WeightNorm(dj.Computed):
    """The L2 norm of all weights of one trained model."""

    definition = """
    -> TrainedModel
    ---
    weight_norm: float64          # sqrt of the sum of squared parameters
    """

    def make(self, key):
        model = load_model(key, device="cpu")
        norm = torch.sqrt(sum((p.detach() ** 2).sum() for p in model.parameters()))
        self.insert1({**key, "weight_norm": float(norm)})

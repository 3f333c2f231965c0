"""A small convolutional encoder with one task head: the task-specific networks of dnn-to-brain.

Dwivedi et al. (2021) compare Taskonomy networks that share one encoder architecture and differ
only in the task they were trained on (2-D, 3-D or semantic). This is the same design at toy
size: three strided conv blocks (the encoder) and a head chosen by the data's `DataInfo`:

* ``labels``: global max pool, then a linear map to the class logits;
* ``targets`` of shape (channels, height, width): a transposed-conv decoder to the target map.

The probed layers (``analysis_layers``, then ``output``) are the last two encoder blocks and the
task output. The seed probes two layers per Taskonomy encoder (``block4``, ``encoder_output``);
at this toy size the class information only appears after the head's pooling, so the demo
uses ``block3`` and ``output`` (measured: with ``block2``/``block3`` alone the category region
is explained by no network, adjusted R^2 <= 0.001).
"""

from __future__ import annotations

import torch
from torch import nn

from neurofit.datasets.info import DataInfo

__all__ = ["SceneEncoder", "build_scene_encoder"]


def _block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, stride=2, padding=1), nn.ReLU())


class SceneEncoder(nn.Module):
    """Encoder blocks ``block1..block3`` and a ``head`` (see the module docstring).

    Args:
        input_shape: (channels, height, width) of one image.
        channels: output channels of the three encoder blocks.
        n_classes: > 0 for a class head.
        target_shape: (channels, height, width) of a dense target, or () for a class head.
    """

    analysis_layers = ("block2", "block3")

    def __init__(self, input_shape, channels=(8, 16, 32), n_classes: int = 0, target_shape=()):
        super().__init__()
        c1, c2, c3 = channels
        self.block1 = _block(input_shape[0], c1)
        self.block2 = _block(c1, c2)
        self.block3 = _block(c2, c3)
        self.target_shape = tuple(target_shape)
        if n_classes:
            # Max pool: "is the shape anywhere", where an average would drown the object in background.
            self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c3, n_classes))
        else:
            self.head = nn.Sequential(
                nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(c1, self.target_shape[0], 3, padding=1),
            )

    def forward(self, inputs: torch.Tensor, session=None, **other_inputs) -> torch.Tensor:
        """(B, C, H, W) images -> (B, n_classes) logits or (B, *target_shape) maps."""
        out = self.head(self.block3(self.block2(self.block1(inputs))))
        if self.target_shape and out.shape[-2:] != self.target_shape[-2:]:
            out = nn.functional.interpolate(out, size=self.target_shape[-2:], mode="bilinear", align_corners=False)
        return out


def build_scene_encoder(data_info: DataInfo, seed: int, *, channels: tuple[int, int, int] = (8, 16, 32)) -> nn.Module:
    """The encoder with the head the data ask for: class logits for labels, a map for targets.

    Args:
        data_info: images (channels, height, width) providing ``labels`` or 3-D ``targets``.
        seed: initialises the weights.
        channels: output channels of the three encoder blocks.

    Raises:
        ValueError: data that are not images or provide neither labels nor 3-D targets.
    """
    if len(data_info.input_shape) != 3:
        raise ValueError(f"neurofit.scene_encoder takes images (channels, height, width), got {data_info.input_shape}")
    labels = "labels" in data_info.provides
    if not labels and len(data_info.target_shape) != 3:
        raise ValueError(
            "neurofit.scene_encoder needs labels or dense targets (channels, height, width); got "
            f"provides={list(data_info.provides)}, target_shape={data_info.target_shape}"
        )
    if len(channels) != 3 or min(channels) < 1:
        raise ValueError(f"channels must be three positive ints, got {channels}")
    torch.manual_seed(seed)
    return SceneEncoder(data_info.input_shape, tuple(int(c) for c in channels),
                        n_classes=data_info.n_classes if labels else 0,
                        target_shape=() if labels else data_info.target_shape)

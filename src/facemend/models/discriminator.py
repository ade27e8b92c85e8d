"""PatchGAN discriminator (Isola et al., 2017): a real/fake logit per overlapping patch, with spectral norm
instead of batch norm (no batch statistics to synchronise across processes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    channels: int = 64  # width of the first layer; doubles per layer up to 8×
    layers: int = 3  # stride-2 layers: each patch logit sees ~ 2^(layers+2) pixels

    def __post_init__(self) -> None:
        if self.channels < 1 or self.layers < 1:
            raise ValueError(f"channels and layers must be >= 1, got {self.channels}, {self.layers}")


class PatchDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        width = config.channels
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for i in range(1, config.layers + 1):
            previous, width = width, config.channels * min(2**i, 8)
            stride = 2 if i < config.layers else 1
            layers += [spectral_norm(nn.Conv2d(previous, width, 4, stride=stride, padding=1)), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(width, 1, 4, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`b 3 H W` in [0, 1] → patch logits `b 1 h w`."""
        return self.net(images * 2.0 - 1.0)

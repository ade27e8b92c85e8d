"""MobileNetV2 (Sandler et al. 2018), laid out so the ImageNet state dict of the usual reference implementation
loads as is (`features.N…`, `classifier.1…`). Used frozen, as a feature network for metrics and losses."""

from __future__ import annotations

import torch
from torch import nn

# expansion t, output channels c, repeats n, first stride s (Table 2 of the paper)
INVERTED_RESIDUAL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                              (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def conv_bn_relu6(dim_in: int, dim_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(dim_in, dim_out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(dim_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = dim_in * expansion
        self.use_residual = stride == 1 and dim_in == dim_out
        layers = [conv_bn_relu6(dim_in, hidden, kernel_size=1)] if expansion != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, dim_out, 1, bias=False),
            nn.BatchNorm2d(dim_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Width 1.0 MobileNetV2. `features(x)` gives the 1280-channel map at 1/32 of the input size."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu6(3, 32, stride=2)]
        dim = 32
        for expansion, dim_out, repeats, stride in INVERTED_RESIDUAL_SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(dim, dim_out, stride if i == 0 else 1, expansion))
                dim = dim_out
        layers.append(conv_bn_relu6(dim, 1280, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))

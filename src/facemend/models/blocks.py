"""Building blocks shared by the networks: convolutional blocks of the tokenizer and the UNet, and position
embeddings of token grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups (fewer for narrow layers, so each group keeps ≥ 4 channels)."""
    groups = min(32, channels // 4)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """norm → SiLU → conv, twice, plus a (1×1-projected when widths differ) shortcut. With `embed_dim`, an
    embedding (a diffusion timestep's) is projected and added between the two convolutions, as in DDPM."""

    def __init__(self, in_channels: int, out_channels: int | None = None, embed_dim: int | None = None):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if embed_dim is not None:
            self.embed = nn.Linear(embed_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """`b c h w` (and an embedding `b e`, when built with `embed_dim`) → `b c' h w`."""
        h = self.conv1(F.silu(self.norm1(x)))
        if embedding is not None:
            h = h + rearrange(self.embed(F.silu(embedding)), "b c -> b c 1 1")
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`b c h w` → `b c h w`."""
        height = x.shape[2]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three c) h w -> three b 1 (h w) c", three=3)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(rearrange(out, "b 1 (h w) c -> b c h w", h=height))


class GridPositionEmbedding(nn.Module):
    """Learned 2-D position embeddings for a `grid × grid` token grid, resized bicubically for other grids."""

    def __init__(self, dim: int, grid: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, dim, grid, grid) * 0.02)

    def forward(self, height: int, width: int) -> torch.Tensor:
        """→ `1 (h w) d`, to add to a flattened token grid."""
        weight = self.weight
        if weight.shape[2:] != (height, width):
            weight = F.interpolate(weight, size=(height, width), mode="bicubic", align_corners=False)
        return rearrange(weight, "1 d h w -> 1 (h w) d")


class Downsample(nn.Module):
    """Halves height and width with a stride-2 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Doubles height and width: nearest-neighbour, then a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

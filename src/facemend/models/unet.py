"""The conditional denoising UNet of IDM: the noisy HQ face x_t concatenated with the LQ face (SR3's
conditioning, Saharia et al., 2022), a sinusoidal timestep embedding added in every residual block, and the
prediction (v, ε or x0: the scheduler's `prediction_type`) out. Resolution-agnostic: any input whose side is a
multiple of `stride`.

Layout, a compact DDPM/SR3 UNet on the shared blocks (`blocks.py`):
- down path: per level `blocks_per_level` residual blocks (one number for every level, or one per level;
  self-attention after each where the level is in `attention_levels`), then a stride-2 convolution, except at
  the last level;
- middle: residual block, self-attention, residual block at the coarsest level;
- up path: per level the down path's last features there are concatenated (one skip per level, lighter than
  ADM's one per block), then the same blocks, then nearest-neighbour up-sampling + convolution;
- out: norm → SiLU → 3×3 convolution, initialised to zero (the network starts by predicting 0).
Inputs and outputs are in [−1, 1] space; the method maps faces from [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facemend.models.blocks import AttnBlock, Downsample, ResBlock, Upsample, group_norm


@dataclass
class UNetConfig:
    channels: int = 32  # width of the first (full-resolution) level
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)  # width multiplier per level; len - 1 down-samplings
    blocks_per_level: int | tuple[int, ...] = 1  # residual blocks per level, in the down and in the up path:
    # one number for every level, or one per level (e.g. [1, 1, 2, 3]: deeper where the maps are small)
    attention_levels: tuple[int, ...] = (3,)  # levels (0 = full resolution) with self-attention
    time_dim: int = 128  # width of the timestep embedding (sinusoidal features, then a 2-layer MLP); 0: a UNet
    # without timesteps (a one-pass restorer), whose forward takes timesteps=None
    image_channels: int = 3  # channels of x_t and of the prediction
    condition_channels: int = 3  # channels of the condition (the LQ face) concatenated to x_t

    def __post_init__(self) -> None:
        self.channel_mults = tuple(self.channel_mults)
        self.attention_levels = tuple(self.attention_levels)
        for name in ("channels", "image_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.blocks_per_level, list | tuple):
            self.blocks_per_level = tuple(self.blocks_per_level)
            if len(self.blocks_per_level) != len(self.channel_mults):
                raise ValueError(
                    f"blocks_per_level: {len(self.blocks_per_level)} numbers for {len(self.channel_mults)} levels"
                )
        if min(self.level_blocks()) < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {self.blocks_per_level}")
        if self.time_dim < 0:
            raise ValueError(f"time_dim must be >= 0, got {self.time_dim}")
        if self.condition_channels < 0:
            raise ValueError(f"condition_channels must be >= 0, got {self.condition_channels}")
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even, got {self.time_dim}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be non-empty positive integers, got {list(self.channel_mults)}")
        bad = [level for level in self.attention_levels if not 0 <= level < len(self.channel_mults)]
        if bad:
            raise ValueError(f"attention_levels: {bad[0]} is not a level (0..{len(self.channel_mults) - 1})")

    @property
    def embed_dim(self) -> int | None:
        """Width of the embedding the residual blocks take: None without timesteps."""
        return self.time_dim or None

    @property
    def stride(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    def widths(self) -> list[int]:
        return [self.channels * mult for mult in self.channel_mults]

    def level_blocks(self) -> list[int]:
        """Residual blocks at each level (0 = full resolution)."""
        if isinstance(self.blocks_per_level, int):
            return [self.blocks_per_level] * len(self.channel_mults)
        return list(self.blocks_per_level)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """`b` timesteps → `b dim` sinusoidal features [cos(t ω_i), sin(t ω_i)], ω_i = max_period^(−i / (dim/2))
    (the Transformer's position encoding, as DDPM embeds t)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class _Level(nn.ModuleList):
    """Residual blocks (given the timestep embedding) and attention blocks, in order."""

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        for block in self:
            x = block(x, embedding) if isinstance(block, ResBlock) else block(x)
        return x


def _level(in_channels: int, width: int, count: int, embed_dim: int | None, attention: bool) -> _Level:
    blocks: list[nn.Module] = []
    for j in range(count):
        blocks.append(ResBlock(in_channels if j == 0 else width, width, embed_dim))
        if attention:
            blocks.append(AttnBlock(width))
    return _Level(blocks)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        widths, counts = config.widths(), config.level_blocks()
        if config.time_dim:
            self.time_mlp = nn.Sequential(
                nn.Linear(config.time_dim, config.time_dim), nn.SiLU(), nn.Linear(config.time_dim, config.time_dim)
            )
        self.conv_in = nn.Conv2d(config.image_channels + config.condition_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        previous = widths[0]
        for i, width in enumerate(widths):
            self.down.append(_level(previous, width, counts[i], config.embed_dim, i in config.attention_levels))
            self.downsamples.append(Downsample(width) if i < len(widths) - 1 else nn.Identity())
            previous = width
        middle = [ResBlock(previous, previous, config.embed_dim), AttnBlock(previous)]
        self.middle = _Level([*middle, ResBlock(previous, previous, config.embed_dim)])
        self.up = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i in reversed(range(len(widths))):
            attention = i in config.attention_levels
            self.up.append(_level(previous + widths[i], widths[i], counts[i], config.embed_dim, attention))
            self.upsamples.append(Upsample(widths[i]) if i > 0 else nn.Identity())
            previous = widths[i]
        self.norm_out = group_norm(previous)
        self.conv_out = nn.Conv2d(previous, config.image_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, sample: torch.Tensor, timesteps: torch.Tensor | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_t `b c h w`, timesteps `b` and the condition `b c' h w` (h, w multiples of `stride`) →
        the prediction `b c h w`; without timesteps (`time_dim` 0) or condition (`condition_channels` 0), None."""
        embedding = None
        if self.config.time_dim:
            embedding = self.time_mlp(timestep_embedding(timesteps, self.config.time_dim))
        h = self.conv_in(sample if condition is None else torch.cat([sample, condition], dim=1))
        skips = []
        for level, downsample in zip(self.down, self.downsamples, strict=True):
            h = level(h, embedding)
            skips.append(h)
            h = downsample(h)
        h = self.middle(h, embedding)
        for level, upsample in zip(self.up, self.upsamples, strict=True):
            h = upsample(level(torch.cat([h, skips.pop()], dim=1), embedding))
        return self.conv_out(F.silu(self.norm_out(h)))

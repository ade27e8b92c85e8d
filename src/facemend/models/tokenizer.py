"""The VQ tokenizer: encoder → vector quantizer → decoder, learned on HQ faces. Its codebook is the HQ prior
that the code-predicting restorers (baseline, DAEFR, ART-FR, IQPFR) look their answers up in.

Layout as in VQGAN / CodeFormer: residual blocks at every level, a stride-2 convolution between levels, and
self-attention at the lowest resolution. Images go in and come out in [0, 1]; the networks see [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facemend.models.blocks import AttnBlock, Downsample, ResBlock, Upsample, group_norm
from facemend.models.quantizer import QuantizerOutput, VectorQuantizer


@dataclass
class TokenizerConfig:
    image_size: int = 128  # face size it is trained at; the networks themselves take any multiple of the stride
    channels: int = 32  # width of the first (full-resolution) level
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)  # width multiplier per level; len - 1 down-samplings
    blocks_per_level: int = 1  # residual blocks per level (encoder and decoder)
    attention: bool = True  # self-attention at the lowest resolution
    codebook_size: int = 512
    codebook_dim: int = 64
    dead_code_steps: int = 100  # training steps a code may go unused before it is restarted

    def __post_init__(self) -> None:
        self.channel_mults = tuple(self.channel_mults)
        for name in ("image_size", "channels", "blocks_per_level", "codebook_size", "codebook_dim", "dead_code_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be non-empty positive integers, got {list(self.channel_mults)}")
        if self.image_size % self.stride:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the stride {self.stride}")

    @property
    def stride(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def token_grid(self) -> int:
        """Tokens per side at `image_size`."""
        return self.image_size // self.stride

    def widths(self) -> list[int]:
        return [self.channels * mult for mult in self.channel_mults]


def _middle(width: int, attention: bool) -> nn.Sequential:
    return nn.Sequential(ResBlock(width), AttnBlock(width) if attention else nn.Identity(), ResBlock(width))


class Encoder(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        widths = config.widths()
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1)
        self.levels = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        previous = widths[0]
        for i, width in enumerate(widths):
            blocks = [ResBlock(previous if j == 0 else width, width) for j in range(config.blocks_per_level)]
            self.levels.append(nn.Sequential(*blocks))
            self.downsamples.append(Downsample(width) if i < len(widths) - 1 else nn.Identity())
            previous = width
        self.middle = _middle(previous, config.attention)
        self.norm_out = group_norm(previous)
        self.conv_out = nn.Conv2d(previous, config.codebook_dim, 1)

    def forward(self, images: torch.Tensor, return_features: bool = False):
        """`b 3 H W` in [0, 1] → latent `b d h w` (and, with `return_features`, each level's features, full
        resolution first)."""
        h = self.conv_in(images * 2.0 - 1.0)
        features = []
        for level, downsample in zip(self.levels, self.downsamples, strict=True):
            h = level(h)
            features.append(h)
            h = downsample(h)
        z = self.conv_out(F.silu(self.norm_out(self.middle(h))))
        return (z, features) if return_features else z


Modulation = Callable[[int, torch.Tensor], torch.Tensor]


class Decoder(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        widths = config.widths()
        self.conv_in = nn.Conv2d(config.codebook_dim, widths[-1], 3, padding=1)
        self.middle = _middle(widths[-1], config.attention)
        self.levels = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        previous = widths[-1]
        for i in reversed(range(len(widths))):
            blocks = [ResBlock(previous if j == 0 else widths[i], widths[i]) for j in range(config.blocks_per_level)]
            self.levels.append(nn.Sequential(*blocks))
            self.upsamples.append(Upsample(widths[i]) if i > 0 else nn.Identity())
            previous = widths[i]
        self.norm_out = group_norm(previous)
        self.conv_out = nn.Conv2d(previous, 3, 3, padding=1)

    def forward(self, quantized: torch.Tensor, modulate: Modulation | None = None) -> torch.Tensor:
        """`b d h w` codes → `b 3 H W` images (≈ [0, 1], unclamped). `modulate(level, features)`, when given,
        rewrites each level's features (level 0 = full resolution) before up-sampling."""
        h = self.middle(self.conv_in(quantized))
        count = len(self.levels)
        for k, (level, upsample) in enumerate(zip(self.levels, self.upsamples, strict=True)):
            h = level(h)
            if modulate is not None:
                h = modulate(count - 1 - k, h)
            h = upsample(h)
        return (self.conv_out(F.silu(self.norm_out(h))) + 1.0) / 2.0


class VQTokenizer(nn.Module):
    """Encoder → quantizer → decoder. `forward` reconstructs; `encode_indices` / `decode_indices` tokenize."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.codebook_size, config.codebook_dim, config.dead_code_steps)
        self.decoder = Decoder(config)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """`b 3 H W` in [0, 1] → reconstruction `b 3 H W` and the quantizer's output."""
        quantized = self.quantizer(self.encoder(images))
        return self.decoder(quantized.quantized), quantized

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """`b 3 H W` → code indices `b h w`."""
        return self.quantizer(self.encoder(images)).indices

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices `b h w` → images `b 3 H W`."""
        return self.decoder(self.quantizer.lookup(indices))

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output weight, where the adversarial loss's adaptive weight is measured."""
        return self.decoder.conv_out.weight

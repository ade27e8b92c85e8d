"""Transformer over the token grid that predicts a codebook index at every position (CodeFormer's lookup
transformer): LQ latent tokens in, logits over the HQ codebook out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from facemend.models.blocks import GridPositionEmbedding


@dataclass
class CodeTransformerConfig:
    width: int = 256
    layers: int = 4
    heads: int = 8
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("width", "layers", "heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class CodeTransformer(nn.Module):
    """`b d h w` latent → `b (h w) n` logits over `codebook_size` codes, with learned 2-D position embeddings
    (trained for a `grid × grid` token grid, resized for others)."""

    def __init__(self, config: CodeTransformerConfig, latent_dim: int, codebook_size: int, grid: int):
        super().__init__()
        self.proj_in = nn.Linear(latent_dim, config.width)
        self.position = GridPositionEmbedding(config.width, grid)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            config.width * config.mlp_ratio,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, codebook_size)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """`b d h w` → logits `b (h w) n`."""
        height, width = latent.shape[2:]
        tokens = self.proj_in(rearrange(latent, "b d h w -> b (h w) d")) + self.position(height, width)
        return self.head(self.norm(self.blocks(tokens)))

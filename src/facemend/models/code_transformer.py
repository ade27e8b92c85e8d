"""Transformer over the token grid that predicts a codebook index at every position (CodeFormer's lookup
transformer): LQ latent tokens in, logits over the HQ codebook out.

With `patch_size` p > 1, each transformer position holds a p × p patch of tokens: their features are
concatenated and projected in, and the head predicts p² codes per position. A 32 × 32 token grid then costs
what a 16 × 16 one does (p = 2), which is what makes fine token grids trainable on a CPU."""

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
    patch_size: int = 1  # p: each transformer position holds p × p tokens (p² fewer positions, p⁴ cheaper attention)

    def __post_init__(self) -> None:
        for name in ("width", "layers", "heads", "mlp_ratio", "patch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def patchify(grid: torch.Tensor, patch: int) -> torch.Tensor:
    """`b c (h p) (w p)` → `b (h w) (p p c)`: one row per patch of `patch × patch` grid cells."""
    return rearrange(grid, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch)


def unpatchify_logits(logits: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """`b (h w) (p p k)` → `b ((h p) (w p)) k`: per-token logits in the token grid's row-major order."""
    return rearrange(
        logits,
        "b (h w) (p1 p2 k) -> b (h p1 w p2) k",
        h=height // patch,
        w=width // patch,
        p1=patch,
        p2=patch,
    )


def check_grid(height: int, width: int, patch: int) -> None:
    if height % patch or width % patch:
        raise ValueError(f"token grid {height}×{width} is not divisible by patch_size {patch}")


class CodeTransformer(nn.Module):
    """`b d h w` latent → `b (h w) n` logits over `codebook_size` codes, with learned 2-D position embeddings
    (trained for a `grid × grid` token grid, resized for others)."""

    def __init__(self, config: CodeTransformerConfig, latent_dim: int, codebook_size: int, grid: int):
        super().__init__()
        self.patch = config.patch_size
        self.proj_in = nn.Linear(latent_dim * self.patch**2, config.width)
        self.position = GridPositionEmbedding(config.width, max(1, grid // self.patch))
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
        self.head = nn.Linear(config.width, codebook_size * self.patch**2)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """`b d h w` → logits `b (h w) n`."""
        height, width = latent.shape[2:]
        check_grid(height, width, self.patch)
        positions = self.position(height // self.patch, width // self.patch)
        tokens = self.proj_in(patchify(latent, self.patch)) + positions
        return unpatchify_logits(self.head(self.norm(self.blocks(tokens))), height, width, self.patch)

"""Bidirectional masked-token transformer (MaskGIT's) over the HQ token grid, conditioned on LQ features:
code indices with [MASK] at unknown positions + the LQ latent in, logits over the codebook out.

Two ways in for the condition (`condition`):
- `add`: the LQ latent, projected to the width, is added to every token's embedding (same grid, one-to-one);
- `cross`: the tokens attend to the projected LQ latent in a cross-attention after each self-attention.

With `patch_size` p > 1 (`code_transformer.py`), a position holds p × p tokens: their embeddings (a [MASK]
among them included) are concatenated and projected, and the head predicts p² codes; the sampler still masks
and keeps single tokens.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from facemend.models.blocks import GridPositionEmbedding
from facemend.models.code_transformer import CodeTransformerConfig, check_grid, patchify, unpatchify_logits

CONDITIONS = ("add", "cross")


class MaskedCodeTransformer(nn.Module):
    """`b n` tokens (`mask_token_id` = codebook_size where masked) + `b d h w` LQ latent → `b n codebook_size`."""

    def __init__(
        self, config: CodeTransformerConfig, latent_dim: int, codebook_size: int, grid: int, condition: str = "add"
    ):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
        self.condition = condition
        self.mask_token_id = codebook_size
        self.patch = config.patch_size
        self.token_embedding = nn.Embedding(codebook_size + 1, config.width)
        self.token_proj = nn.Linear(config.width * self.patch**2, config.width) if self.patch > 1 else nn.Identity()
        self.condition_proj = nn.Linear(latent_dim * self.patch**2, config.width)
        self.position = GridPositionEmbedding(config.width, max(1, grid // self.patch))
        options = dict(
            d_model=config.width,
            nhead=config.heads,
            dim_feedforward=config.width * config.mlp_ratio,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        if condition == "cross":
            self.blocks = nn.TransformerDecoder(nn.TransformerDecoderLayer(**options), config.layers)
        else:
            self.blocks = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(**options), config.layers, enable_nested_tensor=False
            )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, codebook_size * self.patch**2)

    def forward(self, tokens: torch.Tensor, lq_latent: torch.Tensor) -> torch.Tensor:
        """`b n` tokens, `b d h w` LQ latent (n = h w) → logits `b n k`."""
        height, width = lq_latent.shape[2:]
        check_grid(height, width, self.patch)
        position = self.position(height // self.patch, width // self.patch)
        condition = self.condition_proj(patchify(lq_latent, self.patch))
        embedded = rearrange(self.token_embedding(tokens), "b (h w) c -> b c h w", h=height, w=width)
        hidden = self.token_proj(patchify(embedded, self.patch)) + position
        if self.condition == "cross":
            hidden = self.blocks(hidden, condition + position)
        else:
            hidden = self.blocks(hidden + condition)
        return unpatchify_logits(self.head(self.norm(hidden)), height, width, self.patch)

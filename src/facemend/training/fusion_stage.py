"""The fusion stage shared by the code predictors (CodeFormer's stage III): decoded faces against the HQ faces
with L1 + perceptual + adversarial losses, each face trained at a drawn fidelity w.

How w is drawn:
- `fidelity_one_share: p` (CodeFormer's way): w = 1 with probability p, else w = 0; every face gets the
  adversarial loss. The fusion learns the full correction at w = 1; w = 0 keeps the decoder a decoder of
  looked-up codes.
- unset: w ~ U(0, 1) and the adversarial loss is weighted by 1 − w. The fusion's networks never see w, so
  they learn one correction c for all w; under L2 its best size is E[w] / E[w²] = 1.5 times the correction
  that w = 1 needs, which over-shoots at w = 1 (the first bundled baseline was trained this way).
"""

from __future__ import annotations

import torch
from torch import nn

from facemend.models.fusion import FidelityFusion
from facemend.models.tokenizer import VQTokenizer
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput, reconstruction_step

DECODED_LOSSES = ("l1", "perceptual", "identity", "face_perceptual", "adversarial")


def decodes(stage: StageConfig) -> bool:
    """Whether the stage weights a loss on decoded images."""
    return any(stage.weight(name) for name in DECODED_LOSSES)


def draw_fidelity(count: int, one_share: float | None, device) -> torch.Tensor:
    if one_share is None:
        return torch.rand(count, device=device)
    return (torch.rand(count, device=device) < one_share).float()


def fusion_step(
    recipe: Recipe,
    tokenizer: VQTokenizer,
    fusion: FidelityFusion,
    images: torch.Tensor,
    hq: torch.Tensor,
    fidelity: torch.Tensor,
    stage: StageConfig,
    discriminator: nn.Module | None,
    loss: torch.Tensor,
    logs: dict[str, float],
) -> StepOutput:
    """Add the decoded-image losses to `loss`; `images` came from `tokenizer`'s decoder with `fusion`."""
    last_layer = tokenizer.last_layer
    if not last_layer.requires_grad:  # frozen decoder: measure at the fusion's last layer, the one trained
        blocks = fusion.blocks
        last_layer = blocks[min(blocks.keys(), key=int)].shift.weight  # the full-resolution-most block
    weights = 1.0 - fidelity if stage.fidelity_one_share is None else None
    return reconstruction_step(recipe, images, hq, last_layer, stage, discriminator, loss, logs, weights)

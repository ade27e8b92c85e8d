"""DAEFR's association of its two branches (Tsai et al., ICLR 2024): each patch of a face's HQ-branch features must
pick out the same patch of its LQ-branch features among all the face's patches, and the other way round."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def patch_similarity(first: torch.Tensor, second: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Two `b d h w` feature maps → `b n n` (n = h w): S_ij = exp(t) · cos(first_i, second_j), per face."""
    first = F.normalize(rearrange(first.float(), "b d h w -> b (h w) d"), dim=-1)
    second = F.normalize(rearrange(second.float(), "b d h w -> b (h w) d"), dim=-1)
    return torch.as_tensor(logit_scale, device=first.device).float() * first @ second.transpose(1, 2)


def patch_association_loss(
    first: torch.Tensor, second: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """DAEFR's association: CLIP's symmetric cross-entropy (Radford et al., 2021) over each face's patches, the
    positions of two `b d h w` feature maps (HQ and LQ branch): position i of one map must pick out position i
    of the other among the face's h w positions, both ways. Mean over faces and positions; computed in fp32."""
    with torch.autocast(device_type=first.device.type, enabled=False):
        logits = patch_similarity(first, second, logit_scale)  # b n n
        targets = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
        first_to_second = F.cross_entropy(logits.transpose(1, 2), targets)  # class dim 1: j, for each row i
        second_to_first = F.cross_entropy(logits, targets)  # class dim 1: i, for each column j
    return (first_to_second + second_to_first) / 2

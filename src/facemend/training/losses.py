"""Losses shared by the recipes: perceptual (MobileNetV2-ImageNet), hinge adversarial with VQGAN's adaptive
weight. Called visibly from each recipe's step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning_fabric.wrappers
import torch
import torch.nn.functional as F
from torch import nn

from facemend.metrics.perceptual import MobileNetV2Features, perceptual_distance


class PerceptualLoss(nn.Module):
    """Mean PD-MNv2-style distance between two batches, at their own size (no resize to 224)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = MobileNetV2Features(size=None)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_maps = self.features(target)
        return perceptual_distance(self.features(prediction), target_maps).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


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

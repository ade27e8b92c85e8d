"""PSNR and SSIM on the Y channel and on RGB, computed the way BFR papers report them: 0–255 scale, BT.601
studio-range Y (16–235), SSIM with an 11×11 Gaussian window (σ 1.5) over the valid region, RGB SSIM as the mean
of the per-channel values."""

from __future__ import annotations

import kornia.metrics
import torch

_Y_WEIGHTS = (65.481, 128.553, 24.966)  # ITU-R BT.601 for RGB in [0, 1], giving Y in [16, 235]
SSIM_WINDOW = 11
PSNR_CAP = 100.0  # dB, for identical images (an MSE floor instead of +inf)


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """`b 3 h w` RGB in [0, 1] → `b 1 h w` BT.601 studio-range luma on the 0–255 scale."""
    weights = images.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True) + 16.0


def _planes(images: torch.Tensor, y_only: bool) -> torch.Tensor:
    images = images.double()
    return rgb_to_y(images) if y_only else images * 255.0


def psnr(prediction: torch.Tensor, target: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """Per-image PSNR in dB, `b`, of `b 3 h w` images in [0, 1]; at most `PSNR_CAP`."""
    error = (_planes(prediction, y_only) - _planes(target, y_only)).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / error.clamp_min(255.0**2 * 10 ** (-PSNR_CAP / 10)))


def ssim(prediction: torch.Tensor, target: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """Per-image SSIM, `b`, of `b 3 h w` images in [0, 1] (each side ≥ 11 px)."""
    if min(prediction.shape[-2:]) < SSIM_WINDOW:
        size = tuple(prediction.shape[-2:])
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} px, got {size}")
    index_map = kornia.metrics.ssim(
        _planes(prediction, y_only), _planes(target, y_only), SSIM_WINDOW, max_val=255.0, padding="valid"
    )
    return index_map.mean(dim=(1, 2, 3))

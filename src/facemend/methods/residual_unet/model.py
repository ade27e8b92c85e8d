"""`residual-unet`: a one-pass restorer, a U-Net that reads the LQ face and predicts the correction HQ − LQ.

facemend's default restorer, chosen for what it recovers per CPU-hour (docs/methods/residual-unet.md):
- Network: the shared UNet (`models/unet.py`) without timesteps: LQ face in (in [−1, 1]), residual out; the
  restored face is LQ + residual / 2 in [0, 1] units. The output convolution starts at zero, so an untrained
  model returns its input.
- It can start from a trained `idm` model (`methods/residual_unet/recipe.py`): IDM's UNet at the first DDIM
  step from zero noise (t = T − 1, x_t = 0) is a one-pass network of the LQ face; folding the constant
  timestep embedding into the convolution biases and the v → x̂0 → face mapping into the output convolution
  gives a `residual-unet` that computes IDM's one-step estimate exactly (`from_idm`).
- Trained with L1 + perceptual (MobileNetV2) + identity (SFace cosine distance, GFPGAN-style) + a hinge
  adversarial loss: the identity loss pulls the face towards the person, which the posterior-mean face of a
  plain L2/L1 regressor drifts away from.
- `keep_input` blends the input image back (the same knob as artfr, daefr and iqpfr).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facemend.methods.base import NetworkSpec, WeightsRestorer, blend_with_input, keep_input_knob, resize_faces
from facemend.models.unet import UNet, UNetConfig

KIND = "residual-unet"
DEFAULT_KEEP_INPUT = 0.15  # chosen on facemend-val (docs/methods/residual-unet.md)


def _unet_without_time() -> UNetConfig:
    return UNetConfig(time_dim=0, condition_channels=0)


@dataclass
class ResidualUNetConfig:
    unet: UNetConfig = field(default_factory=_unet_without_time)
    image_size: int = 128  # face size it is trained and run at (the UNet takes any multiple of its stride)

    def __post_init__(self) -> None:
        if self.unet.time_dim or self.unet.condition_channels:
            raise ValueError("unet: a residual-unet takes no timesteps and no condition (time_dim 0, condition 0)")
        if self.unet.image_channels != 3:
            raise ValueError(f"unet.image_channels must be 3 (RGB), got {self.unet.image_channels}")
        if self.image_size < 1 or self.image_size % self.unet.stride:
            raise ValueError(
                f"image_size must be a positive multiple of the stride {self.unet.stride}, got {self.image_size}"
            )


class ResidualUNetModel(nn.Module):
    def __init__(self, config: ResidualUNetConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """LQ faces `b 3 h w` in [0, 1] → restored faces, unclipped (training losses see the raw output)."""
        return lq + 0.5 * self.unet(lq * 2 - 1)


class ResidualUNetRestorer(WeightsRestorer):
    name = "residual-unet"
    kind = KIND
    config_class = ResidualUNetConfig
    model_class = ResidualUNetModel
    knobs = (keep_input_knob(DEFAULT_KEEP_INPUT),)

    def __init__(self, model: ResidualUNetModel):
        super().__init__(model)
        self.networks = {"restore": self.model}

    @staticmethod
    def face_size_of(config: ResidualUNetConfig) -> int:
        return config.image_size

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        size = self.face_size
        return {"restore": NetworkSpec({"lq": torch.rand(batch, 3, size, size)}, ("restored",))}

    def restore_faces(self, faces: torch.Tensor, *, keep_input: float) -> torch.Tensor:
        restored = self.networks["restore"](resize_faces(faces, self.face_size)).clamp(0, 1)
        return blend_with_input(faces, restored, keep_input)

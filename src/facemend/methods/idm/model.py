"""`idm`: a conditional denoising diffusion restorer (IDM, "Iterative Diffusion Models"). No public code exists;
the paper's abstract fixes the idea (a conditional diffusion model; intrinsic iterative refinement by the
sampler, extrinsic iterative enhancement of the training set), the rest is ours:

- Network: a compact UNet (`models/unet.py`) on the noisy HQ face x_t concatenated with the LQ face (SR3's
  conditioning), timestep embedded and added in every residual block. No tokenizer: the method is independent
  of the codebook prior. Faces are mapped from [0, 1] to [−1, 1] for the network and back.
- Diffusion: T = 1000 steps of the cosine schedule; the UNet predicts v (`prediction_type`; why, and the
  alternatives, in `samplers/ddim.py`). Training (`methods/idm/recipe.py`): MSE on v at a uniform timestep.
- What is diffused (`diffuse`): the HQ face itself (SR3), or the residual HQ − LQ scaled by `residual_scale`
  (SRDiff, Li et al., 2022; ResShift's motivation). The tiny model diffuses the residual: a restorer's output
  is mostly its input, so a face-diffusing UNet must first learn to copy the LQ face through 1000 noise levels
  before it can improve on it (the first idm-tiny run, face-diffusing, was still 2 dB below the LQ input's
  PSNR after 2,240 steps); the residual is small, local and zero where the input is already right. The
  scale brings its std to a face's (training pairs at 128 px: residual std 0.157, HQ face 0.52, so 3 for
  idm-tiny), so the noise schedule's signal-to-noise ratios mean what they mean for images. x̂0 is clipped so
  that LQ + residual stays in range.
- Intrinsic iterative refinement = the DDIM sampler's steps (`samplers/ddim.py`, eta = 0): start from Gaussian
  noise drawn with the `seed` knob, then predict and step `steps` times; `steps` = 1 is the model's one-shot
  x0 estimate. Every face starts from the same noise (one draw of one face's shape, repeated), so a face's
  result depends on the seed only, not on the batch it was restored in or its place there.
- `noise_scale` scales the starting noise: 1 samples the learned distribution; 0 starts DDIM from zero noise,
  a deterministic path that stays nearest the input (the seed then does nothing).
- `keep_input` blends the input back into the sample (as `classical` and the codebook methods do): the output
  keeps that share of the input. On dlib's identity and FD-dlib a blend beats both the input and the full sample.
- Defaults `steps` = 2, `noise_scale` = 0, chosen on facemend-val (never the test faces) with the 5,646-step
  weights: of steps {1, 2, 5} × noise_scale {0, 1} × keep_input {0.6, 0.75}, the lowest IDD on both presets
  (0.371 medium, 0.543 heavy; input 0.391 / 0.559), FD-dlib within 0.001 of the best, 0.1 s a face. More steps
  or a full sample (keep_input 0) moved further from the person. `keep_input` = 0.3 (it was 0.75), chosen again
  on facemend-val for the weights of the identity stage, whose sample alone is as close to the person as the
  input on medium and closer on heavy (docs/identity-stage.md).
- Old names, accepted for one release with a warning: `temperature` (now `noise_scale`; `temperature` is
  artfr's sampling temperature) and `fidelity` (now `keep_input`; `fidelity` is CodeFormer's fusion weight).
- Extrinsic iterative enhancement (`pipelines/clean.py`, `facemend clean`): the model restores the training set's
  HQ faces, and the next round trains on the cleaned set.
- Export: one network, `denoise` (x_t, LQ face, timesteps → prediction), the sampler's loop stays in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from facemend.methods.base import Knob, NetworkSpec, WeightsRestorer, blend_with_input, keep_input_knob, resize_faces
from facemend.models.unet import UNet, UNetConfig
from facemend.samplers.ddim import PREDICTION_TYPES, DDIMScheduler, cosine_alphas_cumprod

KIND = "idm"
DEFAULT_STEPS = 2  # these three: chosen on facemend-val (module docstring)
DEFAULT_NOISE_SCALE = 0.0
DEFAULT_KEEP_INPUT = 0.3
DIFFUSED = ("face", "residual")


@dataclass
class IdmConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    image_size: int = 128  # face size it is trained and run at; the UNet itself takes any multiple of its stride
    num_train_timesteps: int = 1000  # T of the cosine noise schedule
    prediction_type: str = "v_prediction"  # what the UNet predicts: "v_prediction", "epsilon" or "sample" (x0)
    diffuse: str = "face"  # what x0 is: "face" (the HQ face) or "residual" (HQ − LQ face, times residual_scale)
    residual_scale: float = 1.0  # multiplies the residual (in [−1, 1] units) to give x0 a face's std (≈ 0.5)

    def __post_init__(self) -> None:
        if not self.unet.time_dim:
            raise ValueError("unet.time_dim must be >= 2: a diffusion UNet is conditioned on the timestep")
        if self.diffuse not in DIFFUSED:
            raise ValueError(f"diffuse must be one of {', '.join(DIFFUSED)}, got {self.diffuse!r}")
        if self.residual_scale <= 0:
            raise ValueError(f"residual_scale must be > 0, got {self.residual_scale}")
        if self.prediction_type not in PREDICTION_TYPES:
            known = ", ".join(PREDICTION_TYPES)
            raise ValueError(f"prediction_type must be one of {known}, got {self.prediction_type!r}")
        if self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {self.num_train_timesteps}")
        if self.image_size < 1 or self.image_size % self.unet.stride:
            raise ValueError(
                f"image_size must be a positive multiple of the stride {self.unet.stride}, got {self.image_size}"
            )


def make_scheduler(config: IdmConfig) -> DDIMScheduler:
    """A DDIM scheduler on the model's noise schedule: the one training noises with and sampling inverts."""
    return DDIMScheduler(cosine_alphas_cumprod(config.num_train_timesteps), config.prediction_type)


Predict = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class IdmModel(nn.Module):
    def __init__(self, config: IdmConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet)

    def forward(self, noisy: torch.Tensor, lq: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t `b 3 h w` and LQ faces `b 3 h w`, both in [−1, 1], and timesteps `b` → the prediction `b 3 h w`."""
        return self.unet(noisy, timesteps, lq)

    def to_diffused(self, hq: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """x0 of the diffusion for HQ and LQ faces in [−1, 1]: the HQ face, or the scaled residual HQ − LQ."""
        if self.config.diffuse == "face":
            return hq
        return (hq - lq) * self.config.residual_scale

    def from_diffused(self, x0: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """The HQ face in [−1, 1] that x0 stands for (`to_diffused` inverted)."""
        if self.config.diffuse == "face":
            return x0
        return lq + x0 / self.config.residual_scale

    def diffused_bounds(self, lq: torch.Tensor) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """Per-pixel range of x0 whose face is in [−1, 1]: the sampler clips x̂0 to it."""
        if self.config.diffuse == "face":
            return -1.0, 1.0
        return self.to_diffused(torch.full_like(lq, -1.0), lq), self.to_diffused(torch.ones_like(lq), lq)

    def sample(
        self,
        lq: torch.Tensor,
        steps: int,
        generator: torch.Generator | None = None,
        predict: Predict | None = None,
        noise_scale: float = 1.0,
    ) -> torch.Tensor:
        """`b 3 h w` LQ faces in [0, 1] → restored faces in [0, 1], by `steps` DDIM steps (eta = 0) from one
        face's noise drawn with `generator` and scaled by `noise_scale`, shared by every face; `predict` (default:
        this model) maps (x_t, LQ, timesteps) to the prediction."""
        predict = predict or self
        scheduler = make_scheduler(self.config)
        scheduler.set_timesteps(steps)
        condition = lq.float() * 2 - 1
        noise = torch.randn((1, *condition.shape[1:]), generator=generator, device=lq.device) * noise_scale
        sample = noise.expand_as(condition).contiguous()
        bounds = self.diffused_bounds(condition)
        for t in scheduler.timesteps:
            timesteps = torch.full((lq.shape[0],), int(t), dtype=torch.long, device=lq.device)
            sample = scheduler.step(predict(sample, condition, timesteps), t, sample, clip=bounds).prev_sample
        return ((self.from_diffused(sample, condition) + 1) / 2).clamp(0, 1)


class IdmDenoise(nn.Module):
    """x_t, LQ faces (both `b 3 S S` in [−1, 1]) and timesteps `b` → the prediction: one sampler step's network."""

    def __init__(self, model: IdmModel):
        super().__init__()
        self.model = model

    def forward(self, noisy: torch.Tensor, lq: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.model(noisy, lq, timesteps)


class IdmRestorer(WeightsRestorer):
    name = "idm"
    kind = KIND
    config_class = IdmConfig
    model_class = IdmModel
    knobs = (
        Knob("steps", int, DEFAULT_STEPS, 1, 1000, "sampler steps (DDIM; 1 = the one-shot estimate)"),
        Knob("seed", int, 0, 0, 2**31 - 1, "random seed of the starting noise"),
        Knob(
            "noise_scale",
            float,
            DEFAULT_NOISE_SCALE,
            0.0,
            1.0,
            "scale of the starting noise (0 = deterministic, nearest the input; 1 = the learned distribution)",
            old_names=("temperature",),
        ),
        keep_input_knob(DEFAULT_KEEP_INPUT, old_names=("fidelity",)),
    )

    def __init__(self, model: IdmModel):
        super().__init__(model)
        self.networks = {"denoise": IdmDenoise(self.model)}
        most = model.config.num_train_timesteps  # a model's `steps` range ends at its own T
        self.knobs = tuple(replace(k, high=min(k.high, most)) if k.name == "steps" else k for k in type(self).knobs)

    @staticmethod
    def face_size_of(config: IdmConfig) -> int:
        return config.image_size

    def network_specs(self, batch: int = 1) -> dict[str, NetworkSpec]:
        size, last = self.face_size, self.model.config.num_train_timesteps - 1
        inputs = {
            "noisy": torch.randn(batch, 3, size, size),
            "lq": torch.rand(batch, 3, size, size) * 2 - 1,
            "timesteps": torch.full((batch,), last, dtype=torch.long),
        }
        return {"denoise": NetworkSpec(inputs, ("prediction",))}

    def restore_faces(
        self, faces: torch.Tensor, *, steps: int, seed: int, noise_scale: float, keep_input: float
    ) -> torch.Tensor:
        generator = torch.Generator(faces.device).manual_seed(int(seed))
        denoise = self.networks["denoise"]
        restored = self.model.sample(resize_faces(faces, self.face_size), steps, generator, denoise, noise_scale)
        return blend_with_input(faces, restored, keep_input)

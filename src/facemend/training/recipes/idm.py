"""How `idm` is trained: one stage (`denoise`) on LQ/HQ pairs degraded on the fly.

- `diffusion`: per pair, x0 (the HQ face, or its scaled residual over the LQ face: `diffuse`), a timestep
  t ~ U{0, …, T − 1} and noise ε; the UNet sees x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε beside the LQ face and is
  trained with a plain MSE on the scheduler's target (v by default). On v this weights the x0 error by
  SNR + 1 ≥ 1; min-SNR weighting (Hang et al., 2023) is not used on purpose: it weights the x0
  error by min(SNR, γ), which vanishes at the high-noise end, exactly where a few-step restorer makes its main
  prediction (with one step, its only one).
- No adversarial or perceptual loss (no discriminator): the sampler's refinement is the method's answer to blur.
- Validation: PSNR of the LQ input and of samples at 1 and `DEFAULT_STEPS` steps (seed 0) on the fixed batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from facemend.methods.idm import DEFAULT_STEPS, KIND, IdmConfig, IdmModel, make_scheduler
from facemend.metrics.pixel import psnr
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput

VALIDATION_STEPS = (1, DEFAULT_STEPS)


class IdmRecipe(Recipe):
    name = "idm"
    kind = KIND
    config_class = IdmConfig
    model_class = IdmModel
    losses = frozenset({"diffusion"})
    paired = True

    def __init__(self, model_config: dict[str, Any], discriminator_config: dict[str, Any]):
        super().__init__(model_config, discriminator_config)
        self.scheduler = make_scheduler(self.config)

    def build_discriminator(self) -> None:
        return None

    def generator_step(self, model: IdmModel, batch, stage: StageConfig, discriminator) -> StepOutput:
        hq, lq = batch["hq"] * 2 - 1, batch["lq"] * 2 - 1
        original = model.to_diffused(hq, lq)
        noise = torch.randn_like(original)
        timesteps = torch.randint(0, self.scheduler.num_train_timesteps, (hq.shape[0],), device=hq.device)
        prediction = model(self.scheduler.add_noise(original, noise, timesteps), lq, timesteps)
        diffusion = F.mse_loss(prediction.float(), self.scheduler.training_target(original, noise, timesteps))
        loss = stage.weight("diffusion") * diffusion
        return StepOutput(loss, {"diffusion": diffusion.item(), "loss": loss.item()})

    def validate(self, model: IdmModel, batch):
        lq, hq = batch["lq"], batch["hq"]
        scores: dict[str, float] = {"psnr_rgb_lq": float(psnr(lq, hq).mean())}
        rows = [lq]
        for steps in VALIDATION_STEPS:
            restored = model.sample(lq, steps, torch.Generator(lq.device).manual_seed(0))
            scores[f"psnr_rgb_s{steps}"] = float(psnr(restored, hq).mean())
            rows.append(restored)
        return scores, [*rows, hq]

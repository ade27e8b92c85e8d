"""How `idm` is trained: one stage (`denoise`) on LQ/HQ pairs degraded on the fly.

- `diffusion`: per pair, x0 (the HQ face, or its scaled residual over the LQ face: `diffuse`), a timestep
  t ~ U{0, …, T − 1} and noise ε; the UNet sees x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε beside the LQ face and is
  trained with a plain MSE on the scheduler's target (v by default). On v this weights the x0 error by
  SNR + 1 ≥ 1; min-SNR weighting (Hang et al., 2023) is not used on purpose: it weights the x0
  error by min(SNR, γ), which vanishes at the high-noise end, exactly where a few-step restorer makes its main
  prediction (with one step, its only one).
- `l1`, `perceptual` (optional, 0 by default): the same losses as the tokenizer's, on the face the one-step
  estimate x̂0 stands for, against the HQ face, at every sampled t. Plain MSE on v makes x̂0 the posterior
  mean, which at the high-noise end (where a one- or two-step restorer makes its main prediction) is a soft
  average face; the measured result was higher PSNR but a dlib identity further from the HQ face than the
  input's (issue 8's note). These losses pull x̂0 towards a sharp face instead. They bias the score estimate
  away from the posterior mean, which matters little to a DDIM sampler at a few steps.
  Measured (idm-tiny, 653 steps of diffusion + L1 + perceptual at weights 1/1/1 from the 5,646-step snapshot,
  100 facemend-test faces, one step): NIQE 23.2 → 19.8 (medium) and 21.9 → 17.9 (heavy), but IDD 0.394 → 0.416
  and 0.550 → 0.564, FD-dlib 0.066 → 0.075 and 0.107 → 0.117: sharper, further from the person. So
  configs/idm/tiny.yaml trains on the diffusion loss alone.
- No adversarial loss (no discriminator).
- Validation: PSNR of the LQ input and of samples at 1 and `DEFAULT_STEPS` steps (seed 0) on the fixed batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from facemend.methods.idm.model import DEFAULT_STEPS, KIND, IdmConfig, IdmModel, make_scheduler
from facemend.metrics.pixel import psnr
from facemend.training.config import StageConfig
from facemend.training.recipe import Recipe, StepOutput, reconstruction_step

VALIDATION_STEPS = (1, DEFAULT_STEPS)
UNCLIPPED = (-math.inf, math.inf)  # x̂0 for the losses: clipping would zero their gradient where it bites


class IdmRecipe(Recipe):
    name = "idm"
    kind = KIND
    config_class = IdmConfig
    model_class = IdmModel
    losses = frozenset({"diffusion", "l1", "perceptual", "identity", "face_perceptual"})
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
        noisy = self.scheduler.add_noise(original, noise, timesteps)
        prediction = model(noisy, lq, timesteps)
        diffusion = F.mse_loss(prediction.float(), self.scheduler.training_target(original, noise, timesteps))
        loss = stage.weight("diffusion") * diffusion
        logs = {"diffusion": diffusion.item()}
        if not any(stage.weight(name) for name in ("l1", "perceptual", "identity", "face_perceptual")):
            logs["loss"] = loss.item()
            return StepOutput(loss, logs)
        estimate, _ = self.scheduler.predict_original(prediction, timesteps, noisy, clip=UNCLIPPED)
        face = (model.from_diffused(estimate, lq) + 1) / 2
        return reconstruction_step(self, face, batch["hq"], None, stage, None, loss, logs)

    def validate(self, model: IdmModel, batch):
        lq, hq = batch["lq"], batch["hq"]
        scores: dict[str, float] = {"psnr_rgb_lq": float(psnr(lq, hq).mean())}
        rows = [lq]
        for steps in VALIDATION_STEPS:
            restored = model.sample(lq, steps, torch.Generator(lq.device).manual_seed(0))
            scores[f"psnr_rgb_s{steps}"] = float(psnr(restored, hq).mean())
            rows.append(restored)
        return scores, [*rows, hq]

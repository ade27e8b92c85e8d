"""DDIM (Song et al., 2021, "Denoising Diffusion Implicit Models") as a scheduler with no network inside.

The method owns the loop — sample = Gaussian noise; for each timestep t: output = network(sample, t);
sample = scheduler.step(output, t, sample).prev_sample. Training draws t uniformly and asks the scheduler for
the noisy input (`add_noise`) and the target (`training_target`), so the parametrisation is written once.

Choices (ours; equations are the DDIM paper's unless said otherwise):
- Noise schedule: the cosine schedule of Nichol & Dhariwal (2021, eq. 17) over T = 1000 training steps, as a
  plain function (`cosine_alphas_cumprod`) shared by training and sampling. Its last ᾱ is ~2e-9: the first
  sampling step starts from (almost) pure noise, as sampling does.
- Prediction type: `v_prediction` by default (Salimans & Ho, 2022: v = √ᾱ ε − √(1 − ᾱ) x0). At the high-noise
  end, where a few-step sampler makes its most important prediction, ε-prediction must divide by √ᾱ ≈ 0 to
  estimate x0, whereas x0 = √ᾱ x_t − √(1 − ᾱ) v stays well-conditioned for every t. Plain MSE on v weights
  the x0 error by SNR + 1 ≥ 1 (Salimans & Ho's "SNR+1" weighting), so the high-noise steps — for a restorer a
  regression from the LQ face alone — are trained at full weight. `sample` (x0) and `epsilon` are available.
- Timesteps: "trailing" spacing (Lin et al., 2024, sec. 3.4): N steps at T − 1, T − 1 − T/N, …, always
  starting at the last training step. One step (N = 1) returns the model's x0 estimate from pure noise, i.e.
  a one-shot regression; the final step always returns x̂0 (ᾱ of the step after the last = 1).
- x̂0 is clipped to [−1, 1] (or to per-pixel bounds the caller gives, e.g. those that keep LQ + residual in
  range) and ε̂ recomputed from the clipped x̂0, so each update stays on the line between x_t and an in-range
  image.
- `eta` = 0 (the default) is deterministic DDIM; 1 gives DDPM-like ancestral noise (eq. 16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PREDICTION_TYPES = ("v_prediction", "epsilon", "sample")
Bounds = tuple[float | torch.Tensor, float | torch.Tensor]  # (low, high) of x̂0


def cosine_alphas_cumprod(num_train_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t for t = 0 … T − 1 (float64, decreasing in (0, 1)): f(t) = cos²((t/T + s)/(1 + s) · π/2), ᾱ_t =
    f(t + 1) / f(0), with each β_t = 1 − ᾱ_t / ᾱ_{t−1} clipped at `max_beta` (Nichol & Dhariwal, 2021, eq. 17)."""
    steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, dim=0)


@dataclass
class DDIMStepOutput:
    prev_sample: torch.Tensor  # b c h w: x_{t−1}, the sample after this step
    pred_original_sample: torch.Tensor  # b c h w: x̂0, this step's estimate of the clean image (clipped)


class DDIMScheduler:
    """Deterministic (eta = 0) or stochastic DDIM sampling of `b c h w` samples in [−1, 1]."""

    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str = "v_prediction"):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}")
        self.alphas_cumprod = alphas_cumprod.double()
        self.prediction_type = prediction_type
        self.num_train_timesteps = len(alphas_cumprod)
        self.set_timesteps(1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """N descending timesteps, trailing: the first is always T − 1."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            most = self.num_train_timesteps
            raise ValueError(f"num_inference_steps must be in [1, {most}], got {num_inference_steps}")
        self.num_inference_steps = num_inference_steps
        spacing = self.num_train_timesteps / num_inference_steps
        trailing = torch.arange(self.num_train_timesteps, 0, -spacing, dtype=torch.float64).round().long() - 1
        self.timesteps = trailing[:num_inference_steps]

    def _alpha(self, timesteps: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """ᾱ at `timesteps` (an int, or `b`), shaped to broadcast over `like` (`b c h w`); ᾱ_{−1} = 1."""
        timesteps = torch.as_tensor(timesteps, device=self.alphas_cumprod.device)
        alpha = torch.where(timesteps >= 0, self.alphas_cumprod[timesteps.clamp(min=0)], 1.0)
        return alpha.to(like.device, torch.float32).reshape(-1, *[1] * (like.ndim - 1))

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (eq. 4), per sample at `b` timesteps."""
        alpha = self._alpha(timesteps, original)
        return alpha.sqrt() * original + (1 - alpha).sqrt() * noise

    def training_target(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the network learns to output at `b` timesteps: v, ε or x0 (`prediction_type`)."""
        if self.prediction_type == "sample":
            return original
        if self.prediction_type == "epsilon":
            return noise
        alpha = self._alpha(timesteps, original)
        return alpha.sqrt() * noise - (1 - alpha).sqrt() * original  # v (Salimans & Ho, 2022, sec. 4)

    def predict_original(
        self, model_output: torch.Tensor, timesteps: torch.Tensor | int, sample: torch.Tensor, clip: Bounds = (-1, 1)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂0 clipped to `clip` (low, high: numbers or tensors broadcasting over `sample`), ε̂ consistent with it)
        from the network's output at x_t = `sample`."""
        alpha = self._alpha(timesteps, sample)
        model_output = model_output.float()
        if self.prediction_type == "v_prediction":
            original = alpha.sqrt() * sample - (1 - alpha).sqrt() * model_output
        elif self.prediction_type == "epsilon":
            original = (sample - (1 - alpha).sqrt() * model_output) / alpha.sqrt()  # eq. 9, "predicted x0"
        else:
            original = model_output
        low, high = (torch.as_tensor(bound, dtype=original.dtype, device=original.device) for bound in clip)
        original = torch.clamp(original, low, high)
        noise = (sample - alpha.sqrt() * original) / (1 - alpha).sqrt()  # eq. 4 solved for ε
        return original, noise

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        eta: float = 0.0,
        clip: Bounds = (-1, 1),
    ) -> DDIMStepOutput:
        """The network's output at `timestep` (one of `timesteps`) for x_t = `sample` → x_{t−1}; x̂0 is clipped to
        `clip` (see `predict_original`)."""
        timestep = int(timestep)
        index = (self.timesteps == timestep).nonzero()
        if not len(index):
            raise ValueError(f"timestep {timestep} is not one of the {self.num_inference_steps} set timesteps")
        index = int(index[0, 0])
        prev_timestep = int(self.timesteps[index + 1]) if index + 1 < self.num_inference_steps else -1
        sample = sample.float()
        alpha, alpha_prev = self._alpha(timestep, sample), self._alpha(prev_timestep, sample)
        original, noise = self.predict_original(model_output, timestep, sample, clip)

        # eq. 16: σ_t(η) = η √((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t−1})
        sigma = eta * ((1 - alpha_prev) / (1 - alpha) * (1 - alpha / alpha_prev)).sqrt()
        # eq. 12: x_{t−1} = √ᾱ_{t−1} x̂0 + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t ε_t
        direction = (1 - alpha_prev - sigma**2).clamp(min=0).sqrt() * noise
        prev_sample = alpha_prev.sqrt() * original + direction
        if eta > 0:
            fresh = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev_sample = prev_sample + sigma * fresh
        return DDIMStepOutput(prev_sample=prev_sample, pred_original_sample=original)

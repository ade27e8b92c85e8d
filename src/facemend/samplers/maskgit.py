"""MaskGIT's iterative parallel decoding (Chang et al., 2022, sec. 3.2) as a scheduler with no network inside.

The method owns the loop — start with every token masked, then for each timestep: logits = network(sample);
sample = scheduler.step(logits, t, sample).prev_sample. Each step predicts every masked token, keeps the most
confident ones and re-masks the rest, so that a share γ((t + 1) / N) of the tokens is still masked after step t;
γ is the cosine schedule, also used to draw training mask ratios. One step (N = 1) is one-shot prediction.

Choices (MaskGIT leaves them open or fixes them for class-conditional ImageNet):
- `temperature` = 0 takes the argmax and ranks by its probability: fully deterministic. Above 0, tokens are
  drawn from softmax(logits / temperature) (after `top_k`, if set), and the confidences that choose what is kept
  get Gumbel noise scaled by temperature × (1 − (t + 1) / N), MaskGIT's annealed "choice temperature" tied to the
  sampling temperature, so one knob sets how random a run is.
- Tokens kept at one step stay fixed; every step keeps at least one more token, so N steps always finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def cosine_mask_ratio(progress: torch.Tensor | float) -> torch.Tensor:
    """γ(r) = cos(π r / 2): the share of tokens masked at progress r ∈ [0, 1] (1 at r = 0, 0 at r = 1)."""
    return torch.cos(torch.as_tensor(progress, dtype=torch.float32) * (math.pi / 2))


@dataclass
class MaskGitStepOutput:
    prev_sample: torch.Tensor  # b n: tokens after this step, `mask_token_id` where still masked
    pred_original_sample: torch.Tensor  # b n: this step's guess at every position (kept tokens included)


class MaskGitScheduler:
    """Iterative parallel decoding of `b n` token sequences over a vocabulary without the [MASK] id."""

    def __init__(self, mask_token_id: int):
        self.mask_token_id = mask_token_id
        self.num_inference_steps = 1
        self.timesteps = torch.arange(1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.arange(num_inference_steps)

    def initial_sample(self, batch: int, length: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every token masked: `b n`."""
        return torch.full((batch, length), self.mask_token_id, dtype=torch.long, device=device)

    def step(
        self,
        logits: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 0.0,
        top_k: int = 0,
    ) -> MaskGitStepOutput:
        """`b n K` logits for the `b n` `sample` at step `timestep` (0-based) → the next sample."""
        logits = logits.float()
        batch, length, vocabulary = logits.shape
        masked = sample == self.mask_token_id
        if 0 < top_k < vocabulary:
            kth = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        log_probs = logits.log_softmax(dim=-1)
        if temperature > 0:
            probs = (logits / temperature).softmax(dim=-1).view(-1, vocabulary)
            guess = torch.multinomial(probs, 1, generator=generator).view(batch, length)
        else:
            guess = logits.argmax(dim=-1)
        guess = torch.where(masked, guess, sample)
        confidence = log_probs.gather(-1, guess.unsqueeze(-1)).squeeze(-1)

        progress = (int(timestep) + 1) / self.num_inference_steps
        noise_scale = temperature * (1.0 - progress)
        if noise_scale > 0:
            uniform = torch.rand(confidence.shape, generator=generator, device=confidence.device)
            confidence = confidence + noise_scale * -torch.log(-torch.log(uniform.clamp(1e-20, 1.0)))
        confidence = confidence.masked_fill(~masked, float("inf"))  # kept tokens are never re-masked

        still_masked = masked.sum(dim=1)
        target = torch.floor(length * cosine_mask_ratio(progress)).long().to(sample.device)
        remask_count = torch.minimum(target.expand_as(still_masked), (still_masked - 1).clamp(min=0))
        rank = confidence.argsort(dim=1).argsort(dim=1)  # 0 = least confident
        remask = rank < remask_count.unsqueeze(1)
        prev_sample = torch.where(remask, torch.full_like(guess, self.mask_token_id), guess)
        return MaskGitStepOutput(prev_sample=prev_sample, pred_original_sample=guess)

"""Exponential moving average of a model's weights, on torch's `AveragedModel`.

A module may name parameters in `ema_exempt`: those are copied from the live model instead of averaged. A VQ
codebook whose dead codes are restarted needs this: an averaged restarted code would sit between its old and
its new place for thousands of steps, matching no encoder output.

With `warmup`, the n-th update averages with decay min(decay, (1 + n) / (10 + n)) (n = 0 copies): a short
stage's average then follows its weights instead of keeping a share of its starting point (at a constant
0.999, 13.5% of the average is still the starting weights after 2,000 steps).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of update `updates` (0-based) under EMA warm-up."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        def average(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
            weight = 1.0 - (warmup_decay(decay, int(updates)) if warmup else decay)
            torch._foreach_lerp_(averaged, current, weight)

        self.averaged = AveragedModel(model, multi_avg_fn=average).eval()

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)
        live = dict(model.named_modules())
        for name, module in self.module.named_modules():
            for parameter in getattr(module, "ema_exempt", ()):
                getattr(module, parameter).copy_(getattr(live[name], parameter))

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)

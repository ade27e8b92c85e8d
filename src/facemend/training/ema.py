"""Exponential moving average of a model's weights, on torch's `AveragedModel`.

A module may name parameters in `ema_exempt`: those are copied from the live model instead of averaged. A VQ
codebook whose dead codes are restarted needs this: an averaged restarted code would sit between its old and
its new place for thousands of steps, matching no encoder output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay)).eval()

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

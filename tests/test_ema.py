"""EMA weights: constant decay and warm-up follow their recurrences; exempt parameters are copied."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facemend.training.ema import EMA, warmup_decay


@pytest.mark.parametrize("warmup", [False, True])
def test_average_follows_its_recurrence(warmup):
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.9, warmup=warmup)
    expected = None
    for n, value in enumerate([3.0, -1.0, 2.0, 5.0, 0.5, 4.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        decay = warmup_decay(0.9, n) if warmup else 0.9
        expected = value if n == 0 else decay * expected + (1 - decay) * value
        assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)


def test_warmup_decay_ramps_to_the_configured_decay():
    assert warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert warmup_decay(0.999, 90) == pytest.approx(0.91)
    assert warmup_decay(0.999, 10**6) == 0.999


def test_exempt_parameters_are_copied_not_averaged():
    class Codebook(nn.Module):
        ema_exempt = ("codes",)

        def __init__(self):
            super().__init__()
            self.codes = nn.Parameter(torch.zeros(2))
            self.other = nn.Parameter(torch.zeros(2))

    model = Codebook()
    ema = EMA(model, decay=0.5, warmup=True)
    ema.update(model)
    with torch.no_grad():
        model.codes.fill_(7.0)
        model.other.fill_(7.0)
    ema.update(model)
    assert torch.equal(ema.module.codes, torch.full((2,), 7.0))
    assert ema.module.other[0].item() == pytest.approx(7.0 * (1 - warmup_decay(0.5, 1)))

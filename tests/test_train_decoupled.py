"""Airbench's decoupled hyperparameters, against airbench94.py's formulas written out."""

import math

import torch
from torch import nn

from graphnet.train.decoupled import Decoupled, set_schedule
from graphnet.train.schedule import PiecewiseLinear


def airbench_triangle(steps, start, end, peak):
    """airbench94.py's ``triangle``, written out directly."""
    xp = torch.tensor([0, int(peak * steps), steps])
    fp = torch.tensor([start, 1, end])
    x = torch.arange(1 + steps)
    m = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
    b = fp[:-1] - m * xp[:-1]
    i = torch.clamp(torch.sum(torch.ge(x[:, None], xp[None, :]), 1) - 1, 0, len(m) - 1)
    return m[i] * x + b[i]


def triangle(total_steps: int) -> PiecewiseLinear:
    """airbench94's lr multiplier at step ``i``: 0.2, 1 at 23% of the steps, 0.07 at the end."""
    return PiecewiseLinear((0, int(0.23 * total_steps), total_steps), (0.2, 1.0, 0.07))


def test_triangle_matches_airbench():
    total = math.ceil(50_000 // 1024 * 9.9)  # 476 steps
    expected = airbench_triangle(total, 0.2, 0.07, 0.23)
    ours = torch.tensor([triangle(total)(i) for i in range(total + 1)])
    torch.testing.assert_close(ours, expected.to(ours.dtype), atol=1e-6, rtol=1e-6)
    assert triangle(total)(int(0.23 * total)) == 1.0


def test_decoupled_lr_and_weight_decay_match_airbench():
    d = Decoupled()
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr = 11.5 / kilostep
    wd = 0.0153 * 1024 / kilostep
    assert math.isclose(d.step_lr, lr) and math.isclose(d.step_decay, wd)
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    groups = d.groups([{"params": [a], "lr_mult": 64.0, "wd_mult": 1.0}, {"params": [b], "lr_mult": 1.0}])
    # airbench: norm biases lr * 64 with weight_decay wd / (lr * 64); the rest lr with wd / lr
    assert math.isclose(groups[0]["lr"], lr * 64) and math.isclose(groups[0]["weight_decay"], wd / (lr * 64))
    assert math.isclose(groups[1]["lr"], lr) and math.isclose(groups[1]["weight_decay"], wd / lr)


def test_one_scheduled_step_decays_every_group_by_the_same_fraction():
    d = Decoupled()
    a, b = nn.Parameter(torch.ones(4)), nn.Parameter(torch.ones(4))
    opt = d.sgd([{"params": [a], "lr_mult": 64.0}, {"params": [b]}])
    set_schedule(opt, 0.5)
    a.grad, b.grad = torch.zeros(4), torch.zeros(4)  # only the decay moves the weights
    opt.step()
    # Nesterov with an empty buffer: the step is lr·(1 + momentum)·(wd·w)
    shrink = 0.5 * d.step_decay * (1 + d.momentum)
    torch.testing.assert_close(a.detach(), torch.full((4,), 1 - shrink))
    torch.testing.assert_close(b.detach(), torch.full((4,), 1 - shrink))
    set_schedule(opt, 1.0)
    assert math.isclose(opt.param_groups[0]["lr"], d.step_lr * 64)

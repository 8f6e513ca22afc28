"""Warm-up of batch-norm running statistics, outside the (possibly compiled) forward.

A batch norm with momentum ``m`` keeps ``r_t = (1 - m) r_{t-1} + m b_t`` of the batch
statistics ``b_t``, so after ``t`` steps the initial ``r_0`` (mean 0, variance 1) still
has weight ``(1 - m)^t``: 15% after the 18 steps of a 2-epoch run on 5,000 images at
Page's ``m = 0.1``, and evaluation then normalises with statistics the network never had.
Here step ``t`` uses ``max(m, 1/t)`` instead, the running mean of the batch statistics
until it reaches ``m`` (10 steps at 0.1); later steps are untouched, so a full-length
recipe's statistics are Page's. The correction needs no change to the forward: with
``r'`` the statistics before the step and ``r`` after it,
``r_t = r' + (max(m, 1/t) / m) (r - r')``.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningStatsWarmup:
    """Call :meth:`before` and :meth:`after` around each training forward, with its 1-based step."""

    def __init__(self, network: nn.Module):
        self.norms = [(m.momentum, m.running_mean, m.running_var) for m in network.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
                      and m.momentum]
        self.steps = max((round(1 / momentum) for momentum, _, _ in self.norms), default=0)
        self.saved: list[torch.Tensor] = []

    def before(self, step: int) -> None:
        if step <= self.steps:
            self.saved = [stat.clone() for _, mean, var in self.norms for stat in (mean, var)]

    @torch.no_grad()
    def after(self, step: int) -> None:
        if step > self.steps:
            return
        stats = [(momentum, stat) for momentum, mean, var in self.norms for stat in (mean, var)]
        for (momentum, stat), previous in zip(stats, self.saved):
            scale = max(momentum, 1 / step) / momentum
            if scale > 1:
                stat.copy_(torch.lerp(previous, stat, scale))
        self.saved = []

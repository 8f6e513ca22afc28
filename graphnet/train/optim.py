"""Nesterov SGD in Page's form, with parameter groups from the graph's lr/wd hints.

Page (cifar10-fast) sums the loss over the batch and steps every weight ``w`` with gradient
``g`` and velocity ``v`` as::

    dw = -lr * (g + wd * w);  v = m * v + dw;  w += dw + m * v

with ``lr = value / batch_size`` and ``wd = 5e-4 * batch_size``, so the effective rates per
sample are ``value`` and 5e-4. ``torch.optim.SGD(nesterov=True)`` keeps a velocity without
the lr in it and multiplies by the current lr at each step: the two take the same steps while
the lr is constant, and differ (slightly, over the momentum horizon) while it changes, because
Page's velocity remembers the lr each gradient was taken at. This module implements Page's.
"""

from __future__ import annotations

import torch
from torch import nn

from ..rewrites import param_groups
from .recipes import Recipe


class NesterovSGD(torch.optim.Optimizer):
    """Page's Nesterov update (module doc). Each group has ``lr``, ``weight_decay`` and
    ``momentum``; ``lr_mult`` scales the lr :func:`set_lr` sets. ``step`` overwrites ``p.grad``.
    """

    def __init__(self, params, lr: float = 0.0, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "lr_mult": 1.0})

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("NesterovSGD takes no closure")
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            dw = [p.grad for p in params]
            for p in params:
                if "v" not in self.state[p]:
                    self.state[p]["v"] = torch.zeros_like(p)
            v = [self.state[p]["v"] for p in params]
            m = group["momentum"]
            torch._foreach_add_(dw, params, alpha=group["weight_decay"])
            torch._foreach_mul_(dw, -group["lr"])
            torch._foreach_mul_(v, m)
            torch._foreach_add_(v, dw)
            torch._foreach_add_(dw, v, alpha=m)
            torch._foreach_add_(params, dw)


def make_optimizer(network: nn.Module, recipe: Recipe) -> NesterovSGD:
    """Page's SGD for ``network``: wd ``recipe.weight_decay * batch_size`` times each group's ``wd_mult``."""
    groups = [{"params": g["params"], "lr_mult": g.get("lr_mult", 1.0),
               "weight_decay": recipe.weight_decay * recipe.batch_size * g.get("wd_mult", 1.0)}
              for g in param_groups(network)]  # from the graph's lr/wd hints
    return NesterovSGD(groups, momentum=recipe.momentum)


def set_lr(optimizer: torch.optim.Optimizer, value: float, batch_size: int) -> None:
    """Set each group's step lr to ``value / batch_size`` times its ``lr_mult``."""
    for group in optimizer.param_groups:
        group["lr"] = value / batch_size * group.get("lr_mult", 1.0)

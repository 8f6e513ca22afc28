"""The recipes' optimizers, with parameter groups from the graph's lr/wd hints: Page's
Nesterov SGD (below), airbench94's decoupled SGD and airbench94_muon's Muon + SGD
(:func:`make_optimization` picks by ``recipe.optimizer``).

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

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..rewrites import param_groups
from .decoupled import Decoupled, nesterov_sgd, set_schedule
from .frozen_after import timed_params
from .muon import Muon, groups_with_grads, orthogonalise, split_filters
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
        for group, params in groups_with_grads(self, closure):
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


def make_optimizer(network: nn.Module, recipe: Recipe, batch_size: int | None = None) -> NesterovSGD:
    """Page's SGD for ``network``: wd ``recipe.weight_decay * batch_size`` (default the recipe's)
    times each group's ``wd_mult``."""
    batch_size = batch_size or recipe.batch_size
    groups = [{"params": g["params"], "lr_mult": g.get("lr_mult", 1.0),
               "weight_decay": recipe.weight_decay * batch_size * g.get("wd_mult", 1.0)}
              for g in param_groups(network)]  # from the graph's lr/wd hints
    return NesterovSGD(groups, momentum=recipe.momentum)


def set_lr(optimizer: torch.optim.Optimizer, value: float, batch_size: int) -> None:
    """Set each group's step lr to ``value / batch_size`` times its ``lr_mult``."""
    for group in optimizer.param_groups:
        group["lr"] = value / batch_size * group.get("lr_mult", 1.0)


@dataclass
class Optimization:
    """A run's optimizers and how the recipe's schedule sets their lrs: ``schedule(value, epoch)``
    with the schedule's ``value`` at training progress ``epoch`` (fractional). ``before_step``:
    step ``k`` (from 1) reads the schedule at the progress before it, ``(k - 1) / steps`` per
    epoch, as airbench94.py (its scheduler steps after the optimizer) and airbench94_muon.py
    do; else at ``k / steps``, as Page's cifar10-fast (its optimizer counts the step first)."""

    optimizers: list[torch.optim.Optimizer]
    schedule: Callable[[float, float], None]
    before_step: bool = False

    def progress(self, step: int, steps: int) -> float:
        """The training progress, in epochs, at which step ``step`` (from 1) of ``steps`` an epoch reads the schedule."""
        return (step - self.before_step) / steps

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)


def make_optimization(network: nn.Module, recipe: Recipe, batch_size: int | None = None,
                      newton_schulz: Callable[..., torch.Tensor] = orthogonalise) -> Optimization:
    """The optimizers ``recipe.optimizer`` names for ``network``, for batches of ``batch_size``
    (default the recipe's); Muon orthogonalises by ``newton_schulz`` (the trainer's compiled one
    under ``--compile``):

    - ``page``: :class:`NesterovSGD`; the schedule's values are per-sample lrs (:func:`set_lr`).
    - ``decoupled``: airbench94's Nesterov SGD (:class:`~graphnet.train.decoupled.Decoupled`
      with ``recipe.optimizer_params``); the values multiply its lrs.
    - ``muon``: airbench94_muon's :class:`~graphnet.train.muon.Muon` for the conv filters
      (``filter_lr``, ``filter_momentum``, ``ns_steps``) and Nesterov SGD (``momentum``) for the
      rest: ``bias_lr`` for 1-D params, ``head_lr`` for 2-D ones, weight decay
      ``weight_decay · batch_size`` per step, decoupled from the lr, in one group per lr (and
      end, below); the values multiply all lrs, and a param with a ``frozen_after`` hint (the
      whitening bias) has its lr decay linearly to 0 over its epochs instead.

    Airbench's two read the schedule before each step (:attr:`Optimization.before_step`), Page's after it.
    """
    batch_size = batch_size or recipe.batch_size
    kind, params = recipe.optimizer, recipe.optimizer_params
    if kind == "page":
        page = make_optimizer(network, recipe, batch_size)
        return Optimization([page], lambda value, epoch: set_lr(page, value, batch_size))
    groups = param_groups(network)
    if kind == "decoupled":
        sgd = Decoupled(**params, batch_size=batch_size).sgd(groups)
        return Optimization([sgd], lambda value, epoch: set_schedule(sgd, value), before_step=True)
    filters, rest = split_filters(groups)
    timed = {id(p): epochs for p, epochs in timed_params(network).values()}
    decay = params["weight_decay"] * batch_size
    sgd_groups: dict[tuple[float, float | None], dict] = {}  # one per lr and end: airbench94_muon's three
    for p in (p for g in rest for p in g["params"]):
        lr = params["bias_lr"] if p.dim() == 1 else params["head_lr"]
        group = sgd_groups.setdefault((lr, timed.get(id(p))), {"params": [], "lr": lr, "weight_decay": decay / lr,
                                                               "until": timed.get(id(p))})
        group["params"].append(p)
    sgd = nesterov_sgd(list(sgd_groups.values()), lr=params["bias_lr"], momentum=params["momentum"])
    muon = Muon(filters, lr=params["filter_lr"], momentum=params["filter_momentum"], ns_steps=params["ns_steps"],
                newton_schulz=newton_schulz)

    def schedule(value: float, epoch: float) -> None:
        for optimizer in (sgd, muon):
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                until = group.get("until")
                group["lr"] = group["initial_lr"] * (value if until is None else max(0.0, 1 - epoch / until))

    return Optimization([sgd, muon], schedule, before_step=True)

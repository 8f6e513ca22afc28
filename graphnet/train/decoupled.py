"""Airbench's decoupled hyperparameters: Nesterov SGD whose lr, momentum and weight decay are tuned apart.

With the loss summed over the batch and constant gradients, Nesterov SGD's step is
``lr · (1 + 1/(1 - momentum))`` times the per-example gradient sum, so airbench quotes the
lr per 1,024 examples and divides by ``1024 · (1 + 1/(1 - momentum))`` (the "kilostep
scale"): changing the momentum then leaves the step size alone. The weight decay is quoted
per 1,024 examples too and made independent of the lr: a group with step lr ``lr_g`` gets
``weight_decay = decay / lr_g``, so each step shrinks the weights by ``decay`` times the
schedule, whatever the group's lr multiplier. The schedule is the recipe's (airbench94: a
triangle, 0.2 → 1 at 23% of the epochs → 0.07 at the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class Decoupled:
    """Decoupled SGD settings (module doc); airbench94.py's defaults."""

    lr: float = 11.5  # per 1,024 examples
    momentum: float = 0.85  # Nesterov
    weight_decay: float = 0.0153  # per 1,024 examples
    batch_size: int = 1024

    @property
    def kilostep_scale(self) -> float:
        return 1024 * (1 + 1 / (1 - self.momentum))

    @property
    def step_lr(self) -> float:
        """The lr PyTorch's SGD takes, at schedule 1."""
        return self.lr / self.kilostep_scale

    @property
    def step_decay(self) -> float:
        """The fraction of each weight decayed per step, at schedule 1."""
        return self.weight_decay * self.batch_size / self.kilostep_scale

    def groups(self, groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """SGD groups from ``[{'params', 'lr_mult', 'wd_mult'}, ...]`` (``graphnet.rewrites.param_groups``).

        Each gets ``lr = step_lr · lr_mult`` and ``weight_decay = step_decay · wd_mult / lr``.
        """
        out = []
        for g in groups:
            lr = self.step_lr * g.get("lr_mult", 1.0)
            out.append({**g, "lr": lr, "weight_decay": self.step_decay * g.get("wd_mult", 1.0) / lr})
        return out

    def sgd(self, groups: Sequence[dict[str, Any]]) -> torch.optim.SGD:
        """:func:`nesterov_sgd` over :meth:`groups` (schedule it with :func:`set_schedule`)."""
        return nesterov_sgd(self.groups(groups), lr=self.step_lr, momentum=self.momentum)


def nesterov_sgd(groups: Sequence[dict[str, Any]], lr: float, momentum: float) -> torch.optim.SGD:
    """``torch.optim.SGD`` with Nesterov momentum over ``groups``, fused where torch has a fused
    kernel for the params' device (CUDA, and the CPU since torch 2.4; airbench94_muon.py's
    ``fused=True``), else foreach: one kernel, or one call per group, instead of a loop over the
    params (benchmarks/optimizer_step.py)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    device = next(p for g in groups for p in g["params"]).device.type
    fast = {"fused": True} if device in _get_fused_kernels_supported_devices() else {"foreach": True}
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, **fast)


def set_schedule(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    """Set each group's lr to its base lr (``initial_lr``, recorded on the first call) times ``multiplier``."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * multiplier

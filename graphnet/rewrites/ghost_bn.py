"""Ghost batch norm (Page's step 5): the op ``ghost_batch_norm`` and the pass ``ghost_bn``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import register
from .registry import PassError, register_pass
from .rules import bound, rule


class GhostBatchNorm(nn.BatchNorm2d):
    """Batch norm over ``num_splits`` ghost batches of one batch, each with its own statistics.

    Split ``j`` holds samples ``j, j + k, j + 2k, ...`` (``k = num_splits``): the batch seen as
    ``(N/k, C*k, H, W)``, so one ``F.batch_norm`` call normalises every split (the batch is
    shuffled, so any fixed partition does). That reshape is free for a contiguous batch but
    copies a channels_last one, and the output comes back contiguous. Running stats are kept per split,
    ``running_mean.view(k, C)[j]``; evaluation uses their mean over the splits.
    """

    def __init__(self, num_features: int, num_splits: int = 16, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        if num_splits < 1:
            raise ValueError(f"num_splits must be at least 1, not {num_splits}")
        self.num_splits = num_splits
        self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
        self.register_buffer("running_var", torch.ones(num_features * num_splits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.num_splits
        if not self.training:
            return F.batch_norm(x, self.running_mean.view(k, c).mean(0), self.running_var.view(k, c).mean(0),
                                self.weight, self.bias, False, 0.0, self.eps)
        if n % k:
            raise ValueError(f"ghost batch norm: a batch of {n} does not split into {k} equal ghost batches")
        out = F.batch_norm(x.reshape(n // k, c * k, h, w), self.running_mean, self.running_var,
                           self.weight.repeat(k), self.bias.repeat(k), True, self.momentum, self.eps)
        return out.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"


def _ghost_batch_norm(c: int, num_splits: int = 16, eps: float = 1e-5, momentum: float = 0.1,
                      weight_init: float = 1.0, bias_init: float = 0.0) -> GhostBatchNorm:
    """Ghost batch norm: each of num_splits ghost batches normalised with its own statistics."""
    bn = GhostBatchNorm(c, num_splits, eps=eps, momentum=momentum)
    nn.init.constant_(bn.weight, weight_init)
    nn.init.constant_(bn.bias, bias_init)
    return bn


ghost_batch_norm = register("ghost_batch_norm", _ghost_batch_norm, kind="module")


def _ghost_bn(match, num_splits: int = 16) -> dict:
    """Replace every batch norm by ghost batch norm over ``num_splits`` ghost batches (params kept).

    Batch norm works best with around 32 examples per batch; at batch 512, 16 splits
    normalise groups of 32 while the GPU still runs big batches. The extra noise
    regularises, and Page raised the learning rate and cut two epochs with it.
    The training batch must divide by ``num_splits``.
    """
    if num_splits < 1:
        raise PassError(f"num_splits must be at least 1, not {num_splits}")
    return {"norm": bound("norm").changed(op="ghost_batch_norm", num_splits=num_splits)}


ghost_bn = register_pass(rule({"norm": "batch_norm"}, _ghost_bn, applied={"norm": "ghost_batch_norm"}, name="ghost_bn"))

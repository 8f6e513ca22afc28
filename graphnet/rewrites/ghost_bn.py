"""Ghost batch norm (Page's step 5): the op ``ghost_batch_norm`` and the pass ``ghost_bn``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..compile import module_target
from ..graph import Graph
from ..ops import PositiveInt, register
from .registry import State, register_pass
from .rules import bound, rule


class GhostBatchNorm(nn.BatchNorm2d):
    """Batch norm over ``num_splits`` ghost batches of one batch, each with its own statistics.

    The batch is shuffled, so any fixed partition into ``k = num_splits`` ghost batches does;
    running stats are kept per split, ``running_mean.view(k, C)[j]``, and evaluation uses their
    mean over the splits. ``method`` says how training computes it:

    - ``'reshape'``: split ``j`` holds samples ``j, j + k, j + 2k, ...``, so the batch seen as
      ``(N/k, C*k, H, W)`` is one ``F.batch_norm`` call. The reshape is free for a contiguous
      batch but copies a channels_last one, and the output comes back contiguous.
    - ``'view'``: the same splits, statistics by ``var_mean`` over the ``(N/k, k, C, H, W)``
      view, then one elementwise normalisation: no copy, the output in the input's memory format.
    - ``'chunks'``: split ``j`` is the ``j``-th block of ``N/k`` consecutive samples, one
      ``F.batch_norm`` call each: in either memory format a block is a view that the batch norm
      kernel takes as it is, and the output (one ``torch.cat``) keeps the input's format. On
      the CPU in channels_last this is 2.3x faster than ``'reshape'`` (forward + backward,
      benchmarks/README.md); on a GPU its ``k`` calls cost ``k`` kernel launches.
    - ``'auto'`` (default): ``'chunks'`` for a channels_last batch on the CPU, else
      ``'reshape'`` (:meth:`auto_method`).

    Given the same samples in each split, all give the same outputs and running stats; which
    samples share a split follows the method, so under ``'auto'`` the batch's layout and device.
    """

    METHODS = ("auto", "reshape", "view", "chunks")

    def __init__(self, num_features: int, num_splits: int = 16, eps: float = 1e-5, momentum: float = 0.1,
                 method: str = "auto"):
        super().__init__(num_features, eps=eps, momentum=momentum)
        if num_splits < 1:
            raise ValueError(f"num_splits must be at least 1, not {num_splits}")
        self.num_splits = num_splits
        self.method = method
        self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
        self.register_buffer("running_var", torch.ones(num_features * num_splits))

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if value not in self.METHODS:
            raise ValueError(f"ghost batch norm method must be one of {', '.join(self.METHODS)}, not {value!r}")
        self._method = value

    @staticmethod
    def auto_method(device_type: str, channels_last: bool) -> str:
        """What ``'auto'`` trains by on a batch on ``device_type`` (``'cpu'``, ``'cuda'``) in that layout."""
        return "chunks" if device_type == "cpu" and channels_last else "reshape"

    def method_for(self, x: torch.Tensor) -> str:
        """The method that trains on batch ``x``: ``method``, with ``'auto'`` resolved."""
        if self._method != "auto":
            return self._method
        return self.auto_method(x.device.type, x.is_contiguous(memory_format=torch.channels_last)
                                and not x.is_contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.num_splits
        if not self.training:
            return F.batch_norm(x, self.running_mean.view(k, c).mean(0), self.running_var.view(k, c).mean(0),
                                self.weight, self.bias, False, 0.0, self.eps)
        if n % k:
            raise ValueError(f"ghost batch norm: a batch of {n} does not split into {k} equal ghost batches")
        method = self.method_for(x)
        if method == "chunks":
            mean, var = self.running_mean.view(k, c), self.running_var.view(k, c)
            return torch.cat([F.batch_norm(part, mean[j], var[j], self.weight, self.bias, True, self.momentum, self.eps)
                              for j, part in enumerate(x.chunk(k))])
        if method == "view":
            return self._forward_view(x)
        out = F.batch_norm(x.reshape(n // k, c * k, h, w), self.running_mean, self.running_var,
                           self.weight.repeat(k), self.bias.repeat(k), True, self.momentum, self.eps)
        return out.reshape(n, c, h, w)

    def _forward_view(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.num_splits
        split = x.view(n // k, k, c, h, w)  # a view in either memory format
        var, mean = torch.var_mean(split.float(), dim=(0, 3, 4), correction=0)  # k x C, in fp32 as F.batch_norm
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        out = split * scale[None, :, :, None, None].to(x.dtype) + shift[None, :, :, None, None].to(x.dtype)
        with torch.no_grad():  # as F.batch_norm: the unbiased variance goes into the running stats
            count = split.numel() // (k * c)
            self.running_mean.lerp_(mean.flatten(), self.momentum)
            self.running_var.lerp_(var.flatten() * (count / max(count - 1, 1)), self.momentum)
        return out.view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}, method={self._method}"


def _ghost_batch_norm(c: int, num_splits: int = 16, eps: float = 1e-5, momentum: float = 0.1,
                      weight_init: float = 1.0, bias_init: float = 0.0) -> GhostBatchNorm:
    """Ghost batch norm: each of num_splits ghost batches normalised with its own statistics."""
    bn = GhostBatchNorm(c, num_splits, eps=eps, momentum=momentum)
    nn.init.constant_(bn.weight, weight_init)
    nn.init.constant_(bn.bias, bias_init)
    return bn


ghost_batch_norm = register("ghost_batch_norm", _ghost_batch_norm, kind="module")


def _ghost_bn(match, num_splits: PositiveInt = 16) -> dict:
    """Replace every batch norm by ghost batch norm over ``num_splits`` ghost batches (params kept).

    Batch norm works best with around 32 examples per batch; at batch 512, 16 splits
    normalise groups of 32 while the GPU still runs big batches. The extra noise
    regularises, and Page raised the learning rate and cut two epochs with it.
    The training batch must divide by ``num_splits``.
    """
    return {"norm": bound("norm").changed(op="ghost_batch_norm", num_splits=num_splits)}


def _ghost_bn_state(state: State, before: Graph, after: Graph, **params) -> dict[str, torch.Tensor]:
    """Each new ghost batch norm's running statistics: the batch norm's, once per split (their mean is
    what evaluation uses, so the eval-mode function is kept)."""
    out = {}
    made = [p for p in after.find(op="ghost_batch_norm") if p in before and before[p].op == "batch_norm"]
    for path in made:
        for name in ("running_mean", "running_var"):
            key = f"{module_target(path)}.{name}"
            if key in state:
                out[key] = state[key].repeat(after[path].params["num_splits"])
    return out


ghost_bn = register_pass(rule({"norm": "batch_norm"}, _ghost_bn, applied={"norm": "ghost_batch_norm"}, name="ghost_bn",
                              keeps="eval", state=_ghost_bn_state))

"""Muon for conv filters, as airbench94_muon.py uses it, with SGD for the other params.

Muon steps each filter bank along the orthogonalised momentum: the update's matrix
(``c_out × c_in·kh·kw``) is replaced by the nearest semi-orthogonal matrix, approximated by
a quintic Newton–Schulz iteration (coefficients 3.4445, -4.7750, 2.0315, as in airbench
and ``torch.optim.Muon``), which equalises the step across all directions of the filter
bank. Airbench also rescales each filter bank to norm ``sqrt(c_out)`` before each step.

``torch.optim.Muon`` (torch >= 2.9) takes 2-D params only and has no weight rescaling, so
conv filters go through this module's :class:`Muon`; its iteration is checked against
torch's where torch has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Sequence

import torch
from torch import nn

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(g: torch.Tensor, steps: int = 3, eps: float = 1e-7,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """The Newton–Schulz approximation of ``U Vᵀ`` for the 2-D ``g = U S Vᵀ``, in ``dtype``:
    by default bfloat16 on CUDA (as airbench), float32 elsewhere (where bfloat16 matrix
    products are often emulated: slower and less precise).

    Singular values end near 1 (between about 0.7 and 1.2 after 3 steps, not exactly 1:
    the coefficients trade convergence for speed).
    """
    dtype = dtype or (torch.bfloat16 if g.is_cuda else torch.float32)
    if g.dim() != 2:
        raise ValueError(f"orthogonalise takes a matrix, not a tensor of shape {tuple(g.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def groups_with_grads(optimizer: torch.optim.Optimizer, closure: Any) -> Iterator[tuple[dict, list[torch.Tensor]]]:
    """Each param group of ``optimizer`` with those of its params that have a gradient (a group
    with none is skipped); graphnet's optimizers take no closure."""
    if closure is not None:
        raise ValueError(f"{type(optimizer).__name__} takes no closure")
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if params:
            yield group, params


class Muon(torch.optim.Optimizer):
    """Airbench's Muon: Nesterov momentum, then each param's update orthogonalised as a
    ``len(p) × rest`` matrix; with ``normalise_weights`` each param is first rescaled to
    norm ``sqrt(len(p))``. No weight decay (the rescaling bounds the weights).

    The momentum, rescaling and step are one foreach call each over a group's params;
    ``newton_schulz`` (default :func:`orthogonalise`) runs per param, and may be its
    ``torch.compile`` (the trainer's ``--compile``, as airbench94_muon.py compiles it)."""

    def __init__(self, params, lr: float = 0.24, momentum: float = 0.6, nesterov: bool = True,
                 ns_steps: int = 3, normalise_weights: bool = True,
                 newton_schulz: Callable[..., torch.Tensor] = orthogonalise):
        if lr < 0 or momentum < 0:
            raise ValueError(f"lr and momentum must not be negative, not {lr} and {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                                  "normalise_weights": normalise_weights})
        self.newton_schulz = newton_schulz

    @torch.no_grad()
    def step(self, closure=None):
        for group, params in groups_with_grads(self, closure):
            m, grads = group["momentum"], [p.grad for p in params]
            bufs = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p.grad)) for p in params]
            torch._foreach_mul_(bufs, m)
            torch._foreach_add_(bufs, grads)
            updates = torch._foreach_add(grads, bufs, alpha=m) if group["nesterov"] else bufs
            if group["normalise_weights"]:
                scales = torch._foreach_reciprocal(torch._foreach_norm(params))
                torch._foreach_mul_(scales, [len(p) ** 0.5 for p in params])
                torch._foreach_mul_(params, scales)
            orthogonal = [self.newton_schulz(g.reshape(len(g), -1), group["ns_steps"]).view(g.shape).to(p.dtype)
                          for p, g in zip(params, updates)]
            torch._foreach_add_(params, orthogonal, alpha=-group["lr"])


def split_filters(groups: Sequence[dict[str, Any]]) -> tuple[list[nn.Parameter], list[dict[str, Any]]]:
    """The conv filters (4-D params) of ``groups`` (``graphnet.rewrites.param_groups``), and the groups without them."""
    filters, rest = [], []
    for g in groups:
        kept = [p for p in g["params"] if p.dim() != 4]
        filters += [p for p in g["params"] if p.dim() == 4]
        if kept:
            rest.append({**g, "params": kept})
    return filters, rest

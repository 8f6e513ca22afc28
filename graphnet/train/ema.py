"""Exponential moving average of a network's weights, for evaluation (Page's step 8)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A copy of a network whose float state (parameters and buffers, BN statistics included)
    averages the network's: on every ``every``-th call of :meth:`update` (the first call
    included, as Page), ``ema = d * ema + (1 - d) * state``.

    The decay ``d`` is Page's ``rho = momentum ** every`` once warmed up; the n-th update
    (from 0) uses ``min(rho, (1 + n) / (10 + n))``, the warm-up of TensorFlow's
    ``ExponentialMovingAverage``. Without it the average of a short run is mostly its early,
    untrained weights (a 2-epoch CPU run at 5,000 images has only 4 updates against a
    horizon of 20); with it the first update nearly copies the state, and the final recipe
    (about 200 updates on CIFAR-10) runs at ``rho`` over its last 20 updates, which carry
    nearly all of the average's weight. Other state (BN's step counters) is copied.
    The network's tensors are bound at construction: it must update them in place (as the
    optimiser, batch norm and ``load_state_dict`` do).
    """

    def __init__(self, network: nn.Module, momentum: float = 0.99, every: int = 5):
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        self.network = copy.deepcopy(network)
        self.network.requires_grad_(False)
        self.every = int(every)
        self.rho = momentum ** every
        self.calls = 0
        self.updates = 0
        # fixed lists of the tensors themselves (the optimiser and batch norm update them in
        # place), so an update is one foreach call with no state_dict() rebuilt; a deep copy
        # keeps every dtype, so each pair matches (fp16 weights, fp32 batch norms)
        pairs = list(zip(self.network.state_dict().values(), network.state_dict().values()))
        self.averaged = [ema for ema, _ in pairs if ema.is_floating_point()]
        self.current = [value for ema, value in pairs if ema.is_floating_point()]
        self.copied = [(ema, value) for ema, value in pairs if not ema.is_floating_point()]

    def reset(self, state: dict[str, torch.Tensor]) -> None:
        """Start again from ``state``."""
        self.network.load_state_dict(state)
        self.calls = self.updates = 0

    def decay(self) -> float:
        """The decay of the next update (see the class doc)."""
        return min(self.rho, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Count a training step; average the network in if it is an ``every``-th one."""
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:
            return
        weight = 1.0 - self.decay()
        self.updates += 1
        torch._foreach_lerp_(self.averaged, self.current, weight)
        for ema, value in self.copied:
            ema.copy_(value)

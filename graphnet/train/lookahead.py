"""Airbench's lookahead: an EMA of the weights that the weights are reset to every few steps.

As airbench94.py trains: from epoch ``start_epoch`` on, every ``every``-th optimizer step
averages the network's float state (parameters and buffers, BN statistics included) into
the EMA, ``ema = rho·ema + (1 - rho)·state``, and copies the EMA back into the network.
The first such step only takes a snapshot. The decay warms up over training,
``rho = decay_base**every · (step / total_steps)**decay_pow``, so the average moves fast
early and averages strongly at the end. After each epoch (the last included) the network
is reset to the EMA once more, so the trained weights are the EMA's.
"""

from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    """Lookahead state for one run of ``network`` (module doc); call :meth:`after_step` and
    :meth:`end_epoch`. The network's float tensors are bound at construction, as the EMA binds
    them, so each update is foreach calls on fixed lists: the network must update them in place
    (as the optimiser, batch norm and ``load_state_dict`` do)."""

    def __init__(self, network: nn.Module, total_steps: int, every: int = 5, decay_base: float = 0.95,
                 decay_pow: float = 3.0, start_epoch: int = 3):
        if total_steps < 1 or every < 1:
            raise ValueError(f"total_steps and every must be at least 1, not {total_steps} and {every}")
        self.total_steps, self.every = int(total_steps), int(every)
        self.decay_base, self.decay_pow, self.start_epoch = decay_base, decay_pow, start_epoch
        self.state = [v for v in network.state_dict().values() if v.is_floating_point()]
        self.ema: list[torch.Tensor] | None = None

    def decay(self, step: int) -> float:
        """The EMA decay at optimizer step ``step`` (counted from 1)."""
        return self.decay_base ** self.every * (step / self.total_steps) ** self.decay_pow

    @torch.no_grad()
    def after_step(self, step: int, epoch: int) -> None:
        """Call after optimizer step ``step`` (counted from 1, over the whole run) of epoch ``epoch`` (from 0)."""
        if epoch < self.start_epoch or step % self.every:
            return
        if self.ema is None:
            self.ema = [v.clone() for v in self.state]
            return
        torch._foreach_lerp_(self.ema, self.state, 1.0 - self.decay(step))
        torch._foreach_copy_(self.state, self.ema)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Reset the network's float state to the EMA (nothing before the first snapshot)."""
        if self.ema is not None:
            torch._foreach_copy_(self.state, self.ema)

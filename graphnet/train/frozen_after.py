"""The ``frozen_after`` hint: params that train for the first epochs only, then stop.

A node's attr ``frozen_after: {param: epochs}`` (set by ``whiten_input_pm`` on the
whitening conv's bias) means ``param`` trains while the training progress, in epochs
(fractional: steps done / steps per epoch), is below ``epochs``, and is frozen from then on,
as airbench94.py turns off ``requires_grad`` at the epoch's start. Here the param keeps
``requires_grad=True`` and its gradient is dropped after each backward instead
(:func:`drop_grads` of :func:`frozen_at`), so a compiled training step never sees a change
(no recompile inside the clock) and DistributedDataParallel sees every param used in every
step. With gradients zeroed by ``set_to_none=True``, a param without a gradient is skipped by
the optimizer, momentum included: the same steps as ``requires_grad=False``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..compile import Network, module_target


def timed_params(network: Network) -> dict[str, tuple[nn.Parameter, float]]:
    """``{'whiten.bias': (param, epochs), ...}`` for every ``frozen_after`` hint of the network's nodes."""
    out = {}
    for node in network.spec_graph.nodes:
        for name, epochs in node.attrs.get("frozen_after", {}).items():
            out[f"{module_target(node.path)}.{name}"] = (getattr(network.node_module(node.path), name), epochs)
    return out


def frozen_at(network: Network, epoch: float) -> dict[str, nn.Parameter]:
    """The timed params frozen at training progress ``epoch`` (those whose epochs it has reached), by name."""
    return {name: param for name, (param, epochs) in timed_params(network).items() if epoch >= epochs}


def drop_grads(params: Iterable[nn.Parameter]) -> None:
    """Drop the gradients of ``params`` (call after backward, before the optimizer step)."""
    for param in params:
        param.grad = None

"""The ``frozen_after`` hint: params that train for the first epochs only, then stop.

A node's attr ``frozen_after: {param: epochs}`` (set by ``whiten_input_pm`` on the
whitening conv's bias) means ``param`` trains while the training progress, in epochs
(fractional: steps done / steps per epoch), is below ``epochs``, and is frozen from then on,
as airbench94.py sets ``requires_grad = epoch < whiten_bias_epochs`` at each epoch's start.
Give the optimizer the params first (they are trainable at epoch 0), zero gradients with
``set_to_none=True`` (so a frozen param keeps no gradient and the optimizer skips it,
momentum included), and call :func:`apply_frozen_after` before each step or epoch.
"""

from __future__ import annotations

from torch import nn

from ..compile import Network, module_target


def timed_params(network: Network) -> dict[str, tuple[nn.Parameter, float]]:
    """``{'whiten.bias': (param, epochs), ...}`` for every ``frozen_after`` hint of the network's nodes."""
    out = {}
    for node in network.spec_graph.nodes:
        for name, epochs in node.attrs.get("frozen_after", {}).items():
            out[f"{module_target(node.path)}.{name}"] = (getattr(network.node_module(node.path), name), epochs)
    return out


def apply_frozen_after(network: Network, epoch: float) -> list[str]:
    """Set each timed param trainable iff ``epoch < its epochs``; return the names frozen now."""
    frozen = []
    for name, (param, epochs) in timed_params(network).items():
        param.requires_grad_(epoch < epochs)
        if epoch >= epochs:
            frozen.append(name)
    return frozen

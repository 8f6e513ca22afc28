"""What the trainer reads from a network's node attrs: parameter groups and data initialisers."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..compile import Network
from ..errors import SpecError
from ..ops import get_op

INITIALISERS: dict[str, Callable[..., None]] = {}
READS_INPUT: set[str] = set()  # the initialisers that need the node's input (a forward to reach it)


def register_initialiser(name: str, reads_input: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``fn(module, x, **params)``, which sets ``module``'s weights from its input ``x``;
    with ``reads_input=False``, ``x`` is None and no forward is run for it.

    A node names it with the attr ``init: {'name': name, 'params': {...}}``.
    """
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        INITIALISERS[name] = fn
        if reads_input:
            READS_INPUT.add(name)
        else:
            READS_INPUT.discard(name)
        return fn

    return register


def param_groups(network: Network) -> list[dict[str, Any]]:
    """The network's trainable params grouped by their nodes' ``lr_mult``/``wd_mult`` attrs.

    Returns ``[{'params': [...], 'lr_mult': x, 'wd_mult': y}, ...]``, one group per distinct
    pair in order of first use; params named in a node's ``frozen`` attr (or with
    ``requires_grad`` False) are left out, and a param shared by two nodes counts once.
    """
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for node in network.spec_graph.nodes:
        if get_op(node.op).kind != "module":
            continue
        module = network.node_module(node.path)
        lr, wd = node.attrs.get("lr_mult", {}), node.attrs.get("wd_mult", {})
        for name, p in module.named_parameters():
            if name in node.attrs.get("frozen", ()) or not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            groups.setdefault((lr.get(name, 1.0), wd.get(name, 1.0)), []).append(p)
    return [{"params": ps, "lr_mult": lr, "wd_mult": wd} for (lr, wd), ps in groups.items()]


class _Captured(BaseException):
    """Stops the forward once every initialiser has run (not an Exception, so nothing catches it)."""


@torch.no_grad()
def initialise(network: Network, images: torch.Tensor) -> Network:
    """Run each node's initialiser (attr ``init``) once, on the input that node sees.

    Initialisers that do not read their input run first, directly. Then one forward of
    ``images`` in eval mode (norm stats untouched): a pre-hook on each other node's module
    calls its initialiser before the module runs, so later initialisers see the effect of
    earlier ones, and the forward stops after the last. ``images`` are what the network's
    input sees, on its device: e.g. 10,000 normalised training images without padding.
    Returns ``network``, initialised in place.
    """
    todo = {n.path: n.attrs["init"] for n in network.spec_graph.nodes if "init" in n.attrs}
    for path, init in todo.items():
        if init.get("name") not in INITIALISERS:
            raise SpecError(f"unknown initialiser {init.get('name')!r} (known: {', '.join(INITIALISERS)})", path)
        if get_op(network.spec_graph[path].op).kind != "module":
            raise SpecError("an init attr needs a module node", path)
    for path, init in todo.items():
        if init["name"] not in READS_INPUT:
            INITIALISERS[init["name"]](network.node_module(path), None, **init.get("params", {}))
    pending = {path for path, init in todo.items() if init["name"] in READS_INPUT}

    def hook(path: str) -> Callable[[nn.Module, tuple], None]:
        def pre(module: nn.Module, inputs: tuple) -> None:
            INITIALISERS[todo[path]["name"]](module, inputs[0], **todo[path].get("params", {}))
            pending.discard(path)
            if not pending:
                raise _Captured

        return pre

    handles = [network.node_module(path).register_forward_pre_hook(hook(path))
               for path in pending]
    training = network.training
    network.eval()
    try:
        if pending:
            network(images)
    except _Captured:
        pass
    finally:
        for h in handles:
            h.remove()
        network.train(training)
    return network

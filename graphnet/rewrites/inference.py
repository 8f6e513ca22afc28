"""Rewrites for inference that keep the function: ``fold_bn``, ``remove_dropout``, ``remove_unused``."""

from __future__ import annotations

from typing import Sequence

import torch

from ..compile import module_target, unused_nodes
from ..graph import Graph
from .registry import State, no_match, register_pass
from .rules import NORMS, any_of, bound, match, params_with_defaults, pat, rule


def _tracks_stats(node) -> bool:
    """A norm whose eval mode uses its running statistics (``track_running_stats``), so it is a fixed affine map."""
    return params_with_defaults(node).get("track_running_stats", True)


FOLD = {"conv": "conv", "norm": pat(any_of(*NORMS), where=_tracks_stats)}


def _fold_bn(match) -> dict:
    """Fold each conv -> batch norm pair into the conv, which gets a bias; the norm is removed.

    In eval mode a batch norm with running statistics is the affine map
    ``y = (x - mean) * weight / sqrt(var + eps) + bias``, per channel, so the conv before it
    can compute both: its filters scaled by ``weight / sqrt(var + eps)``, its bias
    ``(b - mean) * weight / sqrt(var + eps) + bias``. One op fewer per block at inference,
    and no normalisation pass over the activations. A ghost batch norm folds with the mean of
    its per-split statistics, as it evaluates. The weights come with the state map
    (``rewrite(graph, ['fold_bn'], state=sd)``); eval-exact, not for training (the norm is gone).
    The conv keeps its path and attrs; a norm without running statistics is left alone.
    """
    return {"conv": bound("conv").changed(bias=True)}


def _fold_bn_state(state: State, before: Graph, after: Graph) -> dict[str, torch.Tensor]:
    """The folded convs' weights and biases, from theirs and their norms' (computed in float64)."""
    out = {}
    for m in match(before, FOLD):
        conv, norm = module_target(m["conv"]), module_target(m["norm"])
        if m["norm"] in after or f"{norm}.running_mean" not in state:
            continue
        weight = state[f"{conv}.weight"]
        params = params_with_defaults(m.node("norm"))
        splits = params.get("num_splits", 1)  # a ghost batch norm evaluates with the mean over its splits
        mean, var = (state[f"{norm}.{k}"].double().view(splits, -1).mean(0) for k in ("running_mean", "running_var"))
        gamma = state.get(f"{norm}.weight", torch.ones_like(mean)).double()
        beta = state.get(f"{norm}.bias", torch.zeros_like(mean)).double()
        scale = gamma / torch.sqrt(var + params["eps"])
        bias = state.get(f"{conv}.bias", torch.zeros_like(mean)).double()
        out[f"{conv}.weight"] = (weight.double() * scale.view(-1, *[1] * (weight.dim() - 1))).to(weight.dtype)
        out[f"{conv}.bias"] = ((bias - mean) * scale + beta).to(weight.dtype)
    return out


fold_bn = register_pass(rule(FOLD, _fold_bn, name="fold_bn", keeps="eval", state=_fold_bn_state))

remove_dropout = register_pass(rule({"drop": "dropout"}, {}, name="remove_dropout", keeps="eval", doc="""
    Remove every dropout node; its consumers read its input.

    Dropout is the identity in eval mode, so an inference graph does not need the node:
    one call fewer, and nothing that a ``train()`` call could switch back on. Eval-exact.
    """))


@register_pass("remove_unused", keeps="exact")
def remove_unused(graph: Graph, outputs: Sequence[str] | None = None) -> Graph:
    """Remove the nodes that no output depends on (``outputs``: node paths; default the graph's output).

    ``compile`` runs every node, so a head or branch that nothing reads still costs its time
    (and ``compile`` warns, naming it). Removing it keeps what the outputs compute, in train
    and eval mode; the remaining nodes keep their paths, so their weights load as they were.
    """
    unused = unused_nodes(graph, None if outputs is None else list(outputs))
    if not unused:
        raise no_match("node that no output uses")
    return graph.splice(unused, {})

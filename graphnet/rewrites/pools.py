"""Max-pool moves: before the norm (Page's step 2), or only before the activation (exact)."""

from __future__ import annotations

from ..graph import Graph
from .match import ACTIVATIONS, MONOTONE_ACTIVATIONS, NORMS, chains, describe, no_match
from .registry import register_pass

POOL = ("max_pool",)
CONV = ("conv",)


@register_pass("pool_before_norm")
def pool_before_norm(graph: Graph) -> Graph:
    """Move the max-pool of each conv -> norm -> act -> pool chain to directly after the conv.

    The norm and activation then run on a quarter of the pixels, which cuts their share of
    the step time; Page found the accuracy cost small enough to buy back with one more epoch.
    Not exact: the norm sees pooled statistics.
    """
    pattern = (CONV, NORMS, ACTIVATIONS, POOL)
    found = chains(graph, *pattern)
    if not found:
        done = [c[1] for c in chains(graph, CONV, POOL, NORMS, ACTIVATIONS)]
        raise no_match("pool_before_norm", f"{describe(*pattern)} chain", done)
    for _, norm, act, pool in found:
        graph = graph.swap(act, pool).swap(norm, pool)
    return graph


@register_pass("pool_before_act")
def pool_before_act(graph: Graph) -> Graph:
    """Move the max-pool of each norm -> act -> pool chain to between the norm and the activation.

    The activation then runs on a quarter of the pixels. Exact for monotone activations
    (ReLU, CELU): the max of the activated values is the activation of the max.
    """
    pattern = (NORMS, MONOTONE_ACTIVATIONS, POOL)
    found = chains(graph, *pattern)
    if not found:
        done = [c[1] for c in chains(graph, NORMS, POOL, MONOTONE_ACTIVATIONS)]
        raise no_match("pool_before_act", f"{describe(*pattern)} chain", done)
    for _, act, pool in found:
        graph = graph.swap(act, pool)
    return graph

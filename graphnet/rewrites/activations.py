"""Activation swaps: ReLU -> CELU (Page's step 4), or any activation for another."""

from __future__ import annotations

from typing import Any

from ..graph import Graph
from .registry import register_pass
from .rules import Rule, bound, rule


def _celu(match, alpha: float = 0.075) -> dict:
    """Replace every ReLU by CELU(alpha) (paths are kept).

    CELU is a smoothed ReLU, and a smooth activation makes the optimisation better behaved:
    Page's net reached the same accuracy in three fewer epochs.
    """
    return {"act": bound("act").changed(op="celu", alpha=alpha)}


celu = register_pass(rule({"act": "relu"}, _celu, applied={"act": "celu"}, name="celu", keeps="changes"))


@register_pass("swap_activation", keeps="changes")
def swap_activation(graph: Graph, old: str = "relu", new: str = "celu", **params: Any) -> Graph:
    """Replace every ``old`` activation node by a ``new`` one with ``params`` (paths and attrs are kept).

    The general form of the CELU step, for trying other activations in the same places.
    """
    return Rule.of({"act": old}, {"act": (new, params)}, applied={"act": new})(graph)

"""Frozen batch-norm scales (Page's step 6), with the optimiser hints that go with them."""

from __future__ import annotations

from typing import Any, Mapping

from ..graph import Graph
from .match import NORMS, no_match
from .registry import register_pass


def _merged(attrs: Mapping[str, Any], frozen: str, lr_mult: dict[str, float], wd_mult: dict[str, float]) -> dict:
    """``attrs`` with ``frozen`` added to its frozen params and the multipliers set."""
    out = dict(attrs)
    out["frozen"] = [*attrs.get("frozen", ()), frozen]
    out["lr_mult"] = {**attrs.get("lr_mult", {}), **lr_mult}
    out["wd_mult"] = {**attrs.get("wd_mult", {}), **wd_mult}
    return out


@register_pass("freeze_bn_scale")
def freeze_bn_scale(graph: Graph, weight: float = 1.0, act_alpha_scale: float = 4.0, bias_lr_mult: float = 64.0,
                    bias_wd_mult: float = 1 / 64, final_scale: float | None = 1 / 16) -> Graph:
    """Fix every norm's scale at ``weight``; scale CELU alphas, the norm biases' lr and wd, and the output.

    Norm nodes get ``weight_init=weight`` and attrs ``frozen: ['weight']``,
    ``lr_mult: {'bias': bias_lr_mult}``, ``wd_mult: {'bias': bias_wd_mult}``; every ``celu``
    alpha is multiplied by ``act_alpha_scale``; the last ``mul`` node's weight becomes
    ``final_scale`` (None keeps it).

    Page found the learnable scales add little, so they can be fixed at 1; with the scale
    fixed, a larger CELU alpha (0.075 -> 0.3) keeps the activation as smooth relative to its
    input, the biases learn faster (lr x64, wd /64) and a smaller output scale keeps the
    logits in range. Together these cut one epoch. Apply after ``celu``.
    """
    norms = graph.find(op=NORMS)
    todo = [p for p in norms if "weight" not in graph[p].attrs.get("frozen", ())]
    if not todo:
        raise no_match("freeze_bn_scale", f"norm node ({'|'.join(NORMS)}) with a trainable scale", norms)
    for path in todo:
        node = graph[path]
        graph = graph.replace(path, params={**node.params, "weight_init": weight},
                              attrs=_merged(node.attrs, "weight", {"bias": bias_lr_mult}, {"bias": bias_wd_mult}))
    for path in graph.find(op="celu"):
        graph = graph.replace(path, params={"alpha": graph[path].params.get("alpha", 1.0) * act_alpha_scale})
    if final_scale is not None:
        scales = graph.find(op="mul")
        if not scales:
            raise no_match("freeze_bn_scale", "'mul' node to set to final_scale (pass final_scale=None to keep)")
        graph = graph.replace(scales[-1], params={"weight": final_scale})
    return graph

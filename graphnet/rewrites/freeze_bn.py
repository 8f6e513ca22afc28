"""Frozen batch-norm scales (Page's step 6), with the optimiser hints that go with them."""

from __future__ import annotations

from typing import Any, Mapping

from ..graph import Graph
from .registry import no_match, note, register_pass
from .rules import NORMS


def _merged(attrs: Mapping[str, Any], frozen: str, lr_mult: dict[str, float], wd_mult: dict[str, float]) -> dict:
    """``attrs`` with ``frozen`` added to its frozen params and the multipliers set."""
    out = dict(attrs)
    out["frozen"] = [*attrs.get("frozen", ()), frozen]
    if lr_mult:
        out["lr_mult"] = {**attrs.get("lr_mult", {}), **lr_mult}
    if wd_mult:
        out["wd_mult"] = {**attrs.get("wd_mult", {}), **wd_mult}
    return out


@register_pass("freeze_bn_scale", after=("celu",), keeps="changes")
def freeze_bn_scale(graph: Graph, weight: float = 1.0, act_alpha_scale: float | None = 4.0,
                    bias_lr_mult: float | None = 64.0, bias_wd_mult: float | None = 1 / 64,
                    final_scale: float | None = 1 / 16) -> Graph:
    """Fix every norm's scale at ``weight``; scale CELU alphas, the norm biases' lr and wd, and the output.

    Norm nodes get ``weight_init=weight`` and attrs ``frozen: ['weight']``,
    ``lr_mult: {'bias': bias_lr_mult}``, ``wd_mult: {'bias': bias_wd_mult}``; every ``celu``
    alpha is multiplied by ``act_alpha_scale``; the last ``mul`` node's weight becomes
    ``final_scale``. Each of the last four may be None (leave that part alone); a part with
    nothing to act on (no ``celu``, no ``mul``) is skipped with a note.

    Page found the learnable scales add little, so they can be fixed at 1; with the scale
    fixed, a larger CELU alpha (0.075 -> 0.3) keeps the activation as smooth relative to its
    input, the biases learn faster (lr x64, wd /64) and a smaller output scale keeps the
    logits in range. Together these cut one epoch. Must come after ``celu`` where both apply.
    """
    norms = graph.find(op=NORMS)
    todo = [p for p in norms if "weight" not in graph[p].attrs.get("frozen", ())]
    if not todo:
        raise no_match(f"norm node ({'|'.join(NORMS)}) with a trainable scale", norms)
    lr = {} if bias_lr_mult is None else {"bias": bias_lr_mult}
    wd = {} if bias_wd_mult is None else {"bias": bias_wd_mult}
    for path in todo:
        node = graph[path]
        graph = graph.replace(path, params={**node.params, "weight_init": weight},
                              attrs=_merged(node.attrs, "weight", lr, wd))
    if act_alpha_scale is not None:
        if not graph.find(op="celu"):
            note("no 'celu' node to scale by act_alpha_scale; left the activations alone")
        for path in graph.find(op="celu"):
            alpha = graph[path].params.get("alpha", 1.0)
            graph = graph.replace(path, params={**graph[path].params, "alpha": alpha * act_alpha_scale})
    if final_scale is not None:
        scales = graph.find(op="mul")
        if scales:
            graph = graph.replace(scales[-1], params={"weight": final_scale})
        else:
            note("no 'mul' node to set to final_scale; left the output scale alone (final_scale=None says so)")
    return graph

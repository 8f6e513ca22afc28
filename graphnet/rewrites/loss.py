"""Loss-graph passes: label smoothing (Page's step 3)."""

from __future__ import annotations

from ..graph import Graph
from ..ops import add_weighted, neg_mean
from ..spec import join
from .match import no_match, redirect
from .registry import RewriteError, register_pass


@register_pass("label_smoothing", applies_to="loss")
def label_smoothing(graph: Graph, alpha: float = 0.2) -> Graph:
    """Blend each per-sample NLL with the cross-entropy to a uniform target: (1-α)·NLL + α·mean_c(−log p_c).

    Label smoothing is a long-standing trick for training classifiers faster and to better
    accuracy: the net is no longer pushed to ever more confident logits. In Page's run it
    gained enough accuracy to cut two epochs. Equals ``F.cross_entropy(label_smoothing=alpha)``.
    """
    if not 0 <= alpha <= 1:
        raise RewriteError("label_smoothing", f"alpha must lie in [0, 1], not {alpha}")
    todo, done = [], []
    for nll in graph.find(op="nll"):
        smoothed = [c for c in graph.successors(graph[nll].inputs[0]) if graph[c].op == "neg_mean"]
        (done if smoothed else todo).append(smoothed[0] if smoothed else nll)
    if not todo:
        raise no_match("label_smoothing", "'nll' node without label smoothing", done)
    for nll in todo:
        log_probs, consumers, ns = graph[nll].inputs[0], graph.successors(nll), graph[nll].namespace
        uniform, smoothed = join(ns, "uniform"), join(ns, "smoothed")
        graph = graph.add(uniform, neg_mean(inputs=[log_probs]), after=nll)
        graph = graph.add(smoothed, add_weighted(wa=1 - alpha, wb=alpha, inputs=[nll, uniform]), after=uniform)
        graph = redirect(graph, nll, smoothed, consumers)
    return graph

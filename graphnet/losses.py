"""Loss graphs: specs with inputs ``('logits', 'target')`` whose output is the per-sample loss.

The trainer sums the per-sample loss over the batch. Loss-graph rewrites (label smoothing)
transform these like any other graph.
"""

from .ops import log_softmax, nll

LOSS_INPUTS = ("logits", "target")


def cross_entropy() -> dict:
    """Per-sample cross-entropy: -log softmax(logits)[target]."""
    return {"log_probs": log_softmax(inputs="logits"), "nll": nll(inputs=["log_probs", "target"])}

"""Loss-graph passes: label smoothing (Page's step 3)."""

from __future__ import annotations

from ..ops import Fraction, add_weighted, neg_mean
from .registry import register_pass
from .rules import bound, rule


def _label_smoothing(match, alpha: Fraction = 0.2) -> dict:
    """Blend each per-sample NLL with the cross-entropy to a uniform target: (1-α)·NLL + α·mean_c(−log p_c).

    Label smoothing is a long-standing trick for training classifiers faster and to better
    accuracy: the net is no longer pushed to ever more confident logits. In Page's run it
    gained enough accuracy to cut two epochs. Equals ``F.cross_entropy(label_smoothing=alpha)``.
    """
    return {"nll": bound("nll"), "uniform": neg_mean(inputs=["log_probs"]),
            "smoothed": add_weighted(wa=1 - alpha, wb=alpha, inputs=["nll", "uniform"])}


NLL = ("nll", {}, ["log_probs", "target"])
label_smoothing = register_pass(rule(
    {"nll": NLL}, _label_smoothing, name="label_smoothing", applies_to="loss", keeps="changes",
    applied=({"nll": NLL, "uniform": ("neg_mean", {}, ["log_probs"]),
              "smoothed": ("add_weighted", {}, ["nll", "uniform"])}, "uniform")))

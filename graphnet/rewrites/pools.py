"""Max-pool moves: before the norm (Page's step 2), or only before the activation (exact)."""

from __future__ import annotations

from .registry import register_pass
from .rules import ACTIVATIONS, MONOTONE_ACTIVATIONS, NORMS, any_of, bound, rule

NORM, ACT, MONOTONE = any_of(*NORMS), any_of(*ACTIVATIONS), any_of(*MONOTONE_ACTIVATIONS)

pool_before_norm = register_pass(rule(
    {"conv": "conv", "norm": NORM, "act": ACT, "pool": "max_pool"},
    {"conv": bound("conv"), "pool": bound("pool"), "norm": bound("norm"), "act": bound("act")},
    applied=({"conv": "conv", "pool": "max_pool", "norm": NORM, "act": ACT}, "pool"),
    name="pool_before_norm", keeps="changes", doc="""
    Move the max-pool of each conv -> norm -> act -> pool chain to directly after the conv.

    The norm and activation then run on a quarter of the pixels, which cuts their share of
    the step time; Page found the accuracy cost small enough to buy back with one more epoch.
    Not exact: the norm sees pooled statistics.
    """))

pool_before_act = register_pass(rule(
    {"norm": NORM, "act": MONOTONE, "pool": "max_pool"},
    {"norm": bound("norm"), "pool": bound("pool"), "act": bound("act")},
    applied=({"norm": NORM, "pool": "max_pool", "act": MONOTONE}, "pool"),
    name="pool_before_act", keeps="exact", doc="""
    Move the max-pool of each norm -> act -> pool chain to between the norm and the activation.

    The activation then runs on a quarter of the pixels. Exact for monotone activations
    (ReLU, CELU): the max of the activated values is the activation of the max.
    """))

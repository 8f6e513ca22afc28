"""Keller Jordan's airbench94 network (KellerJordan/cifar10-airbench, airbench94.py) as a spec.

whitening conv (2×2, no padding, 24 channels, biased) → GELU → three blocks of
conv → max-pool 2 → BN → GELU → conv → BN → GELU at widths 64/256/256 → global max-pool
(airbench's max-pool 3 on 32×32 images: any size works) → flatten → linear without bias →
scale 1/9. 1,972,792 parameters at width 1 for RGB (the whitening conv has 8 filters per
input channel).

``architecture`` is the bare network (default conv and BN settings); ``build`` applies
``PASSES``, which give it airbench's layer details: the whitening conv frozen and set from
data (±eigenpatches, eps 5e-4) with its bias trained for 3 epochs, Dirac initialisation of
the 3×3 convs, and BN with momentum 0.4 (airbench's 0.6 in its own convention), eps 1e-12,
scale frozen at 1, float32, bias lr ×64.

``build_muon`` is airbench94_muon.py's variant of the same network: the logits are the
linear layer's output divided by the width (1/256), the linear weights start at unit
standard deviation, and the BN biases keep the base lr (that script sets each group's lr).
"""

from graphnet.graph import build as build_graph
from graphnet.ops import adaptive_max_pool, batch_norm, conv, flatten, gelu, linear, max_pool, mul
from graphnet.rewrites import airbench  # noqa: F401 - registers the passes PASSES names
from graphnet.rewrites import rewrite

WIDTHS = {"block1": 64, "block2": 256, "block3": 256}
WHITEN_PATCH = 2

PASSES = [
    ("whiten_input_pm", {"patch": WHITEN_PATCH, "eps": 5e-4, "bias_epochs": 3}),
    ("dirac_init", {}),
    ("bn_settings", {"momentum": 0.4, "eps": 1e-12, "frozen_weight": True, "bias_lr_mult": 64.0,
                     "bias_wd_mult": 1.0}),
]


def block(c_in: int, c_out: int) -> dict:
    """conv → max-pool 2 → BN → GELU → conv → BN → GELU (no residual)."""
    return {"conv1": conv(c_in, c_out), "pool": max_pool(2), "norm1": batch_norm(c_out), "act1": gelu(),
            "conv2": conv(c_out, c_out), "norm2": batch_norm(c_out), "act2": gelu()}


def architecture(width_mult: float = 1.0, num_classes: int = 10, scale: float = 1 / 9, in_channels: int = 3) -> dict:
    """The bare network for images of ``in_channels`` channels; ``width_mult`` scales the blocks'
    widths (the whitening conv keeps its 2·in_channels·2² filters, 24 for RGB)."""
    c = {k: max(1, round(v * width_mult)) for k, v in WIDTHS.items()}
    whiten = 2 * in_channels * WHITEN_PATCH ** 2
    return {
        "whiten": conv(in_channels, whiten, WHITEN_PATCH, padding=0, bias=True),
        "whiten_act": gelu(),
        "block1": block(whiten, c["block1"]),
        "block2": block(c["block1"], c["block2"]),
        "block3": block(c["block2"], c["block3"]),
        "pool": adaptive_max_pool(1),
        "flatten": flatten(),
        "linear": linear(c["block3"], num_classes, bias=False),
        "logits": mul(scale),
    }


def build(width_mult: float = 1.0, num_classes: int = 10, in_channels: int = 3) -> dict:
    """The network with airbench's layer details (``PASSES`` applied to ``architecture``)."""
    return rewrite(build_graph(architecture(width_mult, num_classes, in_channels=in_channels)), PASSES).to_spec()


def build_muon(width_mult: float = 1.0, num_classes: int = 10, in_channels: int = 3) -> dict:
    """airbench94_muon.py's network (module doc)."""
    bare = architecture(width_mult, num_classes, in_channels=in_channels)
    bare["logits"] = mul(1 / bare["linear"][1]["c_in"])
    passes = [*PASSES[:2], ("bn_settings", {**PASSES[2][1], "bias_lr_mult": 1.0})]
    graph = rewrite(build_graph(bare), passes)
    return graph.replace("linear", attrs={"init": {"name": "unit_std", "params": {}}}).to_spec()


net = build()

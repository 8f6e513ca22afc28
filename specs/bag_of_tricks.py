"""Page's final "bag of tricks" network: the ResNet-9 baseline rewritten by the recipe's passes.

``PASSES`` is the recipe in Page's order (see ``graphnet tricks``). ``build`` applies the
passes for the network; the trainer applies ``label_smoothing`` to its loss graph and
``tta_flip`` to its evaluation graph (``graphnet.rewrites.split_passes``). The whitening
conv is set from data by ``graphnet.initialise(network, images)`` before training.
"""

from pathlib import Path

from graphnet import load_spec, rewrite
from graphnet.rewrites import split_passes

PASSES = [
    ("pool_before_norm", {}),
    ("label_smoothing", {"alpha": 0.2}),
    ("celu", {"alpha": 0.075}),
    ("ghost_bn", {"num_splits": 16}),
    ("freeze_bn_scale", {"weight": 1.0, "act_alpha_scale": 4.0, "bias_lr_mult": 64.0, "bias_wd_mult": 1 / 64,
                         "final_scale": 1 / 16}),
    ("whiten_input", {"patch": 3, "eps": 1e-2}),
    ("tta_flip", {}),
]


def build(width_mult: float = 1.0) -> dict:
    """The final network's spec; ``width_mult`` scales the baseline's widths."""
    baseline = load_spec(Path(__file__).with_name("resnet9.py"), width_mult=width_mult)
    return rewrite(baseline, split_passes(PASSES)["net"]).to_spec()


net = build()

"""Page's final "bag of tricks" network: the ResNet-9 baseline rewritten by the final recipe's passes.

``PASSES`` is the final recipe's pass list (``graphnet.train.RECIPES['bag_of_tricks']``,
the one place it is written). ``build`` applies the passes for the network; the trainer
applies ``label_smoothing`` to its loss graph and ``tta_flip`` to its evaluation graph
(``graphnet.rewrites.split_passes``). The whitening conv is set from data by
``graphnet.initialise(network, images)`` before training.
"""

from graphnet import rewrite
from graphnet.rewrites import split_passes
from graphnet.train import DEFAULT, RECIPES
from graphnet.zoo import resnet9

PASSES = list(RECIPES[DEFAULT].passes)


def build(width_mult: float = 1.0) -> dict:
    """The final network's spec; ``width_mult`` scales the baseline's widths."""
    return rewrite(resnet9.build(width_mult), split_passes(PASSES)["net"]).to_spec()


net = build()

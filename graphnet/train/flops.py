"""A training run's compute: forward FLOPs per image from ``graphnet.summary``, times 3, times the images seen.

``graphnet.summary`` counts convolutions and linear layers only, a multiply-add as 2 FLOPs.
A training step costs about 3 forward passes (the backward pass computes gradients with
respect to both inputs and weights, each about one forward), so a run costs
``3 · forward FLOPs per image · images seen``. Norms, activations, pools and the
optimizer are left out, as in airbench's and Page's published figures.
"""

from __future__ import annotations

import math
from typing import Sequence

from ..graph import Graph
from ..summary import summary


def images_seen(epochs: float, train_size: int = 50_000, batch_size: int | None = None) -> int:
    """Training images a run sees: ``epochs · train_size``, or, given ``batch_size``, whole batches
    of an epoch without its last partial one (``ceil(epochs · (train_size // batch_size))`` steps)."""
    if batch_size is None:
        return round(epochs * train_size)
    return math.ceil(epochs * (train_size // batch_size)) * batch_size


def forward_flops(graph: Graph, input_shape: Sequence[int] = (3, 32, 32)) -> int:
    """FLOPs of one image's forward pass (2 per multiply-add, convs and linear layers)."""
    return summary(graph, (1, *input_shape)).total_flops


def training_flops(graph: Graph, epochs: float, train_size: int = 50_000, batch_size: int | None = None,
                   input_shape: Sequence[int] = (3, 32, 32)) -> int:
    """The run's training FLOPs: ``3 · forward_flops · images_seen`` (module doc)."""
    return 3 * forward_flops(graph, input_shape) * images_seen(epochs, train_size, batch_size)

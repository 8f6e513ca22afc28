"""A training run's compute: forward FLOPs per image from ``graphnet.summary``, times 3, times the images seen.

``graphnet.summary`` counts what torch's ``FlopCounterMode`` counts (every matrix product and
convolution), a multiply-add as 2 FLOPs. A training step costs about 3 forward passes (the
backward pass computes gradients with respect to both inputs and weights, each about one
forward), so a run costs ``3 · forward FLOPs per image · images seen``. Norms, activations,
pools and the optimizer are left out, as in airbench's and Page's published figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..graph import Graph
from ..summary import summary


@dataclass(frozen=True)
class TrainingFlops:
    """A run's training compute: ``forward`` FLOPs per image and the ``images`` it sees."""

    forward: int
    images: int

    @property
    def total(self) -> int:
        """``3 · forward · images`` (module doc)."""
        return 3 * self.forward * self.images

    def __str__(self) -> str:
        """``1.132 PFLOP (3 x 0.760 GFLOP forward x 500,000 images)``, the run header's line."""
        total = f"{self.total / 1e15:.3f} PFLOP" if self.total >= 1e13 else f"{self.total / 1e12:.3f} TFLOP"
        return f"{total} (3 x {self.forward / 1e9:.3f} GFLOP forward x {self.images:,} images)"


def images_seen(epochs: float, train_size: int = 50_000, batch_size: int | None = None) -> int:
    """Training images a run sees: ``epochs · train_size``, or, given ``batch_size``, whole batches
    of an epoch without its last partial one (``ceil(epochs · (train_size // batch_size))`` steps)."""
    if batch_size is None:
        return round(epochs * train_size)
    return math.ceil(epochs * (train_size // batch_size)) * batch_size


def forward_flops(graph: Graph, input_shape: Sequence[int] = (3, 32, 32)) -> int:
    """FLOPs of one image's forward pass (``graphnet.summary``'s, a multiply-add as 2)."""
    return summary(graph, (1, *input_shape)).total_flops


def training_flops(graph: Graph, epochs: float, train_size: int = 50_000, batch_size: int | None = None,
                   input_shape: Sequence[int] = (3, 32, 32)) -> TrainingFlops:
    """The run's training compute: ``forward_flops`` per image and ``images_seen``."""
    return TrainingFlops(forward_flops(graph, input_shape), images_seen(epochs, train_size, batch_size))

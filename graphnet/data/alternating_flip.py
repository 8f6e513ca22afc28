"""Airbench's alternating flip: each image is mirrored in every other epoch.

In epoch 0 each image is flipped with probability 1/2; from then on each epoch flips
exactly the images the epoch before did not. Over any two epochs the network sees every
image both ways, where independent random flips repeat a view a quarter of the time
(airbench's "derandomized" flip). The epoch-0 choice is drawn once from a generator, so a
seed fixes every epoch's flips. Vectorised over the batch, on the images' device.

Airbench's translation (±2 px, reflect padding) is ``DeviceData(pad=2)`` with crop 32:
a crop of the reflect-padded image at an offset uniform in [0, 4] on each axis.
"""

from __future__ import annotations

import torch


class AlternatingFlip:
    """The flips of a data set of ``n`` images (module doc); ``generator`` draws epoch 0's."""

    def __init__(self, n: int, generator: torch.Generator):
        self.first = torch.rand(n, generator=generator, device=generator.device) < 0.5

    def mask(self, epoch: int) -> torch.Tensor:
        """Which images epoch ``epoch`` (from 0) flips: epoch 0's draw, inverted in odd epochs."""
        return self.first if epoch % 2 == 0 else ~self.first

    def __call__(self, images: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """The batch ``images`` (the data set's images ``index``) with this epoch's flips applied."""
        flip = self.mask(epoch)[index.to(self.first.device)].to(images.device)
        return torch.where(flip[:, None, None, None], images.flip(-1), images)

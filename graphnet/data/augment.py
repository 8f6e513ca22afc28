"""Batch augmentations for N×C×H×W image tensors, vectorised over the batch.

Each function draws its randomness from an explicit ``torch.Generator`` on the generator's
device (so a seed fixes the result) and applies it on the images' device, with no per-sample
Python loop. Outputs are new tensors; inputs are never modified. :func:`augment_batch` is the
training batch's augmentation, on both data paths.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Flip = bool | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # see augment_batch


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n integers uniform in [0, high), drawn on the generator's device, moved to ``device``."""
    return torch.randint(high, (n,), generator=generator, device=generator.device).to(device)


def _check_size(images: torch.Tensor, size: int, what: str) -> None:
    height, width = images.shape[-2:]
    if not 0 <= size <= min(height, width):
        raise ValueError(f"{what} size {size} does not fit images of {height}x{width}")


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A size×size window of each image at an offset uniform over all windows that fit."""
    _check_size(images, size, "crop")
    n, _, height, width = images.shape
    top = _randint(height - size + 1, n, generator, images.device)
    left = _randint(width - size + 1, n, generator, images.device)
    span = torch.arange(size, device=images.device)
    rows = (top[:, None] + span)[:, None, :, None]  # N×1×size×1
    cols = (left[:, None] + span)[:, None, None, :]  # N×1×1×size
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return images[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Each image with a size×size square zeroed in all channels, placed uniformly inside it.

    As in cifar10-fast, the square's top-left corner is uniform over the positions that keep
    the whole square inside the image. ``size`` 0 returns ``images`` unchanged.
    """
    _check_size(images, size, "cutout")
    if size == 0:
        return images
    n, _, height, width = images.shape
    top = _randint(height - size + 1, n, generator, images.device)[:, None]
    left = _randint(width - size + 1, n, generator, images.device)[:, None]
    y = torch.arange(height, device=images.device)
    x = torch.arange(width, device=images.device)
    in_rows = (y >= top) & (y < top + size)  # N×H
    in_cols = (x >= left) & (x < left + size)  # N×W
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # N×1×H×W
    return images.masked_fill(square, 0)


def augment_batch(images: torch.Tensor, index: torch.Tensor, generator: torch.Generator, crop: int, flip: Flip,
                  cutout_size: int) -> torch.Tensor:
    """A padded training batch (the data set's images ``index``) randomly cropped to
    ``crop``×``crop`` (skipped when that is the padded size), flipped and cut out (a
    ``cutout_size`` square, 0 for none). ``flip`` True flips each image with probability 1/2;
    a function ``flip(images, index)`` (as :class:`~graphnet.data.alternating_flip.AlternatingFlip`
    takes) flips as it chooses."""
    if crop != images.shape[-1] or crop != images.shape[-2]:
        images = random_crop(images, crop, generator)
    if callable(flip):
        images = flip(images, index)
    elif flip:
        images = random_flip(images, generator)
    return cutout(images, cutout_size, generator)

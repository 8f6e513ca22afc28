"""What both data paths share: the normalisation (the one place a mean and std apply) and an
epoch of augmented training batches. :class:`~graphnet.data.loader.DeviceData` keeps the set
on the device, :class:`~graphnet.data.stream.StreamData` streams it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F

from .augment import Flip, augment_batch

# Per-channel mean and std of the CIFAR-10 training images on the 0-255 scale (cifar10-fast).
CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)
STATS_CHUNK = 4096  # images a step of channel_stats sums over a decoded set


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel of the images in ``batches`` (each N×H×W×C uint8) on the 0-255
    scale: the mean and std of all the channel's pixels, the std at least 1 (a constant channel
    is shifted, not blown up). Computed from each channel's histogram of values (exact counts,
    so the same images in any order and batching give the same figures); ValueError for no
    images."""
    counts = None
    for part in batches:
        pixels = part.reshape(-1, part.shape[-1])
        if len(pixels):
            histograms = torch.stack([torch.bincount(pixels[:, c], minlength=256) for c in range(pixels.shape[1])])
            counts = histograms if counts is None else counts + histograms
    if counts is None:
        raise ValueError("channel statistics need at least one image")
    values = torch.arange(256, dtype=torch.float64)
    n = counts.sum(1).double()
    mean = (counts.double() @ values) / n
    std = ((counts.double() @ values.square()) / n - mean.square()).clamp_min(1).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


class Normalise:
    """Images of ``channels`` channels normalised per channel, ``(x - mean) / std`` on the 0-255
    scale, on ``device``; ValueError unless ``mean`` and ``std`` have one value per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int, device: torch.device):
        if not len(mean) == len(std) == channels:
            raise ValueError(f"mean and std need one value per channel ({channels}), "
                             f"got {len(mean)} and {len(std)}")
        self.mean = torch.tensor(mean, device=device).view(-1, 1, 1)
        self.std = torch.tensor(std, device=device).view(-1, 1, 1)

    def __call__(self, images: torch.Tensor, pad: int) -> torch.Tensor:
        """N×C×H×W ``images`` on the device as new float32 tensors, normalised and reflect-padded
        by ``pad`` (``images`` is left as it is)."""
        x = images.to(torch.float32, copy=True).sub_(self.mean).div_(self.std)
        return F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x


class TrainBatches:
    """The training batches both paths serve. A path sets ``len_train`` (images per epoch) and
    ``memory_format``, and its ``_epoch(batch_size, generator, drop_last)`` yields one epoch's
    padded ``(images, labels, index)`` on the device (``index``: the images' indices in the
    training split)."""

    len_train: int
    memory_format: torch.memory_format

    def num_train_batches(self, batch_size: int, drop_last: bool = True) -> int:
        """How many batches :meth:`train_batches` yields per epoch."""
        whole, rest = divmod(self.len_train, batch_size)
        return whole + (1 if rest and not drop_last else 0)

    def train_batches(self, batch_size: int, generator: torch.Generator, crop: int = 32, flip: Flip = True,
                      cutout: int = 0, drop_last: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(images, labels)``, each batch augmented on the device by
        :func:`~graphnet.data.augment.augment_batch` (``crop``, ``flip``, ``cutout``) with draws
        from ``generator``. Draws happen on the generator's device: one on the data's device
        avoids small host-to-device copies every batch."""
        for images, labels, index in self._epoch(batch_size, generator, drop_last):
            images = augment_batch(images, index, generator, crop, flip, cutout)
            yield images.contiguous(memory_format=self.memory_format), labels

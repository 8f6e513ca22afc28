"""A whole data set held on the training device, served as augmented batches.

The images are moved, normalised, converted to N×C×H×W and (train only) padded once; each
batch is then indexed out of device memory and augmented there, as in cifar10-airbench.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .batches import Normalise, TrainBatches
from .sources import Dataset


class DeviceData(TrainBatches):
    """``dataset`` on ``device``: normalised by its ``mean`` and ``std``, N×C×H×W, train images
    reflect-padded by ``pad``.

    Attributes: ``train_images`` (N×C×(H+2pad)×(W+2pad)), ``train_labels``, ``test_images``
    (N×C×H×W), ``test_labels``, ``num_classes``, ``len_train``; images are ``dtype`` in
    ``memory_format`` (batches too). Each epoch's order is drawn from the generator given to
    :meth:`train_batches`.
    """

    def __init__(self, dataset: Dataset, device: torch.device | str,
                 dtype: torch.dtype = torch.float32, pad: int = 4, memory_format: torch.memory_format = torch.contiguous_format):
        self.device = torch.device(device)
        normalise = Normalise(dataset.mean, dataset.std, dataset.train_images.shape[-1], self.device)
        self.dtype = dtype
        self.pad = pad
        self.memory_format = memory_format
        self.num_classes = len(dataset.classes)
        self.len_train = len(dataset.train_images)

        def prepare(images: torch.Tensor, pad: int) -> torch.Tensor:
            # uint8 to the device, then float there: .to(cuda, float32) converts on the CPU and
            # moves 4x the bytes
            x = normalise(images.to(self.device).permute(0, 3, 1, 2), pad)
            return x.to(dtype).contiguous(memory_format=memory_format)

        self.train_images = prepare(dataset.train_images, pad)
        self.test_images = prepare(dataset.test_images, 0)
        self.train_labels = dataset.train_labels.to(self.device)
        self.test_labels = dataset.test_labels.to(self.device)

    def _epoch(self, batch_size: int, generator: torch.Generator,
               drop_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The padded training images in an order drawn from ``generator``, batch by batch."""
        order = torch.randperm(self.len_train, generator=generator, device=generator.device)
        order = order.to(self.device)
        for b in range(self.num_train_batches(batch_size, drop_last)):
            index = order[b * batch_size:(b + 1) * batch_size]
            yield self.train_images[index], self.train_labels[index], index

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """The test set in order, unaugmented, as ``(images, labels, count)`` batches of exactly
        ``batch_size`` (at most the test set's size): the last batch is padded with images from
        the start and only its first ``count`` samples are the rest of the test set. One shape
        means no second cuDNN autotune and no recompilation under ``torch.compile``."""
        n = len(self.test_images)
        batch_size = min(batch_size, n)
        for start in range(0, n, batch_size):
            end = start + batch_size
            if end <= n:
                yield self.test_images[start:end], self.test_labels[start:end], batch_size
            else:
                index = torch.arange(start, end, device=self.device) % n
                yield (self.test_images[index].contiguous(memory_format=self.memory_format), self.test_labels[index],
                       n - start)

    def raw_train_images(self, n: int | None = None) -> torch.Tensor:
        """The first ``n`` (default all) normalised train images without their padding."""
        images = self.train_images[:n]
        if self.pad:
            images = images[..., self.pad:-self.pad, self.pad:-self.pad]
        return images

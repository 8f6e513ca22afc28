"""A whole data set held on the training device, served as augmented batches.

The images are moved, normalised, converted to N×C×H×W and (train only) padded once; each
batch is then indexed out of device memory and augmented there, as in cifar10-airbench.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from . import augment
from .sources import Dataset

# Per-channel mean and std of the CIFAR-10 training images on the 0-255 scale (cifar10-fast).
CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)


class DeviceData:
    """``dataset`` on ``device``: normalised, N×C×H×W, train images reflect-padded by ``pad``.

    Attributes: ``train_images`` (N×C×(H+2pad)×(W+2pad)), ``train_labels``, ``test_images``
    (N×C×H×W), ``test_labels``, ``num_classes``, ``len_train``; images are ``dtype`` and, with
    ``channels_last``, in ``torch.channels_last`` memory format (batches too).
    """

    def __init__(self, dataset: Dataset, device: torch.device | str,
                 dtype: torch.dtype = torch.float32,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 pad: int = 4, channels_last: bool = False):
        channels = dataset.train_images.shape[-1]
        if not len(mean) == len(std) == channels:
            raise ValueError(f"mean and std need one value per channel ({channels}), "
                             f"got {len(mean)} and {len(std)}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.pad = pad
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.num_classes = len(dataset.classes)
        self.len_train = len(dataset.train_images)
        mean_t = torch.tensor(mean, device=self.device)
        std_t = torch.tensor(std, device=self.device)

        def prepare(images: torch.Tensor, pad: int) -> torch.Tensor:
            # uint8 to the device, then float there: .to(cuda, float32) converts on the CPU and
            # moves 4x the bytes. copy=True: normalised in place, the data set must not change
            x = images.to(self.device).to(torch.float32, copy=True)
            x = x.sub_(mean_t).div_(std_t)  # NHWC: channels are the last dim
            x = x.permute(0, 3, 1, 2)
            if pad:
                x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
            return x.to(dtype).contiguous(memory_format=self.memory_format)

        self.train_images = prepare(dataset.train_images, pad)
        self.test_images = prepare(dataset.test_images, 0)
        self.train_labels = dataset.train_labels.to(self.device)
        self.test_labels = dataset.test_labels.to(self.device)

    def num_train_batches(self, batch_size: int, drop_last: bool = True) -> int:
        """How many batches :meth:`train_batches` yields per epoch."""
        whole, rest = divmod(self.len_train, batch_size)
        return whole + (1 if rest and not drop_last else 0)

    def train_batches(self, batch_size: int, generator: torch.Generator, crop: int = 32,
                      flip: bool | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = True, cutout: int = 0,
                      drop_last: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(images, labels)`` in an order drawn from ``generator``.

        Each batch is indexed from the padded images, randomly cropped to ``crop``×``crop``
        (skipped when that is the padded size), flipped and cut out (``cutout`` square size, 0
        for none), all on the device. ``flip`` True flips each image with probability 1/2;
        a function ``flip(images, index)`` (the batch and its images' indices in the data set,
        as :class:`~graphnet.data.alternating_flip.AlternatingFlip` takes) flips as it chooses. Draws happen on the generator's device:
        one on the data's device avoids small host-to-device copies every batch.
        """
        order = torch.randperm(self.len_train, generator=generator, device=generator.device)
        order = order.to(self.device)
        for b in range(self.num_train_batches(batch_size, drop_last)):
            index = order[b * batch_size:(b + 1) * batch_size]
            images = self.train_images[index]
            if crop != images.shape[-1] or crop != images.shape[-2]:
                images = augment.random_crop(images, crop, generator)
            if callable(flip):
                images = flip(images, index)
            elif flip:
                images = augment.random_flip(images, generator)
            images = augment.cutout(images, cutout, generator)
            yield images.contiguous(memory_format=self.memory_format), self.train_labels[index]

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

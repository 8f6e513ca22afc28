"""Training data streamed from an image folder or archive, for sets too big for the device.

:class:`StreamData` serves the same batches as :class:`~graphnet.data.loader.DeviceData`
(``train_batches``, ``test_batches``, ``num_train_batches``) from an ImageFolder
(:mod:`graphnet.data.imagefolder`; an archive's encoded bytes are read into memory once). A
``torch.utils.data.DataLoader`` with worker processes reads and decodes each batch
(``torchvision.io``; on CUDA, JPEGs are decoded on the GPU, the workers only read bytes), with
pinned memory and prefetching; a ``DistributedSampler`` gives each rank its share. On the
device each batch is normalised, reflect-padded, cropped, flipped and cut out with the
functions the on-device path uses. :mod:`graphnet.data.memory` decides when to stream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..files import write_atomically
from .batches import Normalise, TrainBatches, channel_stats
from .errors import DataError
from .imagefolder import SPLITS, Source, balanced_indices, image_shape, index_source
from .sources import default_cache_dir


# -- the source ---------------------------------------------------------------------------------

STATS_IMAGES = 10_000  # training images (class-balanced) a streamed set's normalisation is computed from


class _Images(torch.utils.data.Dataset):
    """One split's ``(image, label, problem, i)``: the image decoded to ``shape`` (C×H×W uint8,
    grayscale when C is 1), or with ``encoded`` its bytes as a 1-D uint8 tensor; ``problem`` a
    one-line error or ''."""

    def __init__(self, source: Source, split: str, shape: tuple[int, ...], encoded: bool):
        self.source = source
        self.files, self.labels = source.files[split], source.labels[split]
        self.shape, self.encoded = shape, encoded

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, str]:
        from torchvision.io import decode_image

        name = self.files[i]
        data = self.source.encoded(name)
        if self.encoded:
            return data, self.labels[i], "", i
        try:
            image = decode_image(data, mode=_read_mode(self.shape))
        except RuntimeError as e:
            return None, self.labels[i], f"cannot read image {name} in {self.source.where}: {e}", i
        return image, self.labels[i], _size_problem(image, name, self.source.where, self.shape), i


def _read_mode(shape: tuple[int, ...]):
    from torchvision.io import ImageReadMode

    return ImageReadMode.GRAY if shape[0] == 1 else ImageReadMode.RGB


def _size_problem(image: torch.Tensor, name: str, where: Path, shape: tuple[int, ...]) -> str:
    if tuple(image.shape) == shape:
        return ""
    return (f"image {name} in {where} is {image.shape[1]}x{image.shape[2]} (HxW), but the first training image "
            f"is {shape[1]}x{shape[2]}: all images must be one size")


def _collate(samples: list[tuple[torch.Tensor | None, int, str, int]]) -> tuple[Any, torch.Tensor, str, torch.Tensor]:
    """``(images, labels, problem, index)``: images stacked (decoded) or a list (encoded); the
    batch's first problem, if any, for the main process to raise in one line; the images'
    indices in the split."""
    images, labels, problems, index = zip(*samples)
    labels, index = torch.tensor(labels), torch.tensor(index)
    problem = next((p for p in problems if p), "")
    if problem:
        return None, labels, problem, index
    return (list(images) if images[0].dim() == 1 else torch.stack(images)), labels, "", index


def with_stats(source: Source, workers: int = 2) -> Source:
    """``source`` with its normalisation: as it has it, else :func:`~graphnet.data.batches.channel_stats`
    of :data:`STATS_IMAGES` training images drawn class-balanced (seed 0; all, if fewer),
    decoded by ``workers`` processes. The figures are cached (in :func:`default_cache_dir`)
    under a hash of those images' names and bytes and the shape they decode to, so a second
    run reads the sample's bytes but decodes nothing."""
    if source.mean is not None:
        return source
    shape = image_shape(source)
    train = _Images(source, "train", shape, encoded=False)
    picked = balanced_indices(torch.tensor(train.labels), len(source.classes), min(STATS_IMAGES, len(train)),
                              torch.Generator().manual_seed(0)).tolist()
    entry = _stats_entry(source, [train.files[i] for i in picked], shape)
    cached = _read_stats(entry, shape[0])
    if cached is not None:
        return dataclasses.replace(source, mean=cached[0], std=cached[1])
    loader = DataLoader(Subset(train, picked), 256, num_workers=workers, collate_fn=_collate)

    def batches() -> Iterator[torch.Tensor]:
        for images, _, problem, _ in loader:
            if problem:
                raise DataError(problem)
            yield images.permute(0, 2, 3, 1)

    mean, std = channel_stats(batches())
    _write_stats(entry, mean, std)
    return dataclasses.replace(source, mean=mean, std=std)


def _stats_entry(source: Source, names: list[str], shape: tuple[int, ...]) -> Path:
    digest = hashlib.sha256(f"stats\0{shape}\n".encode())
    for name in names:
        digest.update(f"{name}\0".encode())
        digest.update(source.tree.read(name))
    return default_cache_dir() / "stats" / f"{digest.hexdigest()}.json"


def _read_stats(entry: Path, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The cached (mean, std) of ``channels`` channels at ``entry``, or None (none, or damaged)."""
    try:
        record = json.loads(entry.read_text())
        mean, std = tuple(map(float, record["mean"])), tuple(map(float, record["std"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (mean, std) if len(mean) == len(std) == channels else None


def _write_stats(entry: Path, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Write ``entry`` atomically; a warning if it cannot be."""
    text = json.dumps({"mean": list(mean), "std": list(std)})
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(entry, lambda tmp: tmp.write_text(text))
    except OSError as e:
        warnings.warn(f"could not cache the normalisation at {entry}: {e}", stacklevel=3)


# -- the data -----------------------------------------------------------------------------------

class StreamData(TrainBatches):
    """``source`` streamed to ``device`` in batches; the attributes and methods the trainer
    uses of :class:`~graphnet.data.loader.DeviceData` (which see for ``dtype``, ``pad``,
    ``memory_format``), normalised by the source's ``mean`` and ``std`` (:func:`with_stats`
    when it has none), plus:

    - ``workers`` reader/decoder processes (0: in this process), ``prefetch`` batches each;
    - ``seed``: the training order (epoch ``e`` shuffles with ``seed + e``, as
      DistributedSampler does), the same on every rank; augmentation draws from the
      generator given to :meth:`train_batches`, whose ``flip`` function gets the images'
      indices in the whole training split;
    - ``rank``/``world_size``: this rank's share of each epoch (``len_train`` images, the
      same on every rank; DistributedSampler's ``drop_last``);
    - ``gpu_decode``: decode on the GPU (default: on CUDA when every file is a JPEG). Every
      image is decoded as :func:`~graphnet.data.imagefolder.image_shape` says (grayscale or
      RGB) and all must be one size, like the on-device path.
    """

    def __init__(self, source: str | Path | Source, device: torch.device | str, dtype: torch.dtype = torch.float32,
                 pad: int = 4, memory_format: torch.memory_format = torch.contiguous_format, workers: int = 2, prefetch: int = 4,
                 seed: int = 0, rank: int = 0, world_size: int = 1, gpu_decode: bool | None = None):
        self.source = with_stats(source if isinstance(source, Source) else index_source(source), workers)
        self.device = torch.device(device)
        self.dtype, self.pad, self.workers, self.prefetch = dtype, pad, workers, prefetch
        self.memory_format = memory_format
        self.classes = self.source.classes
        self.num_classes = len(self.classes)
        self.image_shape = image_shape(self.source)
        self.normalise = Normalise(self.source.mean, self.source.std, self.image_shape[0], self.device)
        cuda = self.device.type == "cuda"
        jpeg = all(f.lower().endswith((".jpg", ".jpeg")) for split in SPLITS for f in self.source.files[split])
        self.gpu_decode = cuda and jpeg if gpu_decode is None else gpu_decode
        if self.gpu_decode and not (cuda and jpeg):
            raise DataError(f"GPU decoding needs a CUDA device and JPEG images only ({self.source.where})")
        self.train = _Images(self.source, "train", self.image_shape, encoded=self.gpu_decode)
        self.test = _Images(self.source, "test", self.image_shape, encoded=self.gpu_decode)
        self.sampler = DistributedSampler(self.train, num_replicas=world_size, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        self.len_train = len(self.sampler)
        self.epoch = 0
        self._loaders: dict[tuple[str, int, bool], DataLoader] = {}

    def _loader(self, split: str, batch_size: int, drop_last: bool) -> DataLoader:
        """One DataLoader per split and batching, its workers kept across epochs."""
        key = (split, batch_size, drop_last)
        if key not in self._loaders:
            workers = {"num_workers": self.workers, "persistent_workers": True,
                       "prefetch_factor": self.prefetch} if self.workers else {}
            train = split == "train"
            self._loaders[key] = DataLoader(
                self.train if train else self.test, batch_size, sampler=self.sampler if train else None,
                drop_last=drop_last, collate_fn=_collate,
                pin_memory=self.device.type == "cuda" and not self.gpu_decode,
                **workers)
        return self._loaders[key]

    def _batches(self, split: str, batch_size: int, pad: int,
                 drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self._prepared(self._loader(split, batch_size, drop_last), pad)

    def _prepared(self, loader: DataLoader, pad: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The loader's batches decoded, normalised and padded on the device (float32, N×C×H×W),
        with their labels and (on the CPU) their images' indices in the split."""
        for images, labels, problem, index in loader:
            if problem:
                raise DataError(problem)
            if isinstance(images, list):
                images = self._decode_on_gpu(images)
            x = self.normalise(images.to(self.device, non_blocking=True), pad)
            yield x, labels.to(self.device, non_blocking=True), index

    def _decode_on_gpu(self, encoded: list[torch.Tensor]) -> torch.Tensor:
        from torchvision.io import decode_jpeg

        images = decode_jpeg(encoded, mode=_read_mode(self.image_shape), device=self.device)
        for image in images:
            if tuple(image.shape) != self.image_shape:
                raise DataError(_size_problem(image, "(one in this batch)", self.source.where, self.image_shape))
        return torch.stack(images)

    def sample_train_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` training images drawn class-balanced at random (from all ranks' shares, so the
        same on every rank), normalised and unpadded, in ``dtype`` on the device: what data
        initialisers such as input whitening see (an ImageFolder is sorted by class)."""
        labels = torch.tensor(self.train.labels)
        picked = balanced_indices(labels, self.num_classes, min(n, len(labels)), torch.Generator().manual_seed(seed))
        loader = DataLoader(Subset(self.train, picked.tolist()), 256, num_workers=self.workers, collate_fn=_collate)
        return torch.cat([images.to(self.dtype) for images, _, _ in self._prepared(loader, 0)])

    def start(self, seed: int) -> None:
        """Begin a run: the training order from ``seed`` (the same on every rank), epoch 0."""
        self.sampler.seed, self.epoch = seed, 0

    def _epoch(self, batch_size: int, generator: torch.Generator,
               drop_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """This rank's share of the next epoch (the order from ``seed`` and the epoch count)."""
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        for images, labels, index in self._batches("train", batch_size, self.pad, drop_last):
            yield images.to(self.dtype), labels, index

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """The whole test set in order, unaugmented (every rank sees all of it), as DeviceData's
        ``(images, labels, count)``; the last batch may be smaller (``count`` its size)."""
        for images, labels, _ in self._batches("test", batch_size, 0):
            yield images.to(self.dtype).contiguous(memory_format=self.memory_format), labels, len(labels)

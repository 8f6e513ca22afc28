"""Load an image-classification data set as uint8 tensors, caching decoded arrays on disk.

A source is one of:

- a name in :data:`~graphnet.data.imagefolder.NAMED_SETS` (``"cifar10"``, ``"cifar100"``,
  ``"svhn"``, ``"mnist"``, ``"fashionmnist"``, ``"stl10"``): torchvision's data set, downloaded
  into ``<cache_dir>/<name>``;
- a directory holding torchvision's ``cifar-10-batches-py`` (or that folder itself);
- an ImageFolder tree (:mod:`graphnet.data.imagefolder`): a directory or archive, of any image
  size, grayscale or RGB (:func:`~graphnet.data.imagefolder.image_shape`).

Every data set carries its per-channel normalisation: CIFAR-10's published constants for
CIFAR-10, else :func:`~graphnet.data.batches.channel_stats` of its training images (an
ImageFolder's cached with its decoded arrays).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .batches import CIFAR10_MEAN, CIFAR10_STD, STATS_CHUNK, channel_stats
from .errors import DataError
from .imagefolder import NAMED_SETS, SPLITS, TORCHVISION_FOLDER, Source, balanced_indices, checked_path, \
    image_shape, index_source, is_torchvision, read_tree

CACHE_FORMAT = "graphnet-decoded-v2"  # part of every cache key: change it when decoding changes (v2: grayscale, stats)
PROGRESS_EVERY = 5000  # images between progress updates
CACHED_TENSORS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(repr=False)
class Dataset:
    """Train and test splits as CPU tensors: images uint8 N×H×W×C, labels int64 N; ``mean`` and
    ``std``, the per-channel normalisation on the 0-255 scale (default: ``channel_stats`` of the
    training images)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.mean is None or self.std is None:
            self.mean, self.std = channel_stats(self.train_images.split(STATS_CHUNK))

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A seeded random subset of ``train`` / ``test`` samples per split (None keeps the
        split), class-balanced as :func:`~graphnet.data.imagefolder.balanced_indices` draws it.
        Samples keep their original order; the normalisation stays the whole set's."""
        generator = torch.Generator().manual_seed(seed)
        num_classes = len(self.classes)
        tr = balanced_indices(self.train_labels, num_classes, train, generator)
        te = balanced_indices(self.test_labels, num_classes, test, generator)
        return Dataset(
            self.train_images[tr], self.train_labels[tr],
            self.test_images[te], self.test_labels[te], list(self.classes), self.mean, self.std,
        )

    def __repr__(self) -> str:
        def shape(t: torch.Tensor) -> str:
            return "x".join(map(str, t.shape))

        return (f"Dataset(train={shape(self.train_images)}, test={shape(self.test_images)}, "
                f"classes={len(self.classes)})")


def default_cache_dir() -> Path:
    """``$GRAPHNET_CACHE`` if set, else ``~/.cache/graphnet``."""
    return Path(os.environ.get("GRAPHNET_CACHE") or Path.home() / ".cache" / "graphnet")


def load_dataset(source: str | Path, cache_dir: str | Path | None = None,
                 progress: bool = True) -> Dataset:
    """Load ``source`` (see the module docstring) into a :class:`Dataset`.

    ImageFolder trees are decoded once with PIL (grayscale or RGB as ``image_shape`` says; class
    index = sorted folder order) and the arrays and their channel statistics cached in ``cache_dir`` (default :func:`default_cache_dir`) under a key from the
    source's content: the sha256 of an archive's bytes, or for a directory a hash of every
    file's relative path, size and mtime_ns (its bytes are not re-read, so an in-place edit
    that keeps size and mtime goes unnoticed). ``progress`` prints a decoding counter to stderr.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if is_torchvision(source):
        return _load_torchvision(source, cache)
    where = checked_path(source)
    return _load_cached(_cache_entry(cache, _content_hash(where)), where, progress)


def decoded_sizes(source: str | Path, cache_dir: str | Path | None = None) -> tuple[int, int, tuple[int, ...]] | None:
    """``(train images, test images, C×H×W)`` of an ImageFolder archive or directory that
    :func:`load_dataset` has decoded into ``cache_dir`` before, read from the cached arrays'
    headers; None when it has not (or ``source`` is not an existing ImageFolder tree)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if is_torchvision(source):
        return None
    try:
        entry = _cache_entry(cache, _content_hash(checked_path(source)))
        train, test = (np.load(entry / f"{split}_images.npy", mmap_mode="r").shape for split in ("train", "test"))
    except (DataError, OSError, ValueError):
        return None
    h, w, c = train[1:]  # cached N×H×W×C
    return train[0], test[0], (c, h, w)


def _load_torchvision(source: str | Path, cache: Path) -> Dataset:
    """A torchvision data set: a :data:`NAMED_SETS` name downloaded into ``cache``, else CIFAR-10
    read from the folder that holds ``cifar-10-batches-py`` (or is it)."""
    download = source in NAMED_SETS
    name = source if download else "cifar10"
    path = Path(source).expanduser()
    root = cache / name if download else path if (path / TORCHVISION_FOLDER).is_dir() else path.parent
    try:
        (train_images, train_labels, classes), (test_images, test_labels, _) = (
            _read_torchvision(name, root, split, download) for split in SPLITS)
    except (OSError, RuntimeError) as e:
        if not download:
            raise DataError(f"torchvision's CIFAR-10 files under {root} are missing or "
                            f"corrupted: {e}") from e
        lines = [line.strip() for line in str(e).splitlines() if line.strip(" .")]  # torchvision's last reason
        raise DataError(
            f"{name} needs a download, which failed ({lines[-1] if lines else type(e).__name__}; into {root}). "
            "Without network, pass a local copy with --data PATH: an ImageFolder directory or .tar/.tar.gz archive "
            "laid out as train/<class>/* and test/<class>/*"
            + (f", or a directory holding torchvision's {TORCHVISION_FOLDER}" if name == "cifar10" else "")) from e
    stats = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (None, None)
    return Dataset(train_images, train_labels, test_images, test_labels, classes, *stats)


def _read_torchvision(name: str, root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor, list]:
    """One split of the torchvision set ``name``: images uint8 N×H×W×C, labels int64, class names."""
    from torchvision import datasets

    train = split == "train"
    if name in ("cifar10", "cifar100"):
        data = (datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100)(str(root), train=train, download=download)
        return torch.from_numpy(data.data), torch.tensor(data.targets, dtype=torch.int64), list(data.classes)
    if name in ("mnist", "fashionmnist"):
        data = (datasets.MNIST if name == "mnist" else datasets.FashionMNIST)(str(root), train=train, download=download)
        return data.data[..., None].contiguous(), data.targets.to(torch.int64), list(data.classes)
    data = (datasets.SVHN if name == "svhn" else datasets.STL10)(str(root), split=split, download=download)
    classes = [str(i) for i in range(10)] if name == "svhn" else list(data.classes)
    images = torch.from_numpy(data.data).permute(0, 2, 3, 1).contiguous()  # stored N×C×H×W
    return images, torch.tensor(data.labels, dtype=torch.int64), classes


# ---------------------------------------------------------------- content hashes


def _content_hash(where: Path) -> str:
    """The content hash of a :func:`~graphnet.data.imagefolder.checked_path` (see
    :func:`load_dataset`): an archive is hashed without being read as one."""
    if where.is_dir():
        tree = read_tree(where)
        return _hash_listing(where, tree.files, tree.dirs)
    return _hash_file(where)


def _hash_file(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_listing(root: Path, files: list[str], dirs: set[str]) -> str:
    """sha256 over every folder's path and every file's (relative path, size, mtime_ns)."""
    digest = hashlib.sha256()
    for rel in sorted(dirs):
        digest.update(f"{rel}/\n".encode())
    for rel in files:
        st = (root / rel).stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- decoding


def _decode_image(data: bytes, name: str, where: Path, mode: str) -> np.ndarray:
    """One image's bytes as a uint8 H×W×C array in PIL ``mode`` (``L``: C 1, ``RGB``: C 3)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert(mode)).reshape(image.height, image.width, -1)
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {name} in {where}: not a format PIL knows") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {name} in {where}: {e}") from e


def _decode(source: Source, progress: bool) -> Dataset:
    """Decode every image of an indexed ImageFolder, train first, in the index's order, as
    ``image_shape`` says (grayscale or RGB); the normalisation from the training images."""
    where = source.where
    mode = "L" if image_shape(source)[0] == 1 else "RGB"
    total = sum(len(source.files[split]) for split in SPLITS)
    done, first = 0, None  # first: (name, shape) of the first image, which all must match
    arrays = []
    for split in SPLITS:
        files = source.files[split]
        images = None
        for i, name in enumerate(files):
            array = _decode_image(source.tree.read(name), name, where, mode)
            if first is None:
                first = (name, array.shape)
            elif array.shape != first[1]:
                raise DataError(f"image {name} in {where} is {_size(array.shape)}, but "
                                f"{first[0]} is {_size(first[1])}: all images must be one size")
            if images is None:
                images = np.empty((len(files), *array.shape), dtype=np.uint8)
            images[i] = array
            done += 1
            if progress and (done % PROGRESS_EVERY == 0 or done == total):
                print(f"\rdecoding {where}: {done}/{total} images", end="", file=sys.stderr)
        arrays += [torch.from_numpy(images), torch.tensor(source.labels[split])]
    if progress:
        print(file=sys.stderr)
    return Dataset(*arrays, source.classes)  # the normalisation from its training images


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} (HxW)"


# ---------------------------------------------------------------- cache


def _cache_entry(cache: Path, content_hash: str) -> Path:
    return cache / "decoded" / hashlib.sha256(f"{CACHE_FORMAT}\0{content_hash}".encode()).hexdigest()


def _load_cached(entry: Path, where: Path, progress: bool) -> Dataset:
    """The decoded ImageFolder ``where`` from the cache ``entry``, else decoded now and written to it."""
    if entry.is_dir():
        try:
            return _read_cache(entry)
        except (OSError, ValueError, EOFError) as e:  # a damaged entry: decoded again below
            print(f"note: the decode cache entry {entry} is damaged ({e}); decoding {where} again",
                  file=sys.stderr)
            shutil.rmtree(entry, ignore_errors=True)
            if entry.exists():
                raise DataError(f"the decode cache entry {entry} is damaged and cannot be removed: "
                                f"delete {entry} and retry") from e
    dataset = _decode(index_source(where), progress)
    try:
        _write_cache(entry, dataset)
    except OSError as e:
        warnings.warn(f"could not cache decoded images at {entry}: {e}", stacklevel=3)
    return dataset


def _read_cache(entry: Path) -> Dataset:
    """A cache entry: one raw .npy per field (3x faster to load than one uncompressed .npz), and
    the normalisation (mean and std, 2×C)."""
    tensors = [torch.from_numpy(np.load(entry / f"{field}.npy")) for field in CACHED_TENSORS]
    classes = np.load(entry / "classes.npy").tolist()
    mean, std = np.load(entry / "stats.npy").tolist()
    images, labels = tensors[0::2], tensors[1::2]
    if any(x.dtype != torch.uint8 or x.ndim != 4 or len(x) != len(y) for x, y in zip(images, labels)) \
            or not all(0 <= int(y.min()) and int(y.max()) < len(classes) for y in labels if len(y)) \
            or not len(mean) == len(std) == images[0].shape[-1]:
        raise ValueError("its arrays do not fit together")
    return Dataset(*tensors, classes, tuple(mean), tuple(std))


def _write_cache(entry: Path, dataset: Dataset) -> None:
    """Write a cache entry atomically: into a temporary folder, then renamed into place."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f"{entry.name}.tmp"))
    try:
        for field in CACHED_TENSORS:
            np.save(tmp / f"{field}.npy", getattr(dataset, field).numpy())
        np.save(tmp / "classes.npy", np.array(dataset.classes))
        np.save(tmp / "stats.npy", np.array([dataset.mean, dataset.std]))
        os.replace(tmp, entry)
    except OSError:
        if not entry.is_dir():  # else another process wrote the same entry first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Load an image-classification data set as uint8 tensors, caching decoded arrays on disk.

A source is one of:

- ``"cifar10"``: torchvision's CIFAR-10, downloaded into ``<cache_dir>/cifar10``;
- a directory holding torchvision's ``cifar-10-batches-py`` (or that folder itself);
- an ImageFolder tree ``train/<class>/*`` and ``test/<class>/*``, as a directory or as a
  ``.tar`` / ``.tar.gz`` / ``.tgz`` archive (read in place, never extracted). The tree may sit
  inside one wrapping folder. Hidden files and folders (names starting with ``.``) are ignored.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
TORCHVISION_FOLDER = "cifar-10-batches-py"
CACHE_FORMAT = "graphnet-decoded-v1"  # part of every cache key: change it when decoding changes
PROGRESS_EVERY = 5000  # images between progress updates
CACHED_TENSORS = ("train_images", "train_labels", "test_images", "test_labels")


class DataError(ValueError):
    """A data source is missing, malformed or unreadable."""


@dataclass(repr=False)
class Dataset:
    """Train and test splits as CPU tensors: images uint8 N×H×W×C, labels int64 N."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A seeded random subset of ``train`` / ``test`` samples per split (None keeps the split).

        Each class gets an equal share; when n is not a multiple of the class count (or a class
        runs short) the shares differ by at most one among classes that have samples left.
        Samples keep their original order.
        """
        generator = torch.Generator().manual_seed(seed)
        num_classes = len(self.classes)
        tr = _balanced_indices(self.train_labels, num_classes, train, generator)
        te = _balanced_indices(self.test_labels, num_classes, test, generator)
        return Dataset(
            self.train_images[tr], self.train_labels[tr],
            self.test_images[te], self.test_labels[te], list(self.classes),
        )

    def __repr__(self) -> str:
        def shape(t: torch.Tensor) -> str:
            return "x".join(map(str, t.shape))

        return (f"Dataset(train={shape(self.train_images)}, test={shape(self.test_images)}, "
                f"classes={len(self.classes)})")


def _balanced_indices(labels: torch.Tensor, num_classes: int, n: int | None,
                      generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of n labels drawn class-balanced at random (all indices when n is None)."""
    if n is None:
        return torch.arange(len(labels))
    if not 0 <= n <= len(labels):
        raise DataError(f"cannot take {n} samples from a split of {len(labels)}")
    members = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    # Water-fill: visit classes from smallest up (ties in random order) so a short class's
    # unused share passes to the rest; the remainder of n lands on the last, random, classes.
    order = sorted(torch.randperm(num_classes, generator=generator).tolist(),
                   key=lambda c: len(members[c]))
    left, picked = n, []
    for i, c in enumerate(order):
        take = min(len(members[c]), left // (num_classes - i))
        left -= take
        picked.append(members[c][torch.randperm(len(members[c]), generator=generator)[:take]])
    return torch.cat(picked).sort().values


def default_cache_dir() -> Path:
    """``$GRAPHNET_CACHE`` if set, else ``~/.cache/graphnet``."""
    return Path(os.environ.get("GRAPHNET_CACHE") or Path.home() / ".cache" / "graphnet")


def load_dataset(source: str | Path, cache_dir: str | Path | None = None,
                 progress: bool = True) -> Dataset:
    """Load ``source`` (see the module docstring) into a :class:`Dataset`.

    ImageFolder trees are decoded once with PIL (RGB; class index = sorted folder order) and
    the arrays cached in ``cache_dir`` (default :func:`default_cache_dir`) under a key from the
    source's content: the sha256 of an archive's bytes, or for a directory a hash of every
    file's relative path, size and mtime_ns (its bytes are not re-read, so an in-place edit
    that keeps size and mtime goes unnoticed). ``progress`` prints a decoding counter to stderr.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if isinstance(source, str) and source == "cifar10":
        return _load_torchvision(cache / "cifar10", download=True)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data source {path} does not exist")
    if path.is_dir() and (path / TORCHVISION_FOLDER).is_dir():
        return _load_torchvision(path, download=False)
    if path.is_dir() and path.name == TORCHVISION_FOLDER:
        return _load_torchvision(path.parent, download=False)
    content_hash, tree = _image_folder(path)
    return _load_cached(_cache_entry(cache, content_hash), tree, path, progress)


def decoded_sizes(source: str | Path, cache_dir: str | Path | None = None) -> tuple[int, int, tuple[int, ...]] | None:
    """``(train images, test images, C×H×W)`` of an ImageFolder archive or directory that
    :func:`load_dataset` has decoded into ``cache_dir`` before, read from the cached arrays'
    headers; None when it has not (or ``source`` is not an existing ImageFolder tree)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = Path(source).expanduser()
    if not path.exists() or path.is_dir() and (path / TORCHVISION_FOLDER).is_dir():
        return None
    try:
        entry = _cache_entry(cache, _image_folder(path)[0])
        train, test = (np.load(entry / f"{split}_images.npy", mmap_mode="r").shape for split in ("train", "test"))
    except (DataError, OSError, ValueError):
        return None
    h, w, c = train[1:]  # cached N×H×W×C
    return train[0], test[0], (c, h, w)


def _image_folder(path: Path) -> tuple[str, Callable[[], _Tree]]:
    """An existing archive's or directory's content hash (see :func:`load_dataset`) and a function
    that reads its tree; DataError if it is neither."""
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        return _hash_file(path), lambda: _read_archive(path)
    if path.is_dir():
        files, dirs = _walk(path)
        return _hash_listing(path, files, dirs), lambda: _Tree(files, dirs, lambda rel: (path / rel).read_bytes())
    raise DataError(f"data source {path} is neither a directory nor a "
                    f"{'/'.join(ARCHIVE_SUFFIXES)} archive")


def _load_torchvision(root: Path, download: bool) -> Dataset:
    """CIFAR-10 in torchvision's python format under ``root``, downloaded there if asked."""
    from torchvision.datasets import CIFAR10

    try:
        train, test = (CIFAR10(root=str(root), train=t, download=download) for t in (True, False))
    except (OSError, RuntimeError) as e:
        if not download:
            raise DataError(f"torchvision's CIFAR-10 files under {root} are missing or "
                            f"corrupted: {e}") from e
        raise DataError(
            f"could not download CIFAR-10 into {root}: {e}. Without network, pass a local copy "
            "with --data PATH: an ImageFolder directory or .tar/.tar.gz archive laid out as "
            f"train/<class>/* and test/<class>/*, or a directory holding torchvision's "
            f"{TORCHVISION_FOLDER}") from e
    return Dataset(
        torch.from_numpy(train.data), torch.tensor(train.targets, dtype=torch.int64),
        torch.from_numpy(test.data), torch.tensor(test.targets, dtype=torch.int64),
        list(train.classes),
    )


# ---------------------------------------------------------------- source trees


@dataclass
class _Tree:
    """The files of a source: relative posix paths, folders, and a reader of file bytes."""

    files: list[str]
    dirs: set[str]
    read: Callable[[str], bytes]

    def root(self) -> str:
        """Where the splits sit: ``""``, or ``"<top>/"`` when all lies in one top folder."""
        tops = {p.split("/", 1)[0] for p in [*self.files, *self.dirs]}
        if len(tops) != 1 or tops & set(SPLITS):
            return ""
        return f"{tops.pop()}/"


def _walk(root: Path) -> tuple[list[str], set[str]]:
    """Sorted relative posix paths of the non-hidden files under ``root``, and its folders."""
    files, dirs = [], set()
    for parent, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        rel = Path(parent).relative_to(root)
        dirs.update((rel / d).as_posix() for d in subdirs)
        files.extend((rel / n).as_posix() for n in names if not n.startswith("."))
    return sorted(files), dirs


def _read_archive(path: Path) -> _Tree:
    """All non-hidden regular files of a tar archive, read into memory in one pass."""
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                if not parts or any(p.startswith(".") for p in parts):
                    continue
                name = "/".join(parts)
                if member.isdir():
                    dirs.add(name)
                elif member.isfile():
                    files[name] = tar.extractfile(member).read()
                    dirs.update(p.as_posix() for p in PurePosixPath(name).parents[:-1])
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read archive {path}: {e}") from e
    return _Tree(sorted(files), dirs, files.__getitem__)


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


def _index_split(tree: _Tree, split: str, where: Path) -> dict[str, list[str]]:
    """{class: sorted files} for one split of an ImageFolder tree, classes in sorted order."""
    folder = tree.root() + split
    prefix = folder + "/"
    if folder not in tree.dirs and not any(f.startswith(prefix) for f in tree.files):
        raise DataError(f"{where} has no {folder}/ folder (expected {folder}/<class>/<image>)")
    classes: dict[str, list[str]] = {
        d[len(prefix):].split("/", 1)[0]: [] for d in tree.dirs if d.startswith(prefix)
    }
    for f in tree.files:
        if f.startswith(prefix) and "/" in f[len(prefix):]:
            classes[f[len(prefix):].split("/", 1)[0]].append(f)
    if not classes:
        raise DataError(f"{where}: {folder}/ holds no class folders")
    for name, files in sorted(classes.items()):
        if not files:
            raise DataError(f"class folder {prefix}{name} in {where} holds no images")
    return {name: sorted(classes[name]) for name in sorted(classes)}


def _decode_image(data: bytes, name: str, where: Path) -> np.ndarray:
    """One image's bytes as an RGB uint8 H×W×3 array."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {name} in {where}: not a format PIL knows") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {name} in {where}: {e}") from e


def _decode_tree(tree: _Tree, where: Path, progress: bool) -> Dataset:
    """Check an ImageFolder tree's layout and decode every image, train first, in sorted order."""
    index = {split: _index_split(tree, split, where) for split in SPLITS}
    classes = list(index["train"])
    if set(classes) != set(index["test"]):
        only_train = sorted(set(classes) - set(index["test"]))
        only_test = sorted(set(index["test"]) - set(classes))
        raise DataError(f"train and test classes differ in {where}: only in train {only_train}, "
                        f"only in test {only_test}")
    total = sum(len(files) for split in SPLITS for files in index[split].values())
    done, first = 0, None  # first: (name, shape) of the first image, which all must match
    arrays = []
    for split in SPLITS:
        items = [(f, label) for label, c in enumerate(classes) for f in index[split][c]]
        images = None
        for i, (name, _) in enumerate(items):
            array = _decode_image(tree.read(name), name, where)
            if first is None:
                first = (name, array.shape)
            elif array.shape != first[1]:
                raise DataError(f"image {name} in {where} is {_size(array.shape)}, but "
                                f"{first[0]} is {_size(first[1])}: all images must be one size")
            if images is None:
                images = np.empty((len(items), *array.shape), dtype=np.uint8)
            images[i] = array
            done += 1
            if progress and (done % PROGRESS_EVERY == 0 or done == total):
                print(f"\rdecoding {where}: {done}/{total} images", end="", file=sys.stderr)
        arrays += [torch.from_numpy(images), torch.tensor([label for _, label in items])]
    if progress:
        print(file=sys.stderr)
    return Dataset(*arrays, classes)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} (HxW)"


# ---------------------------------------------------------------- cache


def _cache_entry(cache: Path, content_hash: str) -> Path:
    return cache / "decoded" / hashlib.sha256(f"{CACHE_FORMAT}\0{content_hash}".encode()).hexdigest()


def _load_cached(entry: Path, tree: Callable[[], _Tree], where: Path, progress: bool) -> Dataset:
    """The decoded tree from the cache ``entry``, else decoded now and written to it."""
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
    dataset = _decode_tree(tree(), where, progress)
    try:
        _write_cache(entry, dataset)
    except OSError as e:
        warnings.warn(f"could not cache decoded images at {entry}: {e}", stacklevel=3)
    return dataset


def _read_cache(entry: Path) -> Dataset:
    """A cache entry: one raw .npy per field (3x faster to load than one uncompressed .npz)."""
    tensors = [torch.from_numpy(np.load(entry / f"{field}.npy")) for field in CACHED_TENSORS]
    classes = np.load(entry / "classes.npy").tolist()
    images, labels = tensors[0::2], tensors[1::2]
    if any(x.dtype != torch.uint8 or x.ndim != 4 or len(x) != len(y) for x, y in zip(images, labels)) \
            or not all(0 <= int(y.min()) and int(y.max()) < len(classes) for y in labels if len(y)):
        raise ValueError("its arrays do not fit together")
    return Dataset(*tensors, classes)


def _write_cache(entry: Path, dataset: Dataset) -> None:
    """Write a cache entry atomically: into a temporary folder, then renamed into place."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f"{entry.name}.tmp"))
    try:
        for field in CACHED_TENSORS:
            np.save(tmp / f"{field}.npy", getattr(dataset, field).numpy())
        np.save(tmp / "classes.npy", np.array(dataset.classes))
        os.replace(tmp, entry)
    except OSError:
        if not entry.is_dir():  # else another process wrote the same entry first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

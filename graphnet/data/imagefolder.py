"""ImageFolder sources: a tree ``train/<class>/*``, ``test/<class>/*`` as a directory or a
``.tar`` / ``.tar.gz`` / ``.tgz`` archive (read in place, never extracted), which may sit inside
one wrapping folder; hidden files and folders (names starting with ``.``) are ignored.

One function each: :func:`read_tree` lists a directory or reads an archive, :func:`index_source`
finds the classes and their files, :func:`image_shape` says how every image decodes (grayscale
when the first training image is, else RGB), :func:`balanced_indices` samples class-balanced,
:func:`is_torchvision` tells torchvision's data sets (not ImageFolders) apart.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from .errors import DataError

SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
TORCHVISION_FOLDER = "cifar-10-batches-py"


@dataclass(frozen=True)
class NamedSet:
    """A data set torchvision downloads, by the name ``--data`` takes: its split sizes, C×H×W
    and class count (known before the download)."""

    train: int
    test: int
    shape: tuple[int, int, int]
    classes: int


NAMED_SETS = {
    "cifar10": NamedSet(50_000, 10_000, (3, 32, 32), 10),
    "cifar100": NamedSet(50_000, 10_000, (3, 32, 32), 100),
    "svhn": NamedSet(73_257, 26_032, (3, 32, 32), 10),
    "mnist": NamedSet(60_000, 10_000, (1, 28, 28), 10),
    "fashionmnist": NamedSet(60_000, 10_000, (1, 28, 28), 10),
    "stl10": NamedSet(5_000, 8_000, (3, 96, 96), 10),
}


def is_torchvision(source: str | Path) -> bool:
    """Whether ``source`` is one of torchvision's data sets: a name in :data:`NAMED_SETS` (the
    download), a directory holding CIFAR-10's ``cifar-10-batches-py``, or that folder itself."""
    path = Path(source).expanduser()
    return source in NAMED_SETS or path.is_dir() and (path.name == TORCHVISION_FOLDER
                                                      or (path / TORCHVISION_FOLDER).is_dir())


# -- the tree -----------------------------------------------------------------------------------

@dataclass
class Tree:
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


def checked_path(source: str | Path) -> Path:
    """``source`` as the path of an existing directory or archive; DataError if it is neither."""
    where = Path(source).expanduser()
    if not where.exists():
        raise DataError(f"data source {where} does not exist")
    if not (where.is_dir() or where.is_file() and where.name.endswith(ARCHIVE_SUFFIXES)):
        raise DataError(f"data source {where} is neither a directory nor a {'/'.join(ARCHIVE_SUFFIXES)} archive")
    return where


def read_tree(where: Path) -> Tree:
    """The tree of a :func:`checked_path`: a directory's listing (files read when asked), or
    every file of an archive read into memory in one pass."""
    if where.is_dir():
        return Tree(*_walk(where), _FolderReader(where))
    return _read_archive(where)


class _FolderReader:
    """The bytes of a file under ``root`` (picklable, for spawned workers)."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


def _walk(root: Path) -> tuple[list[str], set[str]]:
    """Sorted relative posix paths of the non-hidden files under ``root``, and its folders."""
    files, dirs = [], set()
    for parent, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        rel = Path(parent).relative_to(root)
        dirs.update((rel / d).as_posix() for d in subdirs)
        files.extend((rel / n).as_posix() for n in names if not n.startswith("."))
    return sorted(files), dirs


def _read_archive(path: Path) -> Tree:
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
    return Tree(sorted(files), dirs, files.__getitem__)


# -- the index ----------------------------------------------------------------------------------

@dataclass
class Source:
    """An ImageFolder tree indexed, nothing decoded: its classes (sorted folder names; a class's
    index is its label) and per split the files, class by class, and their labels. ``mean`` and
    ``std``: the per-channel normalisation once known (:func:`graphnet.data.stream.with_stats`)."""

    where: Path
    tree: Tree
    classes: list[str]
    files: dict[str, list[str]]
    labels: dict[str, list[int]]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def encoded(self, name: str) -> torch.Tensor:
        """The bytes of the file ``name`` as a 1-D uint8 tensor."""
        return torch.frombuffer(bytearray(self.tree.read(name)), dtype=torch.uint8)


def index_source(source: str | Path) -> Source:
    """Index an ImageFolder directory or archive (see the module doc); DataError, in one line,
    if it is not one or its train and test classes differ."""
    where = checked_path(source)
    tree = read_tree(where)
    index = {split: _index_split(tree, split, where) for split in SPLITS}
    classes = list(index["train"])
    if classes != list(index["test"]):
        only_train = sorted(set(classes) - set(index["test"]))
        only_test = sorted(set(index["test"]) - set(classes))
        raise DataError(f"train and test classes differ in {where}: only in train {only_train}, "
                        f"only in test {only_test}")
    files = {s: [f for c in classes for f in index[s][c]] for s in SPLITS}
    labels = {s: [k for k, c in enumerate(classes) for _ in index[s][c]] for s in SPLITS}
    return Source(where, tree, classes, files, labels)


def _index_split(tree: Tree, split: str, where: Path) -> dict[str, list[str]]:
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


def image_shape(source: Source) -> tuple[int, int, int]:
    """C×H×W that every image decodes to (all must have it): the first training image's size, with
    1 channel when that image is grayscale (with or without alpha), else 3 (RGB; alpha dropped)."""
    from torchvision.io import ImageReadMode, decode_image

    first = source.files["train"][0]
    try:
        channels, height, width = decode_image(source.encoded(first), mode=ImageReadMode.UNCHANGED).shape
    except RuntimeError as e:
        raise DataError(f"cannot read image {first} in {source.where}: {e}") from None
    return (1 if channels <= 2 else 3), height, width


# -- class-balanced samples ---------------------------------------------------------------------

def balanced_indices(labels: torch.Tensor, num_classes: int, n: int | None,
                     generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of n labels drawn class-balanced at random (all indices when n is None).

    Each class gets an equal share; when n is not a multiple of the class count (or a class
    runs short) the shares differ by at most one among classes that have samples left.
    """
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


def subset_source(source: Source, train: int | None = None, test: int | None = None, seed: int = 0) -> Source:
    """``source`` cut to ``train`` / ``test`` files per split, the same class-balanced random
    images as :meth:`Dataset.subset <graphnet.data.Dataset.subset>` takes of the decoded set."""
    generator = torch.Generator().manual_seed(seed)
    files, labels = dict(source.files), dict(source.labels)
    for split, n in (("train", train), ("test", test)):
        picked = balanced_indices(torch.tensor(labels[split]), len(source.classes), n, generator).tolist()
        files[split] = [files[split][i] for i in picked]
        labels[split] = [labels[split][i] for i in picked]
    return dataclasses.replace(source, files=files, labels=labels)

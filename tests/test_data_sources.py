"""Loading ImageFolder trees (directories and archives), the decoded-array cache, data errors."""

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from graphnet.data import DataError, Dataset, decoded_sizes, load_dataset
from graphnet.data import sources
from graphnet.data.imagefolder import index_source, is_torchvision

CLASSES = ["bird", "cat", "dog"]  # deliberately created out of order below


def pixels(split: str, label: int, i: int, size: int = 8) -> np.ndarray:
    """A distinct, reproducible image for (split, label, i)."""
    rng = np.random.default_rng([len(split), label, i])
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def make_tree(root: Path, counts=None, fmt: str = "png") -> Path:
    """An ImageFolder tree: ``counts[split]`` images per class, written in non-sorted order."""
    counts = counts or {"train": 4, "test": 2}
    for split, n in counts.items():
        for label in reversed(range(len(CLASSES))):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True)
            for i in reversed(range(n)):
                Image.fromarray(pixels(split, label, i)).save(folder / f"{i:03d}.{fmt}")
    return root


def make_archive(tree: Path, archive: Path, wrap: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            if (tree / split).exists():
                tar.add(tree / split, arcname=f"{wrap}{split}")
    return archive


def expected(split: str, n: int):
    images = [pixels(split, label, i) for label in range(len(CLASSES)) for i in range(n)]
    labels = [label for label in range(len(CLASSES)) for _ in range(n)]
    return torch.from_numpy(np.stack(images)), torch.tensor(labels)


def check_png_dataset(ds: Dataset):
    assert ds.classes == CLASSES
    for split, n in (("train", 4), ("test", 2)):
        images, labels = expected(split, n)
        got_images = getattr(ds, f"{split}_images")
        got_labels = getattr(ds, f"{split}_labels")
        assert got_images.dtype == torch.uint8 and got_images.shape == (3 * n, 8, 8, 3)
        assert got_labels.dtype == torch.int64
        assert torch.equal(got_labels, labels)
        assert torch.equal(got_images, images)


def test_directory_png(tmp_path):
    ds = load_dataset(make_tree(tmp_path / "data"), cache_dir=tmp_path / "cache", progress=False)
    check_png_dataset(ds)
    assert repr(ds) == "Dataset(train=12x8x8x3, test=6x8x8x3, classes=3)"


@pytest.mark.parametrize("wrap", ["", "cifar/"])
def test_archive_png(tmp_path, wrap):
    archive = make_archive(make_tree(tmp_path / "data"), tmp_path / "data.tar.gz", wrap)
    check_png_dataset(load_dataset(archive, cache_dir=tmp_path / "cache", progress=False))


def test_jpeg_shapes_and_labels(tmp_path):
    ds = load_dataset(make_tree(tmp_path / "data", fmt="jpg"), cache_dir=tmp_path / "cache",
                      progress=False)
    assert ds.train_images.shape == (12, 8, 8, 3) and ds.test_images.shape == (6, 8, 8, 3)
    assert ds.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_progress_goes_to_stderr(tmp_path, capsys):
    load_dataset(make_tree(tmp_path / "data"), cache_dir=tmp_path / "cache")
    out, err = capsys.readouterr()
    assert out == "" and "18/18 images" in err


def test_cache_hit_does_not_decode(tmp_path, monkeypatch):
    archive = make_archive(make_tree(tmp_path / "data"), tmp_path / "data.tgz")
    first = load_dataset(archive, cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(sources, "_decode_image", lambda *a: pytest.fail("decoded again"))
    second = load_dataset(archive, cache_dir=tmp_path / "cache", progress=False)
    check_png_dataset(second)
    assert second.classes == first.classes
    assert not list((tmp_path / "cache").rglob("*.tmp*"))


def test_directory_cache_sees_changes(tmp_path, monkeypatch):
    data = make_tree(tmp_path / "data")
    load_dataset(data, cache_dir=tmp_path / "cache", progress=False)
    Image.fromarray(pixels("train", 0, 9)).save(data / "train" / "bird" / "009.png")
    calls = []
    decode = sources._decode_image
    monkeypatch.setattr(sources, "_decode_image", lambda *a: calls.append(a) or decode(*a))
    ds = load_dataset(data, cache_dir=tmp_path / "cache", progress=False)
    assert len(calls) == 19 and len(ds.train_images) == 13


def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path / "env-cache"))
    load_dataset(make_tree(tmp_path / "data"), progress=False)
    assert list((tmp_path / "env-cache").rglob("train_images.npy"))


def test_hidden_files_are_ignored(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    (data / "train" / ".hidden").mkdir()
    check_png_dataset(load_dataset(data, cache_dir=tmp_path / "cache", progress=False))


# ---------------------------------------------------------------- errors


def load_error(source, tmp_path) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(source, cache_dir=tmp_path / "cache", progress=False)
    return str(info.value)


def test_missing_path(tmp_path):
    assert str(tmp_path / "nope") in load_error(tmp_path / "nope", tmp_path)


def test_not_a_directory_or_archive(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    assert "neither a directory nor" in load_error(tmp_path / "data.zip", tmp_path)


def test_corrupt_archive(tmp_path):
    (tmp_path / "data.tar.gz").write_bytes(b"not a tar")
    assert "cannot read archive" in load_error(tmp_path / "data.tar.gz", tmp_path)


@pytest.mark.parametrize("archive", [False, True])
def test_missing_split(tmp_path, archive):
    source = make_tree(tmp_path / "data", counts={"train": 1})
    if archive:
        source = make_archive(source, tmp_path / "data.tar")
    assert "no test/ folder" in load_error(source, tmp_path)


def test_empty_class_folder(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "test" / "emu").mkdir()
    assert "test/emu" in load_error(data, tmp_path)


def test_unreadable_image(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "train" / "cat" / "bad.png").write_bytes(b"not an image")
    assert "train/cat/bad.png" in load_error(data, tmp_path)


def test_unreadable_image_in_archive(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "test" / "dog" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    message = load_error(make_archive(data, tmp_path / "data.tar.gz", wrap="wrap/"), tmp_path)
    assert "wrap/test/dog/bad.jpg" in message and "data.tar.gz" in message


def test_mixed_sizes(tmp_path):
    data = make_tree(tmp_path / "data")
    Image.fromarray(pixels("test", 1, 0, size=6)).save(data / "test" / "cat" / "000.png")
    message = load_error(data, tmp_path)
    assert "test/cat/000.png" in message and "6x6" in message and "8x8" in message
    assert "train/bird/000.png" in message


def test_class_sets_differ(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "test" / "cat").rename(data / "test" / "cow")
    message = load_error(data, tmp_path)
    assert "only in train ['cat']" in message and "only in test ['cow']" in message


def test_indexing_to_stream_checks_a_tree_as_decoding_does(tmp_path):
    data = make_tree(tmp_path / "data")
    (data / "test" / "cat").rename(data / "test" / "cow")
    with pytest.raises(DataError) as info:
        index_source(data)
    assert str(info.value) == load_error(data, tmp_path)
    missing = tmp_path / "nope"
    assert str(pytest.raises(DataError, index_source, missing).value) == load_error(missing, tmp_path)


# ---------------------------------------------------------------- torchvision CIFAR-10


class FakeCIFAR10:
    """Stands in for torchvision's CIFAR10: records its calls, never touches the network."""

    calls = []
    error = None

    def __init__(self, root, train, download):
        FakeCIFAR10.calls.append((root, train, download))
        if FakeCIFAR10.error:
            raise FakeCIFAR10.error
        n = 5 if train else 3
        self.data = np.full((n, 4, 4, 3), 7, dtype=np.uint8)
        self.targets = [i % 2 for i in range(n)]
        self.classes = ["a", "b"]


@pytest.fixture
def fake_cifar10(monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    FakeCIFAR10.calls, FakeCIFAR10.error = [], None
    return FakeCIFAR10


def test_cifar10_downloads_into_cache(tmp_path, fake_cifar10):
    ds = load_dataset("cifar10", cache_dir=tmp_path)
    root = str(tmp_path / "cifar10")
    assert fake_cifar10.calls == [(root, True, True), (root, False, True)]
    assert ds.train_images.shape == (5, 4, 4, 3) and ds.test_labels.tolist() == [0, 1, 0]
    assert ds.classes == ["a", "b"] and ds.train_labels.dtype == torch.int64


def test_cifar10_download_failure_explains_local_copy(tmp_path, fake_cifar10):
    fake_cifar10.error = OSError("no network")
    message = load_error("cifar10", tmp_path)
    assert "no network" in message and "--data PATH" in message
    assert "cifar-10-batches-py" in message


def test_torchvision_folder_is_loaded_without_download(tmp_path, fake_cifar10):
    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    load_dataset(tmp_path / "tv", cache_dir=tmp_path / "cache")
    load_dataset(tmp_path / "tv" / "cifar-10-batches-py", cache_dir=tmp_path / "cache")
    assert {call[0] for call in fake_cifar10.calls} == {str(tmp_path / "tv")}
    assert not any(download for _, _, download in fake_cifar10.calls)


def test_torchvisions_cifar10_is_told_apart_from_image_folders(tmp_path):
    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    assert is_torchvision("cifar10") and is_torchvision(tmp_path / "tv")
    assert is_torchvision(tmp_path / "tv" / "cifar-10-batches-py")
    assert not is_torchvision(make_tree(tmp_path / "data")) and not is_torchvision(tmp_path / "nope")
    assert decoded_sizes(tmp_path / "tv", cache_dir=tmp_path / "cache") is None


# ---------------------------------------------------------------- subsets


def labelled(counts: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])


def toy_dataset(train_counts, test_counts) -> Dataset:
    train_labels, test_labels = labelled(train_counts), labelled(test_counts)
    ids = torch.arange(len(train_labels), dtype=torch.uint8)  # pixel = sample index
    images = ids[:, None, None, None].expand(-1, 2, 2, 3).clone()
    return Dataset(images, train_labels, images[:len(test_labels)].clone(), test_labels,
                   [f"c{i}" for i in range(len(train_counts))])


def test_subset_is_balanced_seeded_and_aligned():
    ds = toy_dataset([10, 10, 10], [4, 4, 4])
    sub = ds.subset(train=7, test=None, seed=3)
    assert sorted(torch.bincount(sub.train_labels, minlength=3).tolist()) == [2, 2, 3]
    ids = sub.train_images[:, 0, 0, 0].long()
    assert torch.equal(ds.train_labels[ids], sub.train_labels)  # images follow their labels
    assert ids.unique().numel() == 7 and torch.equal(ids, ids.sort().values)
    assert torch.equal(sub.test_labels, ds.test_labels)
    assert torch.equal(ds.subset(7, seed=3).train_images, sub.train_images)
    assert any(not torch.equal(ds.subset(7, seed=s).train_images, sub.train_images)
               for s in range(4, 10))


def test_subset_short_class_gives_its_share_away():
    sub = toy_dataset([2, 10, 10], [1, 1, 1]).subset(train=12, test=3)
    assert torch.bincount(sub.train_labels).tolist() == [2, 5, 5]
    assert torch.bincount(sub.test_labels).tolist() == [1, 1, 1]


def test_subset_too_large():
    with pytest.raises(ValueError, match="cannot take 31"):
        toy_dataset([10, 10, 10], [1, 1, 1]).subset(train=31)

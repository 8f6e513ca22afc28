"""The streaming data path: the on-device path's batches from an image folder or archive."""

import json
import tarfile
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg

from graphnet.data import DataError, DeviceData, decoded_sizes, load_dataset
from graphnet.data import memory
from graphnet.data.imagefolder import index_source
from graphnet.data.memory import device_bytes, plan
from graphnet.data import stream
from graphnet.data.stream import StreamData, with_stats

# ../shared/data beside the repository (or beside the worktrees' folder)
CIFAR_JPEG = next((p / "shared/data/cifar10-jpeg.tar.gz" for p in Path(__file__).resolve().parents[2:4]
                   if (p / "shared/data/cifar10-jpeg.tar.gz").is_file()), Path("shared/data/cifar10-jpeg.tar.gz"))
PALETTE = torch.tensor([[200, 40, 40], [40, 60, 200]])


def write_folder(root: Path, per_class: dict[str, int], size: int = 16) -> Path:
    """An ImageFolder tree of JPEGs: each class its colour plus noise (quality 100)."""
    generator = torch.Generator().manual_seed(0)
    for split, n in per_class.items():
        for label, name in enumerate(["red", "blue"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                noise = 30 * torch.randn(3, size, size, generator=generator)
                image = (PALETTE[label][:, None, None] + noise).clamp(0, 255).to(torch.uint8)
                (folder / f"{i:03d}.jpg").write_bytes(encode_jpeg(image, quality=100).numpy().tobytes())
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"), {"train": 20, "test": 5})


def epoch(data: StreamData, batch_size: int, seed: int = 0, **augment) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batches = list(data.train_batches(batch_size, generator, **augment))
    assert len(batches) == data.num_train_batches(batch_size)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def match(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each image the index of the nearest reference image; asserts it is near (JPEG
    decoders may differ by a level or two) and that the matching is one to one."""
    distance = torch.cdist(images.flatten(1), reference.flatten(1)) / images[0].numel() ** 0.5
    nearest = distance.argmin(1)
    assert distance.min(1).values.max() < 0.05  # normalised units: ~3 levels of 255
    assert len(nearest.unique()) == len(nearest)
    return nearest


def test_batches_are_the_device_paths_images_normalised_and_padded(folder):
    device = DeviceData(load_dataset(folder, cache_dir=folder.parent / "cache", progress=False), "cpu")
    data = StreamData(folder, "cpu", workers=1)
    assert (data.num_classes, data.len_train, data.image_shape) == (2, 40, (3, 16, 16))
    images, labels = epoch(data, 8, crop=24, flip=False)  # crop at the padded size: no crop
    assert images.shape == (40, 3, 24, 24)
    nearest = match(images, device.train_images)  # every training image once per epoch
    assert torch.equal(labels, device.train_labels[nearest])
    test = list(data.test_batches(4))
    assert [len(b[1]) for b in test] == [4, 4, 2]
    torch.testing.assert_close(torch.cat([b[0] for b in test]), device.test_images, atol=0.05, rtol=0)


def test_augmentation_is_seeded_and_cropped_on_the_device_path(folder):
    data = StreamData(folder, "cpu", workers=0, seed=3)
    images, _ = epoch(data, 10, seed=1, crop=16, cutout=4)
    assert images.shape == (40, 3, 16, 16)
    assert ((images == 0).all(1).flatten(1).sum(1) >= 16).all()  # a 4x4 cutout in each image
    again = StreamData(folder, "cpu", workers=0, seed=3)
    assert torch.equal(epoch(again, 10, seed=1, crop=16, cutout=4)[0], images)
    assert not torch.equal(epoch(again, 10, seed=1, crop=16, cutout=4)[0], images)  # the next epoch


def test_a_flip_function_gets_the_images_indices_in_the_split(folder):
    seen = []

    def flip(images, index):  # as AlternatingFlip is called
        seen.append(index)
        return images.flip(-1)

    images, labels = epoch(StreamData(folder, "cpu", workers=0, seed=3), 8, crop=24, flip=flip)
    index = torch.cat(seen)
    assert sorted(index.tolist()) == list(range(40))
    assert torch.equal(labels, torch.tensor(StreamData(folder, "cpu", workers=0).train.labels)[index])
    plain, _ = epoch(StreamData(folder, "cpu", workers=0, seed=3), 8, crop=24, flip=False)
    assert torch.equal(images, plain.flip(-1))


def test_batches_come_in_the_memory_format_asked_for(folder):
    data = StreamData(folder, "cpu", workers=0, dtype=torch.bfloat16, memory_format=torch.channels_last)
    images, _ = next(data.train_batches(8, torch.Generator().manual_seed(0), crop=16, cutout=4))
    test_images, _, _ = next(data.test_batches(8))
    for t in (images, test_images):
        assert t.dtype == torch.bfloat16 and t.is_contiguous(memory_format=torch.channels_last)


def test_a_sample_for_data_initialisers_is_balanced_and_unpadded(folder):
    data = StreamData(folder, "cpu", workers=0, rank=1, world_size=2)
    sample = data.sample_train_images(10)
    assert sample.shape == (10, 3, 16, 16)
    reference = DeviceData(load_dataset(folder, cache_dir=folder.parent / "cache", progress=False), "cpu", pad=0)
    assert torch.bincount(reference.train_labels[match(sample, reference.train_images)]).tolist() == [5, 5]


def test_ranks_share_each_epoch_between_them(folder):
    shares = [StreamData(folder, "cpu", workers=0, rank=r, world_size=3) for r in range(3)]
    assert [s.len_train for s in shares] == [13] * 3 and [s.num_train_batches(4) for s in shares] == [3] * 3
    images = [epoch(s, 13, crop=24, flip=False)[0] for s in shares]
    reference = DeviceData(load_dataset(folder, cache_dir=folder.parent / "cache", progress=False), "cpu")
    assert len(match(torch.cat(images), reference.train_images).unique()) == 39


def test_an_archive_streams_as_its_folder(folder, tmp_path):
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "train", "images/train")
        tar.add(folder / "test", "images/test")
    from_tar = torch.cat([b[0] for b in StreamData(archive, "cpu", workers=0).test_batches(8)])
    from_dir = torch.cat([b[0] for b in StreamData(folder, "cpu", workers=0).test_batches(8)])
    assert torch.equal(from_tar, from_dir)


def test_an_image_of_another_size_is_one_line(tmp_path):
    root = write_folder(tmp_path / "mixed", {"train": 3, "test": 1})
    bad = encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8)).numpy().tobytes()
    (root / "train" / "blue" / "002.jpg").write_bytes(bad)
    with pytest.raises(DataError, match=r"^image train/blue/002.jpg in .* is 8x8 \(HxW\), but the first "
                                        r"training image is 16x16: all images must be one size$"):
        epoch(StreamData(root, "cpu", workers=1), 6)  # said by the normalisation's pass over the images


def test_the_plan_streams_only_what_does_not_fit(folder):
    need = device_bytes(40, 10, (3, 16, 16), torch.float32)
    assert need == (40 * 3 * 24 * 24 + 10 * 3 * 16 * 16) * 4 + 40 * 3 * 16 * 16 * 5
    stream, note = plan(folder, "cpu", free=10 ** 9)
    assert not stream and note.startswith("data: 40 train + 10 test images of 3x16x16 need about")
    assert note.endswith("kept on the device")
    stream, note = plan(folder, "cpu", free=10 ** 5)
    assert stream and note.endswith("streamed from the source by DataLoader workers")
    assert plan(index_source(folder), "cpu", free=10 ** 5) == (stream, note)
    assert plan("cifar10", "cpu", free=1)[0] is False  # torchvision's format is not streamable


def test_a_decoded_set_is_planned_from_the_cache_without_reading_the_source(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path))
    assert decoded_sizes(folder) is None
    before = plan(folder, "cpu", free=10 ** 5)
    load_dataset(folder, progress=False)
    assert decoded_sizes(folder) == (40, 10, (3, 16, 16))

    def unread(source):
        raise AssertionError(f"{source} read")

    monkeypatch.setattr(memory, "index_source", unread)
    assert plan(folder, "cpu", free=10 ** 5) == before


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason="the shared CIFAR-10 JPEG archive is not here")
def test_cifar10_jpeg_archive_streams():
    from io import BytesIO

    import numpy as np
    from PIL import Image

    data = StreamData(CIFAR_JPEG, "cpu", workers=0)
    assert (data.len_train, len(data.test), data.num_classes, data.image_shape) == (50_000, 10_000, 10, (3, 32, 32))
    images, labels, _ = next(data.test_batches(16))
    name = data.source.files["test"][15]
    pil = torch.from_numpy(np.asarray(Image.open(BytesIO(data.source.tree.read(name))).convert("RGB")))
    mean, std = data.normalise.mean, data.normalise.std
    torch.testing.assert_close(images[15], (pil.permute(2, 0, 1).float() - mean) / std, atol=0.05, rtol=0)
    assert labels.tolist() == [0] * 16 and data.classes[0] == "airplane"


def test_encoded_batches_decode_as_the_workers_would(folder):
    """The GPU-decoding path's plumbing on the CPU: workers pass bytes, the main process decodes
    the batch with torchvision's batched decode_jpeg on the data's device."""
    from graphnet.data.stream import _Images

    data = StreamData(folder, "cpu", workers=0)
    decoded = torch.cat([b[0] for b in data.test_batches(4)])
    data.test = _Images(data.source, "test", data.image_shape, encoded=True)
    data._loaders.clear()
    assert torch.equal(torch.cat([b[0] for b in data.test_batches(4)]), decoded)


def test_a_streamed_sets_normalisation_is_cached_by_its_samples_bytes(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNET_CACHE", str(tmp_path / "cache"))
    first = with_stats(index_source(folder), workers=0)
    entries = list((tmp_path / "cache" / "stats").glob("*.json"))
    assert len(entries) == 1 and first.mean is not None

    def decoded_again(batches):
        raise AssertionError("decoded again")

    computed = stream.channel_stats
    monkeypatch.setattr(stream, "channel_stats", decoded_again)
    again = with_stats(index_source(folder), workers=0)
    assert (again.mean, again.std) == (first.mean, first.std)
    other = write_folder(tmp_path / "other", {"train": 20, "test": 5})
    image = other / "train" / "red" / "000.jpg"
    image.write_bytes(encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8), quality=100).numpy().tobytes())
    with pytest.raises(AssertionError, match="decoded again"):  # another image's bytes: another key
        with_stats(index_source(other), workers=0)
    entries[0].write_text("{not json")  # a damaged entry is computed again and rewritten
    monkeypatch.setattr(stream, "channel_stats", computed)
    assert with_stats(index_source(folder), workers=0).mean == first.mean
    assert json.loads(entries[0].read_text())["mean"] == list(first.mean)

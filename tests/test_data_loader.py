"""DeviceData on CPU: normalisation, padding, epoch coverage, label alignment, memory format."""

import pytest
import torch

from graphnet.data import CIFAR10_MEAN, CIFAR10_STD, Dataset, DeviceData


def coded_dataset(n_train=10, n_test=6, size=8, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> Dataset:
    """Each image is constant: its pixel value encodes its index, and its label is index % 3;
    normalised by CIFAR-10's constants (those ``decode`` undoes)."""
    def images(n):
        return (torch.arange(n, dtype=torch.uint8) * 20)[:, None, None, None].expand(
            n, size, size, 3).clone()

    return Dataset(images(n_train), torch.arange(n_train) % 3, images(n_test),
                   torch.arange(n_test) % 3, ["a", "b", "c"], mean, std)


def decode(images: torch.Tensor) -> torch.Tensor:
    """Sample indices back from normalised constant images (channel 0 of pixel 0,0)."""
    return (images[:, 0, 0, 0].float() * CIFAR10_STD[0] + CIFAR10_MEAN[0]).div(20).round().long()


def test_normalisation_and_layout():
    ds = Dataset(torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8), torch.zeros(4),
                 torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8), torch.zeros(2), ["x"])
    pixels = ds.train_images.reshape(-1, 3).double()  # the normalisation is the training images'
    torch.testing.assert_close(torch.tensor(ds.mean, dtype=torch.float64), pixels.mean(0))
    torch.testing.assert_close(torch.tensor(ds.std, dtype=torch.float64), pixels.std(0, correction=0))
    data = DeviceData(ds, "cpu")
    mean = torch.tensor(ds.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(ds.std, dtype=torch.float32)[:, None, None]
    expect = (ds.test_images.permute(0, 3, 1, 2).float() - mean) / std
    torch.testing.assert_close(data.test_images, expect)
    assert data.train_images.shape == (4, 3, 16, 16)
    raw = (ds.train_images.permute(0, 3, 1, 2).float() - mean) / std
    torch.testing.assert_close(data.raw_train_images(), raw)
    torch.testing.assert_close(data.raw_train_images(2), raw[:2])
    # reflect padding: the row above the image mirrors its second row
    torch.testing.assert_close(data.train_images[:, :, 3, 4:12], raw[:, :, 1])
    assert data.num_classes == 1 and data.len_train == 4


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_the_data_set_is_left_unchanged(dtype):
    ds = coded_dataset()
    ds.train_images, ds.test_images = ds.train_images.to(dtype), ds.test_images.to(dtype)
    before = ds.train_images.clone(), ds.test_images.clone()
    DeviceData(ds, "cpu")
    assert torch.equal(ds.train_images, before[0]) and torch.equal(ds.test_images, before[1])


def test_mean_std_must_match_channels():
    with pytest.raises(ValueError, match="one value per channel"):
        DeviceData(coded_dataset(mean=(0.0,), std=(1.0,)), "cpu")


def test_epoch_covers_every_sample_once_with_aligned_labels():
    data = DeviceData(coded_dataset(), "cpu")
    assert data.num_train_batches(4, drop_last=False) == 3
    batches = list(data.train_batches(4, torch.Generator().manual_seed(0), crop=8,
                                      cutout=0, drop_last=False))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    seen = torch.cat([decode(images) for images, _ in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for images, labels in batches:
        assert images.shape[1:] == (3, 8, 8)
        assert torch.equal(decode(images) % 3, labels)


def test_drop_last_and_seeding():
    data = DeviceData(coded_dataset(), "cpu")
    assert data.num_train_batches(4) == 2

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        return [b for b, _ in data.train_batches(4, g, crop=6, cutout=2)]

    first = epoch(1)
    assert len(first) == 2 and all(b.shape == (4, 3, 6, 6) for b in first)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(1)))
    assert not all(torch.equal(a, b) for a, b in zip(first, epoch(2)))


def test_test_batches_in_order_in_one_shape():
    data = DeviceData(coded_dataset(), "cpu")
    batches = list(data.test_batches(4))
    assert [(len(labels), count) for _, labels, count in batches] == [(4, 4), (4, 2)]  # the last padded
    assert torch.cat([decode(images)[:count] for images, _, count in batches]).tolist() == list(range(6))
    assert torch.cat([labels[:count] for _, labels, count in batches]).tolist() == [0, 1, 2, 0, 1, 2]
    assert [len(labels) for _, labels, _ in data.test_batches(100)] == [6]  # never more than the test set


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_channels_last_and_dtype(fmt):
    data = DeviceData(coded_dataset(), "cpu", dtype=torch.bfloat16, memory_format=fmt)
    images, _ = next(data.train_batches(4, torch.Generator().manual_seed(0), crop=8, cutout=3))
    test_images, _, _ = list(data.test_batches(4))[-1]  # the padded batch too
    for t in (data.train_images, data.test_images, images, test_images):
        assert t.dtype == torch.bfloat16
        assert t.is_contiguous(memory_format=fmt)

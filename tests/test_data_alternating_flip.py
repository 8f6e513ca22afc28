"""Airbench's alternating flip and ±2 px reflect translation."""

import torch
import torch.nn.functional as F

from graphnet.data.alternating_flip import AlternatingFlip
from graphnet.data.augment import random_crop


def test_each_epoch_flips_exactly_the_images_the_epoch_before_did_not():
    flips = AlternatingFlip(1000, torch.Generator().manual_seed(0))
    m0, m1, m2 = flips.mask(0), flips.mask(1), flips.mask(2)
    assert 400 < int(m0.sum()) < 600  # epoch 0: random, about half
    assert torch.equal(m1, ~m0) and torch.equal(m2, m0)
    again = AlternatingFlip(1000, torch.Generator().manual_seed(0))
    assert torch.equal(again.mask(5), m1)  # deterministic given the seed


def test_alternating_flip_flips_the_batch_by_its_indices():
    images = torch.randn(10, 3, 4, 4)
    flips = AlternatingFlip(10, torch.Generator().manual_seed(1))
    index = torch.tensor([7, 2, 5, 0])
    for epoch in (0, 1):
        out = flips(images[index], index, epoch)
        for row, i in enumerate(index):
            want = images[i].flip(-1) if flips.mask(epoch)[i] else images[i]
            assert torch.equal(out[row], want)
    assert torch.equal(flips(images[index], index, 0).flip(-1), flips(images[index], index, 1))


def test_translate_is_a_crop_of_the_reflect_padded_batch_with_every_shift_up_to_two():
    images = torch.arange(400 * 3 * 32 * 32, dtype=torch.float32).reshape(400, 3, 32, 32)
    padded = F.pad(images, (2,) * 4, mode="reflect")
    out = random_crop(padded, 32, torch.Generator().manual_seed(0))
    shifts = set()
    for n in range(len(images)):  # airbench's batch_crop: padded[r+sy : r+sy+32, r+sx : r+sx+32]
        found = [(sy, sx) for sy in range(-2, 3) for sx in range(-2, 3)
                 if torch.equal(out[n], padded[n, :, 2 + sy:34 + sy, 2 + sx:34 + sx])]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) == 25

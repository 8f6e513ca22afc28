"""Vectorised batch augmentations: real windows, whole flips, exact cutout squares, seeding."""

import pytest
import torch

from graphnet.data import cutout, random_crop, random_flip
from graphnet.data.augment import augment_batch


def arange_images(n=64, c=2, h=6, w=7, dtype=torch.float32) -> torch.Tensor:
    """Images whose every value is distinct, so any window identifies its position."""
    return torch.arange(n * c * h * w, dtype=dtype).reshape(n, c, h, w)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_takes_real_windows_at_varied_offsets():
    images = arange_images()
    crops = random_crop(images, 4, gen(0))
    assert crops.shape == (64, 2, 4, 4)
    offsets = set()
    for i, crop in enumerate(crops):
        top, left = divmod(int(crop[0, 0, 0] - images[i, 0, 0, 0]), 7)
        assert torch.equal(crop, images[i, :, top:top + 4, left:left + 4])
        offsets.add((top, left))
    # 3 x 4 valid offsets, 64 draws: all should appear, corners included
    assert offsets == {(t, x) for t in range(3) for x in range(4)}


def test_crop_to_full_size_is_identity():
    images = arange_images(n=3)
    with pytest.raises(ValueError, match="crop size 7"):
        random_crop(images, 7, gen(0))
    square = arange_images(n=3, h=5, w=5)
    assert torch.equal(random_crop(square, 5, gen(0)), square)


def test_flip_mirrors_whole_images_about_half_the_time():
    images = arange_images()
    flipped = random_flip(images, gen(0))
    mirrored = [torch.equal(out, img.flip(-1)) for out, img in zip(flipped, images)]
    kept = [torch.equal(out, img) for out, img in zip(flipped, images)]
    assert all(m != k for m, k in zip(mirrored, kept))
    assert 16 < sum(mirrored) < 48


def test_cutout_zeroes_one_inside_square_per_image():
    images = arange_images(n=400) + 1  # no zeros before cutout
    out = cutout(images, 3, gen(0))
    zero = out == 0
    assert torch.equal(out[~zero], images[~zero])
    corners = set()
    for mask in zero:
        assert torch.equal(mask[0], mask[1])  # same square in every channel
        rows, cols = mask[0].nonzero(as_tuple=True)
        assert len(rows) == 9
        top, left = int(rows.min()), int(cols.min())
        assert rows.max() == top + 2 and cols.max() == left + 2
        corners.add((top, left))
    # 4 x 5 valid corners, 400 draws: all should appear
    assert corners == {(t, x) for t in range(4) for x in range(5)}


def test_cutout_size_zero_is_a_no_op():
    images = arange_images(n=2)
    assert cutout(images, 0, gen(0)) is images


@pytest.mark.parametrize("augment", [
    lambda x, g: random_crop(x, 4, g),
    random_flip,
    lambda x, g: cutout(x, 3, g),
])
def test_seeding(augment):
    images = arange_images()
    assert torch.equal(augment(images, gen(1)), augment(images, gen(1)))
    assert not torch.equal(augment(images, gen(1)), augment(images, gen(2)))


def test_inputs_are_not_modified_and_dtype_kept():
    images = arange_images(dtype=torch.float16)
    before = images.clone()
    for out in (random_crop(images, 4, gen(0)), random_flip(images, gen(0)),
                cutout(images, 2, gen(0))):
        assert out.dtype == torch.float16
    assert torch.equal(images, before)


def test_a_training_batch_is_cropped_flipped_and_cut_out_as_asked():
    images = torch.rand(6, 3, 12, 12) + 1  # no zeros but cutout's
    index = torch.arange(10, 16)
    assert torch.equal(augment_batch(images, index, gen(0), 12, False, 0), images)  # no crop at the padded size
    seen = []
    flipped = augment_batch(images, index, gen(0), 12, lambda x, i: seen.append(i) or x.flip(-1), 0)
    assert torch.equal(flipped, images.flip(-1)) and torch.equal(seen[0], index)
    out = augment_batch(images, index, gen(0), 8, True, 4)
    assert out.shape == (6, 3, 8, 8) and ((out == 0).all(1).flatten(1).sum(1) == 16).all()
    assert torch.equal(out, augment_batch(images, index, gen(0), 8, True, 4))

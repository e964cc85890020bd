from __future__ import annotations

import torch
import torch.nn.functional as F

from lcnas.data import BatchLoader, random_crop, random_hflip, synthetic_dataset


def test_random_crop_takes_windows_of_the_padded_image():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = random_crop(images, padding=2, generator=gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (2, 2, 2, 2))
    for i in range(16):
        windows = [padded[i, :, y : y + 8, x : x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    # not all crops are the centre one
    assert not torch.equal(out, images)


def test_random_hflip_flips_some_images_exactly():
    images = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8)
    out = random_hflip(images, generator=torch.Generator().manual_seed(0))
    same = [torch.equal(out[i], images[i]) for i in range(64)]
    flipped = [torch.equal(out[i], images[i].flip(2)) for i in range(64)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 10 < sum(flipped) < 54


def test_loader_batches_are_float_unit_range_and_epoch_reproducible():
    data = synthetic_dataset(100)
    loader = BatchLoader(data, batch_size=32, shuffle=True, augment=True, seed=5)
    assert len(loader) == 4
    loader.set_epoch(2)
    first = [(x.clone(), y.clone()) for x, y in loader]
    assert first[0][0].dtype == torch.float32 and 0 <= first[0][0].min() and first[0][0].max() <= 1
    assert [y.numel() for _, y in first] == [32, 32, 32, 4]
    again = [(x, y) for x, y in loader]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader))[1], first[0][1])


def test_loader_without_shuffle_keeps_order_and_drop_last():
    data = synthetic_dataset(70)
    loader = BatchLoader(data, batch_size=32, drop_last=True)
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, data.labels[:64])

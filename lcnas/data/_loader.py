"""Mini-batches from in-memory uint8 tensors, augmented in batch, converted to float per batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ._augment import random_crop, random_hflip
from ._tensors import ImageTensors

__all__ = ["BatchLoader"]


class BatchLoader:
    """Iterates ``(images, labels)`` with images float32 in [0, 1] on ``device``.

    Shuffling and augmentation draw from a generator seeded by ``(seed, epoch)``, so epoch ``k``
    gets the same batches whether or not the run was stopped and resumed before it.

    Args:
        data: the images and labels.
        batch_size: images per batch.
        shuffle: reshuffle every epoch.
        augment: pad-4 random crop and horizontal flip (CIFAR recipe).
        drop_last: drop the last incomplete batch.
        device: where batches are delivered.
        seed: base seed of the per-epoch generator.
        channels_last: deliver batches in channels-last memory format.
    """

    def __init__(
        self,
        data: ImageTensors,
        *,
        batch_size: int,
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.seed = seed
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation the next iteration draws."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            images = self.data.images[idx].to(self.device, non_blocking=True)
            if self.augment:
                images = random_hflip(random_crop(images, padding=4, generator=gen), generator=gen)
            x = images.float().div_(255.0)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.labels[idx].to(self.device, non_blocking=True)

"""A small learnable synthetic image set for tests (no files, no downloads)."""

from __future__ import annotations

import torch

from ._tensors import ImageTensors

__all__ = ["synthetic_dataset"]


def synthetic_dataset(n: int, *, num_classes: int = 10, image_size: int = 32, seed: int = 0) -> ImageTensors:
    """``n`` noisy images whose class sets a colour and a bright quadrant, so a tiny model can learn it."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    # The class palette is fixed (not seeded) so train and test sets made with other seeds agree.
    palette = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(1234)) * 120 + 40
    images = torch.rand(n, 3, image_size, image_size, generator=gen) * 80 + palette[labels]
    half = image_size // 2
    for c in range(num_classes):
        r, q = divmod(c % 4, 2)
        images[labels == c, :, r * half : (r + 1) * half, q * half : (q + 1) * half] += 60
    return ImageTensors(images.clamp_(0, 255).to(torch.uint8), labels, tuple(f"class{c}" for c in range(num_classes)))

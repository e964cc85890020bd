"""Batched augmentation on uint8 tensors: one gather per batch instead of per-image PIL calls."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop", "random_hflip"]


def random_crop(images: torch.Tensor, *, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and take a random ``H×W`` crop per image."""
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, c, h, w + 2 * padding)
    padded = padded.gather(2, rows.to(images.device))
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, c, h, w)
    return padded.gather(3, cols.to(images.device))


def random_hflip(images: torch.Tensor, *, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    flip = (torch.rand(images.shape[0], generator=generator) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)

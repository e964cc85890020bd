"""ImageNet (or any ImageFolder tree) with the usual transforms; normalisation stays in the model."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import DataError

__all__ = ["imagenet_loader"]


def imagenet_loader(
    root: str | os.PathLike[str], *, split: str, batch_size: int, workers: int = 4, image_size: int = 224
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``root/<split>`` (class sub-folders of images), float images in [0, 1]."""
    from torchvision import datasets, transforms

    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(f"ImageNet split folder {str(folder)!r} not found: expected an ImageFolder tree root/{split}/<class>/<image>.")
    if split == "train":
        tf = transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    else:
        tf = transforms.Compose([transforms.Resize(int(image_size * 256 / 224)), transforms.CenterCrop(image_size), transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=split == "train", num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=split == "train"
    )

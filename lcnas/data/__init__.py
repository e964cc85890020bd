"""Datasets and loaders: CIFAR-10 in memory, ImageNet folders, synthetic data for tests."""

from __future__ import annotations

from ._augment import random_crop, random_hflip
from ._cifar import CIFAR10_CLASSES, find_cifar10, load_cifar10, resolve_data_root, train_val_split
from ._imagenet import imagenet_loader
from ._loader import BatchLoader
from ._splits import DataSplits, load_splits
from ._synthetic import synthetic_dataset
from ._tensors import ImageTensors

__all__ = [
    "BatchLoader",
    "CIFAR10_CLASSES",
    "DataSplits",
    "ImageTensors",
    "find_cifar10",
    "imagenet_loader",
    "load_cifar10",
    "load_splits",
    "random_crop",
    "random_hflip",
    "resolve_data_root",
    "synthetic_dataset",
    "train_val_split",
]

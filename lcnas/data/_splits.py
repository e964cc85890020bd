"""Train / validation / test splits by dataset name: the one place configs name a dataset."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ._cifar import load_cifar10, train_val_split
from ._synthetic import synthetic_dataset
from ._tensors import ImageTensors

__all__ = ["DataSplits", "load_splits", "DATASETS"]

DATASETS = ("cifar10", "synthetic")


@dataclass(frozen=True)
class DataSplits:
    """``val`` is ``None`` when the whole training set is used for training."""

    train: ImageTensors
    val: ImageTensors | None
    test: ImageTensors


def load_splits(
    dataset: str, *, data_root: str | None = None, val_size: int = 5000, split_seed: int = 0, train_subset: int | None = None
) -> DataSplits:
    """Load ``dataset`` and split off ``val_size`` training images for validation.

    ``train_subset`` keeps only the first N training images (after the split): proxy runs.
    """
    if dataset == "cifar10":
        full, test = load_cifar10(data_root, train=True), load_cifar10(data_root, train=False)
    elif dataset == "synthetic":
        full, test = synthetic_dataset(2000, seed=1), synthetic_dataset(500, seed=2)
    else:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if val_size:
        train, val = train_val_split(full, val_size=val_size, seed=split_seed)
    else:
        train, val = full, None
    if train_subset:
        train = train.head(train_subset)
    return DataSplits(train, val, test)

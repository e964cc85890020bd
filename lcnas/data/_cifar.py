"""CIFAR-10 from the standard ``cifar-10-batches-py`` layout, read into memory as uint8 tensors.

The batch files are pickles; they are read with an unpickler that only rebuilds numpy arrays,
so a tampered file cannot run code. Files are validated by shape, dtype, label range and class
counts rather than by MD5 (copies with other ``filenames`` inside are still the real data).
"""

from __future__ import annotations

import io
import os
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._env import user_cache_root
from ..errors import DataError
from ._tensors import ImageTensors

__all__ = ["CIFAR10_CLASSES", "resolve_data_root", "find_cifar10", "load_cifar10", "train_val_split"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FOLDER = "cifar-10-batches-py"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)
_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # of the official archive, not of each batch
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """``data_root`` if given, else ``$LCNAS_DATA_ROOT``, else the per-user cache folder."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("LCNAS_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return Path(user_cache_root()) / "lcnas" / "data"


def find_cifar10(data_root: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder under the resolved root; downloads it if online."""
    root = resolve_data_root(data_root)
    for candidate in (root / _FOLDER, root):
        # A folder holding any batch file is taken as the dataset; missing files are then named
        # by the loader instead of being silently re-downloaded over.
        if any((candidate / f).is_file() for f in _TRAIN_FILES + _TEST_FILES):
            return candidate
    if download and _online():
        _download(root)
        return root / _FOLDER
    raise DataError(
        f"CIFAR-10 not found under {str(root)!r} and it cannot be downloaded (offline or download disabled). "
        f"Put the official '{_FOLDER}' folder (data_batch_1..5, test_batch) at {str(root / _FOLDER)!r}, "
        "or point --data-root / LCNAS_DATA_ROOT at the folder that contains it."
    )


def load_cifar10(
    data_root: str | os.PathLike[str] | None = None, *, train: bool, download: bool = True
) -> ImageTensors:
    """The CIFAR-10 training (50,000) or test (10,000) images as uint8 ``N×3×32×32``."""
    folder = find_cifar10(data_root, download=download)
    parts = [_read_batch(folder / name) for name in (_TRAIN_FILES if train else _TEST_FILES)]
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    counts = np.bincount(labels, minlength=10)
    # The real set has 5000 (train) / 1000 (test) per class; any copy must at least be balanced.
    if not (counts == counts[0]).all() or counts[0] == 0:
        raise DataError(
            f"CIFAR-10 {'train' if train else 'test'} set in {str(folder)!r} has class counts {counts.tolist()}, "
            "expected the same count for every class (5000 train / 1000 test): the files are incomplete or "
            "not CIFAR-10; replace them with the official ones."
        )
    return ImageTensors(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), CIFAR10_CLASSES)


def train_val_split(data: ImageTensors, *, val_size: int, seed: int = 0) -> tuple[ImageTensors, ImageTensors]:
    """A reproducible, class-stratified split of ``data`` into (train, validation).

    Searches tune on the validation part; the test set is kept for final reports.
    """
    if not 0 <= val_size < len(data):
        raise ValueError(f"val_size must be in [0, {len(data)}), got {val_size}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    # Stratify: take the first val_size/num_classes of each class in a seeded order.
    per_class = val_size // data.num_classes
    labels = data.labels[order]
    val_mask = torch.zeros(len(data), dtype=torch.bool)
    for c in range(data.num_classes):
        val_mask[order[labels == c][:per_class]] = True
    extra = val_size - int(val_mask.sum())  # remainder when val_size is not a multiple of classes
    if extra:
        val_mask[order[~val_mask[order]][:extra]] = True
    idx = torch.arange(len(data))
    return data.subset(idx[~val_mask]), data.subset(idx[val_mask])


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        """Resolve only the allow-listed globals of a CIFAR batch file; refuse any other."""
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = path.read_bytes()
        batch = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"CIFAR-10 file {str(path)!r} is missing: restore the official '{_FOLDER}' folder.") from None
    except Exception as e:  # truncated, not a pickle, or foreign objects inside
        raise DataError(f"CIFAR-10 file {str(path)!r} is corrupt or not a CIFAR-10 batch ({e}): replace it with the official file.") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"CIFAR-10 file {str(path)!r} has no 'data'/'labels' entries: replace it with the official file.")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"CIFAR-10 file {str(path)!r}: 'data' must be uint8 N×3072, got {getattr(data, 'dtype', type(data))} {shape}.")
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"CIFAR-10 file {str(path)!r}: 'labels' must be {data.shape[0]} integers in [0, 9].")
    return data, labels


def _online(host: str = "www.cs.toronto.edu", timeout_s: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    root.mkdir(parents=True, exist_ok=True)
    download_and_extract_archive(_URL, download_root=str(root), md5=_ARCHIVE_MD5)

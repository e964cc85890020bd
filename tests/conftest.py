from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests share 2 cores with whatever else runs; 1 thread also makes CPU kernels deterministic.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def write_cifar_tree(root: Path, *, per_class: int = 2, seed: int = 0) -> Path:
    """A tiny balanced cifar-10-batches-py tree: 5 train batches and a test batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = np.repeat(np.arange(10), per_class)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": rng.integers(0, 256, (labels.size, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(labels.size)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return folder


@pytest.fixture
def cifar_tree(tmp_path: Path) -> Path:
    write_cifar_tree(tmp_path)
    return tmp_path

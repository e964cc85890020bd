from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from lcnas.data import load_cifar10, resolve_data_root, train_val_split
from lcnas.data import _cifar
from lcnas.errors import DataError
from tests.conftest import SHARED_CIFAR


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setattr(_cifar, "_online", lambda *a, **k: False)


def test_loads_tree_as_uint8_nchw(cifar_tree):
    train = load_cifar10(cifar_tree, train=True)
    test = load_cifar10(cifar_tree, train=False)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (20, 3, 32, 32)
    assert train.labels.dtype == torch.int64 and train.labels.bincount().tolist() == [10] * 10
    # the planes are R, G, B each row-major: pixel (c, y, x) is data[c*1024 + y*32 + x]
    raw = pickle.loads((cifar_tree / "cifar-10-batches-py" / "data_batch_1").read_bytes())[b"data"]
    assert train.images[0, 1, 2, 3] == raw[0, 1024 + 2 * 32 + 3]


def test_accepts_the_batches_folder_itself(cifar_tree):
    assert len(load_cifar10(cifar_tree / "cifar-10-batches-py", train=False)) == 20


def test_missing_root_offline_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py.*--data-root"):
        load_cifar10(tmp_path / "nowhere", train=True)


def test_missing_batch_file_is_named(cifar_tree):
    os.remove(cifar_tree / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataError, match="data_batch_3.*missing"):
        load_cifar10(cifar_tree, train=True)


def test_truncated_batch_file(cifar_tree):
    path = cifar_tree / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="test_batch.*corrupt"):
        load_cifar10(cifar_tree, train=False)


def test_pickle_with_code_is_refused_without_running_it(cifar_tree, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (cifar_tree / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="corrupt or not a CIFAR-10 batch"):
        load_cifar10(cifar_tree, train=False)
    assert not marker.exists()


def test_wrong_shape_and_labels(cifar_tree):
    path = cifar_tree / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((20, 100), np.uint8), b"labels": [0] * 20}))
    with pytest.raises(DataError, match="uint8 N×3072"):
        load_cifar10(cifar_tree, train=False)
    path.write_bytes(pickle.dumps({b"data": np.zeros((20, 3072), np.uint8), b"labels": [11] * 20}))
    with pytest.raises(DataError, match=r"integers in \[0, 9\]"):
        load_cifar10(cifar_tree, train=False)


def test_unbalanced_classes_rejected(cifar_tree):
    path = cifar_tree / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((20, 3072), np.uint8), b"labels": [0] * 11 + list(range(1, 10))}))
    with pytest.raises(DataError, match="class counts"):
        load_cifar10(cifar_tree, train=False)


def test_root_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LCNAS_DATA_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("LCNAS_DATA_ROOT")
    assert resolve_data_root(None) == tmp_path / "cache" / "lcnas" / "data"


def test_split_is_reproducible_stratified_and_disjoint(cifar_tree):
    data = load_cifar10(cifar_tree, train=True)
    train_a, val_a = train_val_split(data, val_size=30, seed=3)
    train_b, val_b = train_val_split(data, val_size=30, seed=3)
    _, val_c = train_val_split(data, val_size=30, seed=4)
    assert torch.equal(val_a.images, val_b.images) and torch.equal(train_a.labels, train_b.labels)
    assert not torch.equal(val_a.images, val_c.images)
    assert val_a.labels.bincount(minlength=10).tolist() == [3] * 10
    assert len(train_a) == 70
    flat = lambda t: {bytes(row.numpy().tobytes()) for row in t.images}  # noqa: E731
    assert not flat(train_a) & flat(val_a)


@pytest.mark.skipif(not (SHARED_CIFAR / "cifar-10-batches-py").is_dir(), reason="real CIFAR-10 not beside the checkout")
def test_real_cifar10_matches_published_reference():
    train = load_cifar10(SHARED_CIFAR, train=True)
    assert len(train) == 50_000 and train.labels.bincount().tolist() == [5000] * 10
    ref_px = [59, 43, 50, 68, 98, 119, 139, 145, 149, 149, 131, 125, 142, 144, 137, 129]
    assert train.images[0, 0, 0, :16].tolist() == ref_px
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    mean = train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4913997, 0.4821584, 0.4465309]), atol=1e-5)

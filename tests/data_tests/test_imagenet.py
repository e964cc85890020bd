from __future__ import annotations

import pytest
import torch

from lcnas.errors import ConfigError, DataError
from lcnas.train import TrainConfig, train

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def image_folder(tmp_path):
    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c, name in enumerate(("cat", "dog")):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = (torch.rand(40, 48, 3, generator=gen) * 100 + 100 * c).byte().numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path


def test_imagenet_loader_gives_unit_range_crops(image_folder):
    from lcnas.data import imagenet_loader

    loader = imagenet_loader(image_folder, split="val", batch_size=4, workers=0, image_size=32)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert loader.dataset.classes == ["cat", "dog"]


def test_missing_split_folder(tmp_path):
    from lcnas.data import imagenet_loader

    with pytest.raises(DataError, match="train.*ImageFolder"):
        imagenet_loader(tmp_path, split="train", batch_size=2)


def test_train_resnet18_on_an_image_folder(image_folder, tmp_path):
    cfg = TrainConfig(name="in", model="resnet18", dataset="imagenet", data_root=str(image_folder), image_size=32, workers=0,
                      epochs=1, batch_size=4, eval_batch_size=4, amp="none", channels_last=False, device="cpu", out_dir=str(tmp_path / "runs"))
    final = train(cfg, progress=False)
    assert 0 <= final["test_accuracy"] <= 100


def test_imagenet_needs_a_root(tmp_path):
    with pytest.raises(ConfigError, match="needs data_root"):
        train(TrainConfig(dataset="imagenet", out_dir=str(tmp_path)), progress=False)

from __future__ import annotations

import pytest
import torch

import lcnas
from lcnas._io import atomic_write
from lcnas.checkpoint import read_checkpoint, save_checkpoint
from lcnas.errors import CheckpointError


@pytest.fixture
def ckpt_path(tmp_path):
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20")
    model.train()(torch.rand(8, 3, 32, 32))  # move BN statistics off their defaults
    path = save_checkpoint(tmp_path / "m.pt", model, config={"model": "resnet20"}, metrics={"test_accuracy": 12.5})
    return path, model.eval()


def test_round_trip_gives_same_outputs_and_metadata(ckpt_path):
    path, model = ckpt_path
    loaded = lcnas.load_model(path)
    assert not loaded.training
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    ckpt = read_checkpoint(path)
    assert ckpt["metrics"] == {"test_accuracy": 12.5}
    assert ckpt["lcnas_version"] == lcnas.__version__
    assert ckpt["model"]["name"] == "resnet20"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        lcnas.load_model(tmp_path / "none.pt")


def test_truncated_file(ckpt_path):
    path, _ = ckpt_path
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        lcnas.load_model(path)


def test_garbage_file(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        lcnas.load_model(tmp_path / "g.pt")


def test_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        lcnas.load_model(tmp_path / "module.pt")


def test_bare_state_dict_gets_a_hint(tmp_path):
    torch.save(lcnas.create_model("resnet20").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="not an lcnas checkpoint.*load_state_dict"):
        lcnas.load_model(tmp_path / "sd.pt")


def test_weights_for_another_model(ckpt_path):
    path, _ = ckpt_path
    ckpt = read_checkpoint(path)
    ckpt["model"]["name"] = "resnet32"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="do not fit model 'resnet32'"):
        lcnas.load_model(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def failing(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    import os

    path = atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask

from __future__ import annotations

import json

import pytest
import torch

from lcnas.checkpoint import read_checkpoint
from lcnas.errors import ConfigError
from lcnas.train import TrainConfig, train


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(name="t", model="resnet20", dataset="synthetic", val_size=100, train_subset=256, epochs=2, batch_size=64,
                eval_batch_size=250, lr=0.05, amp="none", channels_last=False, device="cpu", threads=1, out_dir=str(tmp_path))
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_and_writes_checkpoints_and_metrics(tmp_path):
    cfg = _cfg(tmp_path, epochs=3, train_subset=1024, lr=0.1)
    final = train(cfg, progress=False)
    assert final["test_accuracy"] > 40  # synthetic classes are easy; chance is 10 %
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2, 3]
    assert metrics["final"]["test_accuracy"] == final["test_accuracy"]
    assert read_checkpoint(tmp_path / "t" / "final.pt")["metrics"]["test_accuracy"] == final["test_accuracy"]
    assert "train_state" in read_checkpoint(tmp_path / "t" / "last.pt")


def test_resumed_run_continues_exactly_where_it_stopped(tmp_path):
    straight = _cfg(tmp_path, name="straight", epochs=2)
    train(straight, progress=False)
    # Stop after epoch 1: a 1-epoch run has a different schedule, so simulate the stop by
    # training the 2-epoch config and cutting it short via the checkpoint of epoch 1.
    stopped = _cfg(tmp_path, name="stopped", epochs=2)
    _train_one_epoch_then_stop(stopped)
    assert read_checkpoint(tmp_path / "stopped" / "last.pt")["train_state"]["epoch"] == 1
    train(stopped, resume=True, progress=False)
    a = read_checkpoint(tmp_path / "straight" / "final.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "stopped" / "final.pt")["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((tmp_path / "stopped" / "metrics.json").read_text())["epochs"]
    assert [r["epoch"] for r in history] == [1, 2]


def _train_one_epoch_then_stop(cfg: TrainConfig) -> None:
    import lcnas.train._loop as loop

    real = loop.save_checkpoint

    def save_then_interrupt(path, *a, **kw):
        real(path, *a, **kw)
        if path.name == "last.pt":
            raise KeyboardInterrupt

    loop.save_checkpoint = save_then_interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    finally:
        loop.save_checkpoint = real


def test_existing_run_is_never_overwritten(tmp_path):
    cfg = _cfg(tmp_path, epochs=1, train_subset=64)
    train(cfg, progress=False)
    before = (tmp_path / "t" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a checkpoint.*--resume"):
        train(cfg, progress=False)
    assert (tmp_path / "t" / "last.pt").read_bytes() == before


def test_resume_with_changed_config_is_refused(tmp_path):
    cfg = _cfg(tmp_path, epochs=1, train_subset=64)
    train(cfg, progress=False)
    with pytest.raises(ConfigError, match=r"different config \(lr: 0.05 -> 0.2\)"):
        train(_cfg(tmp_path, epochs=1, train_subset=64, lr=0.2), resume=True, progress=False)


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_cfg(tmp_path), resume=True, progress=False)


def test_resume_accepts_a_checkpoint_whose_config_has_null_groups_and_lacks_newer_settings(tmp_path):
    # The form of checkpoints written before the groups were typed (e.g. a long static run's
    # last.pt): gate/loss stored as null, settings added later missing. Resuming must go on.
    cfg = _cfg(tmp_path, name="old", epochs=2)
    _train_one_epoch_then_stop(cfg)
    path = tmp_path / "old" / "last.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    stored = {k: v for k, v in ckpt["config"].items() if k not in ("backbone_lr", "lut")}
    ckpt["config"] = {**stored, "gate": None, "loss": None, "data_root": "elsewhere"}
    torch.save(ckpt, path)
    final = train(cfg, resume=True, progress=False)
    assert final["epochs"] == 2
    # A changed group field is named by its address.
    with pytest.raises(ConfigError, match=r"different config \(gate.hidden: 16 -> 8, gating: 'none' -> 'layer'\)"):
        train(_cfg(tmp_path, name="old", epochs=2, gating="layer", gate={"hidden": 8}), resume=True, progress=False)

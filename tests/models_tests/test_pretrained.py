from __future__ import annotations

import json
import shutil

import pytest
import torch

import lcnas
import lcnas.pretrained as pretrained
from lcnas.errors import CheckpointError


def test_shipped_resnet20_loads_verified_and_matches_its_manifest():
    manifest = pretrained.pretrained_manifest()
    assert manifest["resnet20"]["test_accuracy"] >= 91.0
    model = lcnas.create_model("resnet20", pretrained=True).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 3, 32, 32))).all()
    gated = lcnas.create_model("resnet20", gating="lc", pretrained=True)
    assert torch.equal(gated.conv1.weight, model.conv1.weight)


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    shutil.copy(pretrained.PRETRAINED_DIR / "manifest.json", tmp_path / "manifest.json")
    data = (pretrained.PRETRAINED_DIR / "resnet20_cifar10.pt").read_bytes()
    (tmp_path / "resnet20_cifar10.pt").write_bytes(data[:-10] + b"0123456789")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="does not match its manifest sha256"):
        lcnas.create_model("resnet20", pretrained=True)


def test_model_without_shipped_weights(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text(json.dumps({}))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="no pretrained weights shipped for 'resnet56'"):
        lcnas.create_model("resnet56", pretrained=True)


def test_publish_a_gated_run_and_load_it_by_name(tmp_path, monkeypatch):
    import lcnas.pretrained.__main__ as publish
    from lcnas.checkpoint import save_checkpoint

    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "manifest.json").write_text(json.dumps({}))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "ship")
    monkeypatch.setattr(publish, "PRETRAINED_DIR", tmp_path / "ship")
    run = tmp_path / "run"
    run.mkdir()
    model = lcnas.create_model("resnet20", gating="lc").eval()
    final = {"epochs": 1, "train_time_s": 1.0, "test_accuracy": 50.0, "val_accuracy": 50.0, "test_mflops_mean": 60.0, "test_mflops_p95": 70.0}
    save_checkpoint(run / "final.pt", model, config={"dataset": "cifar10", "val_size": 5000}, metrics=final)
    (run / "metrics.json").write_text(json.dumps({"final": final, "epochs": [{"images_per_s": 10.0}]}))
    assert publish.main([str(run), "--command", "lcnas train ..."]) == 2  # a gated model needs its own name
    assert publish.main([str(run), "--command", "lcnas train ...", "--name", "lcnet-test"]) == 0
    entry = pretrained.pretrained_manifest()["lcnet-test"]
    assert entry["gating"] == "lc" and entry["model"] == "resnet20" and entry["test_mflops_mean"] == 60.0
    loaded = lcnas.load_model("lcnet-test")
    assert loaded.gating == "lc" and not loaded.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    (tmp_path / "ship" / "lcnet-test.pt").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="sha256"):
        lcnas.load_model("lcnet-test")


def test_list_pretrained_names_every_shipped_file_with_its_gating():
    rows = lcnas.list_pretrained()
    names = [r.name for r in rows]
    assert names == sorted(names) and {"resnet20", "resnet32", "lcnet-resnet20-layer-kd32-t75"} <= set(names)
    by_name = {r.name: r for r in rows}
    assert by_name["resnet20"].gating == "none" and by_name["resnet20"].model == "resnet20"
    assert by_name["lcnet-resnet20-layer-kd32-t75"].gating == "layer"
    assert by_name["lcnet-resnet20-layer-kd32-t75"].model == "resnet20"
    assert all(r.test_accuracy and 0 < r.test_accuracy <= 100 for r in rows)
    assert [r.name for r in lcnas.list_pretrained("lcnet-*")] == [n for n in names if n.startswith("lcnet-")]

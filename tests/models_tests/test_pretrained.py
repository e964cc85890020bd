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

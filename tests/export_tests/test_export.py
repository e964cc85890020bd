"""TorchScript export: same outputs as eager hard execution, with real control flow."""

from __future__ import annotations

import pytest
import torch

import lcnas
from lcnas.errors import ConfigError
from lcnas.export import export_torchscript
from lcnas.models import ForcedDecisions, GateConfig


@pytest.mark.parametrize("gating, cfg", [
    ("lc", GateConfig(init_logit=0.0, hidden=8, pooling="avgmax")),
    ("layer", GateConfig(init_logit=0.0, hidden=0)),
    ("channel", GateConfig(init_logit=0.0, scaling=False, group_size=8)),
    ("none", None),
])
def test_scripted_model_equals_eager_hard_execution(gating, cfg, tmp_path):
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating=gating, gate_config=cfg, pretrained=True).eval()
    if gating != "none":  # random gates, so decisions differ per image and some blocks and channels are skipped
        for p in model.gate_parameters():
            torch.nn.init.normal_(p, std=0.5)
        model.engine.clear()
    x = torch.rand(6, 3, 32, 32)
    scripted = export_torchscript(model, tmp_path / "m.pt")
    with torch.no_grad():
        eager = torch.cat([model(x[i : i + 1]) for i in range(6)])
        assert (scripted(x) - eager).abs().max() <= 1e-4
        loaded = torch.jit.load(str(tmp_path / "m.pt"))
        assert torch.equal(loaded(x), scripted(x))
    if gating != "none":
        widths = torch.tensor([b.conv1.out_channels for b in model.blocks()])
        full = []
        with torch.no_grad():
            for i in range(6):
                model(x[i : i + 1])
                t = model.last_trace
                full.append(t.block_run.reshape(-1) & (t.channels_kept.reshape(-1) == widths))
        assert not torch.stack(full).all(), "the test needs some skipped blocks or channels"
        block_code = dict(scripted.named_modules())["blocks.0"].run.code  # skips are real branches, not multiplies by zero
        assert "if " in block_code and "index_select" in block_code


def test_bottleneck_models_are_refused():
    with pytest.raises(ConfigError, match="basic-block"):
        export_torchscript(lcnas.create_model("resnet50", gating="layer"))


def test_saved_export_replays_forced_decisions(tmp_path):
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(init_logit=0.0, hidden=8)).eval()
    blocks = model.blocks()
    run = torch.tensor([i % 2 == 0 for i in range(len(blocks))])
    keep = [torch.zeros(b.channel_gate.outputs, dtype=torch.bool) for b in blocks]  # nothing kept: group 0 runs
    x = torch.rand(2, 3, 32, 32)
    export_torchscript(model, tmp_path / "m.pt")
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        logits, ran, kept = loaded.forward_traced(x, run, keep, False)
        with model.forced(ForcedDecisions(block_run=run, channel_keep=tuple(keep))):
            eager = model(x)
    assert torch.equal(ran, run.expand(2, -1)) and torch.equal(kept, torch.where(ran, 4, 0))
    assert torch.equal(model.last_trace.channels_kept, kept)
    assert (logits - eager).abs().max() <= 1e-4

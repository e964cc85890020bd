"""The native whole-network engine counts its multiply-adds as it runs; per image they equal the one
FLOP formula walked over the trace (:func:`lcnas.cost.sample_mflops`), for static and gated CIFAR
ResNets, gate-evaluated and forced, at batch 1 and in a batch."""

from __future__ import annotations

import pytest
import torch

import lcnas
from lcnas.cost import sample_mflops, static_mflops
from lcnas.engine import compiler_available, native, native_status
from lcnas.models import ForcedDecisions, GateConfig

# The walk sums in float32 (within 1e-7 of exact here); the engine counts multiply-adds in float64.
# One gate network is 7e-6 of ResNet-20's static FLOPs, so a unit counted on one side only fails.
RTOL = 1e-6


@pytest.fixture()
def engine():
    if not compiler_available():
        pytest.skip("no C++ compiler: no native engine, so no native count to check")
    assert native() is not None, native_status()


def _native_mflops(model: torch.nn.Module) -> torch.Tensor:
    """Per image, the MFLOPs the engine's last whole-network native call counted."""
    counted = model.engine.native_mflops
    assert counted is not None, "the pass did not run on the native whole-network engine"
    return counted


def _gated(name: str, gating: str, **cfg) -> torch.nn.Module:
    """Random gates (mixed decisions) and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = lcnas.create_model(name, gating=gating, gate_config=GateConfig(init_logit=0.0, **cfg))
    for p in model.gate_parameters():
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        model.train()(torch.rand(8, 3, 32, 32))
    return model.eval()


def _forcing(model: torch.nn.Module, batch: int, seed: int, evaluate_gates: bool) -> ForcedDecisions:
    gen = torch.Generator().manual_seed(seed)
    blocks = model.blocks()
    run = torch.rand(batch, len(blocks), generator=gen) < 0.5
    keep = tuple(torch.rand(batch, b.channel_gate.outputs, generator=gen) < 0.5 if b.channel_gate is not None else None
                 for b in blocks)
    return ForcedDecisions(block_run=None if model.gating == "channel" else run,
                           channel_keep=None if model.gating == "layer" else keep, evaluate_gates=evaluate_gates)


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
@pytest.mark.parametrize("batch", [1, 4])
def test_static_count_equals_static_mflops(engine, name, batch):
    model = lcnas.create_model(name).eval()
    with torch.no_grad():
        model(torch.rand(batch, 3, 32, 32))
    counted = _native_mflops(model)
    assert counted.shape == (batch,)
    torch.testing.assert_close(counted, torch.full((batch,), static_mflops(model), dtype=counted.dtype), rtol=RTOL, atol=0)


@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
@pytest.mark.parametrize("batch", [1, 5])
def test_gated_count_equals_trace_mflops(engine, name, gating, batch):
    model = _gated(name, gating)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        model(x)
    trace = model.last_trace
    assert trace.gates_evaluated
    counted = _native_mflops(model)
    assert counted.shape == (batch,)
    torch.testing.assert_close(counted, sample_mflops(model, trace).to(counted.dtype), rtol=RTOL, atol=0)
    if gating != "channel" and name == "resnet20":  # the gates skip blocks: not the static count
        assert not bool(trace.block_run.all())


@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
@pytest.mark.parametrize("group_size,evaluate_gates", [(4, False), (8, True)])
@pytest.mark.parametrize("batch", [1, 6])
def test_forced_count_equals_trace_mflops(engine, gating, group_size, evaluate_gates, batch):
    model = _gated("resnet20", gating, group_size=group_size)
    forced = _forcing(model, batch, seed=batch + group_size, evaluate_gates=evaluate_gates)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), model.forced(forced):
        model(x)
    trace = model.last_trace
    assert trace.gates_evaluated == evaluate_gates  # forced, with the gates' cost paid or bypassed
    counted = _native_mflops(model)
    assert counted.shape == (batch,)
    torch.testing.assert_close(counted, sample_mflops(model, trace).to(counted.dtype), rtol=RTOL, atol=0)
    if batch > 1:  # each image took its own path, and was counted for it
        assert counted.unique().numel() > 1

"""Every execution path takes the same decisions (lcnas.engine._decision) on identical inputs and forcings.

One parity test: the masked reference (eval-mode ``forward`` with masks) against the batch-1
per-block Python path, the grouped batch path, the whole-network native engine at batch 1 and
batch N (the C++ ``block()``, which cannot import the Python rule and is held to it here) and the
TorchScript export, for layer, channel and lc gating on ResNet-20, each under no forcing and under
forced decisions with the gates evaluated and bypassed. Decisions (the trace's ``block_run`` and
``channels_kept``) must be equal, logits equal within the equality tests' tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import lcnas
from lcnas.engine import compiler_available, native, native_status, options, threshold_logit
from lcnas.export import export_torchscript
from lcnas.models import ForcedDecisions, GateConfig

N_IMAGES = 4
NATIVE_PATHS = ("native batch 1", "native batch N")
PATHS = ("python batch 1", "grouped batch", *NATIVE_PATHS, "exported")


# Thresholds off 0.5 (non-zero threshold logits); at 0.7 some blocks' channel gates keep no group.
GATES = GateConfig(init_logit=0.0, hidden=8, layer_threshold=0.4, channel_threshold=0.7)


def _model(gating: str) -> torch.nn.Module:
    """ResNet-20 with random gates (decisions vary per image) and non-trivial BN statistics."""
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating=gating, gate_config=GATES)
    for p in model.gate_parameters():
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        model.train()(torch.rand(8, 3, 32, 32))
    return model.eval()


def _forcings(model: torch.nn.Module) -> dict[str, ForcedDecisions | None]:
    """No forcing, per-sample forced runs and groups (a row keeping no group among them; some blocks'
    groups left to the gate) with the gates evaluated and bypassed, forced groups alone, and every
    gate bypassed."""
    gen = torch.Generator().manual_seed(3)
    blocks = model.blocks()
    run = torch.rand(N_IMAGES, len(blocks), generator=gen) < 0.6
    keep = None
    if blocks[0].channel_gate is not None:
        rows = []
        for i, b in enumerate(blocks):
            k = torch.rand(N_IMAGES, b.channel_gate.outputs, generator=gen) < 0.5
            k[0] = False  # keeps nothing: group 0 runs
            rows.append(None if i % 3 == 2 else k)
        keep = tuple(rows)
    return {
        "gates decide": None,
        "forced, gates evaluated": ForcedDecisions(block_run=run, channel_keep=keep, evaluate_gates=True),
        "forced, gates bypassed": ForcedDecisions(block_run=run, channel_keep=keep, evaluate_gates=False),
        "groups forced, gates evaluated": ForcedDecisions(channel_keep=keep, evaluate_gates=True),
        "all bypassed": ForcedDecisions(),
    }


def _row(forced: ForcedDecisions | None, s: int) -> ForcedDecisions | None:
    """Sample ``s``'s part of a per-sample forcing, for a batch-1 call."""
    if forced is None:
        return None
    keep = None if forced.channel_keep is None else tuple(None if k is None else k[s : s + 1] for k in forced.channel_keep)
    run = None if forced.block_run is None else forced.block_run[s : s + 1]
    return ForcedDecisions(block_run=run, channel_keep=keep, evaluate_gates=forced.evaluate_gates)


Result = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # logits, block_run, channels_kept


def _run(model: torch.nn.Module, x: torch.Tensor, forced: ForcedDecisions | None) -> Result:
    with torch.no_grad():
        if forced is None:
            logits = model(x)
        else:
            with model.forced(forced):
                logits = model(x)
    trace = model.last_trace
    assert trace.gates_evaluated == (forced is None or forced.evaluate_gates)
    return logits, trace.block_run, trace.channels_kept


def _per_sample(model: torch.nn.Module, x: torch.Tensor, forced: ForcedDecisions | None) -> Result:
    parts = [_run(model, x[s : s + 1], _row(forced, s)) for s in range(x.shape[0])]
    return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]


def _path(name: str, model: torch.nn.Module, scripted: torch.jit.ScriptModule) -> Callable[..., Result]:
    """A function running ``model`` on path ``name`` under a forcing."""
    def run(x: torch.Tensor, forced: ForcedDecisions | None) -> Result:
        if name == "exported":
            with torch.no_grad():
                if forced is None:
                    return scripted.forward_traced(x)
                keep = None if forced.channel_keep is None else list(forced.channel_keep)
                return scripted.forward_traced(x, forced.block_run, keep, forced.evaluate_gates)
        one = name in ("python batch 1", "native batch 1")
        with options(model, whole_network=name == "native batch 1", batch_native=name == "native batch N"):
            out = _per_sample(model, x, forced) if one else _run(model, x, forced)
            native_ran = model.engine.native_mflops is not None
        assert native_ran == (name in NATIVE_PATHS), f"{name}: the whole-network engine ran: {native_ran}"
        return out
    return run


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, torch.jit.ScriptModule]]:
    """Each gating's model and its export, built once for the module."""
    out = {}
    for gating in ("layer", "channel", "lc"):
        model = _model(gating)
        out[gating] = (model, export_torchscript(model))
    return out


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
def test_every_path_takes_the_masked_references_decisions(models, gating, path):
    if path in NATIVE_PATHS:
        if not compiler_available():
            pytest.skip("no C++ compiler: the native engine cannot be built")
        assert native() is not None, native_status()
    model, scripted = models[gating]
    x = torch.rand(N_IMAGES, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    run = _path(path, model, scripted)
    for what, forced in _forcings(model).items():
        model.execution = "mask"
        channel_logits: list[torch.Tensor] = []
        hooks = [b.channel_gate.register_forward_hook(lambda m, i, out: channel_logits.append(out[0]))
                 for b in model.blocks() if b.channel_gate is not None]
        try:
            ref_logits, ref_run, ref_kept = _run(model, x, forced)
        finally:
            model.execution = "hard"
            for h in hooks:
                h.remove()
        if what == "gates decide":  # the decisions are mixed, and the rule's fallback is exercised
            if gating != "channel":
                assert 0 < ref_run.float().mean() < 1
            if gating != "layer":
                widths = torch.tensor([b.conv1.out_channels for b in model.blocks()])
                assert (ref_run & (ref_kept < widths)).any()
                none_above = torch.stack([(z <= threshold_logit(GATES.channel_threshold)).all(1) for z in channel_logits], 1)
                assert (none_above & ref_run).any(), "no running block whose channel gate keeps no group"
        logits, ran, kept = run(x, forced)
        assert torch.equal(ran, ref_run), f"{path}, {what}: block_run differs"
        assert torch.equal(kept.long(), ref_kept), f"{path}, {what}: channels_kept differs"
        tol = 1e-4 * max(1.0, ref_logits.abs().max().item())
        assert (logits - ref_logits).abs().max() <= tol, f"{path}, {what}: logits differ"

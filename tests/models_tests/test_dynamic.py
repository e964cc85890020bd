"""LC-Net gates: hard execution equals the masked reference, all-open equals static, FLOPs from
the trace equal FlopCounterMode on the executed path."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lcnas
from lcnas.cost import sample_mflops, static_mflops
from lcnas.models import ForcedDecisions, GateConfig
from lcnas.engine import EngineOptions, NativeConv, compiler_available, native, native_status

CASES = [("resnet20", 32), ("resnet56", 32), ("resnet18", 64), ("resnet50", 64)]


def _random_gated(name: str, gating: str, **cfg) -> torch.nn.Module:
    """A gated model with random gates (so decisions vary) and non-trivial BN statistics."""
    torch.manual_seed(0)
    model = lcnas.create_model(name, gating=gating, gate_config=GateConfig(init_logit=0.0, **cfg))
    for p in model.gate_parameters():
        torch.nn.init.normal_(p, std=0.5)
    size = 32 if name in ("resnet20", "resnet56") else 64
    with torch.no_grad():
        model.train()(torch.rand(8, 3, size, size))
    return model.eval()


def _hard_and_masked(model, x):
    with torch.no_grad():
        model.execution = "hard"
        hard = model(x)
        trace_hard = model.last_trace
        model.execution = "mask"
        masked = model(x)
        trace_masked = model.last_trace
        model.execution = "hard"
    return hard, trace_hard, masked, trace_masked


def _use_path(path: str, monkeypatch, model: torch.nn.Module) -> None:
    """Run ``model``'s hard execution on one path: "network" (the whole pass in one native call
    where the model is eligible, the default), "native" (block by block from Python on the native
    batch-1 convs; batches on oneDNN) or "aten" (PyTorch's convolutions only)."""
    if path == "aten":
        monkeypatch.setenv("LCNAS_NATIVE", "0")
        return
    if not compiler_available():
        pytest.skip("no C++ compiler: only PyTorch's convolutions to test")
    assert native() is not None, native_status()
    if path == "native":
        model.engine.options = EngineOptions(whole_network=False, batch_native=False)


@pytest.fixture(params=["network", "native", "aten"])
def conv_path(request, monkeypatch):
    """Puts a model on each of hard execution's paths in turn (see :func:`_use_path`)."""
    def on_path(model: torch.nn.Module) -> torch.nn.Module:
        _use_path(request.param, monkeypatch, model)
        return model
    return on_path


@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
@pytest.mark.parametrize("name,size", CASES)
@pytest.mark.parametrize("batch,conv_path", [(1, "network"), (1, "native"), (1, "aten"), (5, "network"), (5, "aten")], indirect=["conv_path"])
def test_hard_execution_equals_masked_reference(name, size, gating, batch, conv_path):
    model = conv_path(_random_gated(name, gating))
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    hard, th, masked, tm = _hard_and_masked(model, x)
    assert torch.equal(th.block_run, tm.block_run) and torch.equal(th.channels_kept, tm.channels_kept)
    # the decisions really are mixed, so both skip paths are exercised
    if gating != "channel":
        assert 0 < th.block_run.float().mean() < 1
    assert (hard - masked).abs().max() <= 1e-4 * max(1.0, masked.abs().max().item())


def test_mixed_batch_with_per_sample_channel_sets_both_rules(monkeypatch):
    import lcnas.cost._grouping as grouping  # the rule's constant, read by lcnas.cost.grouping_is_cheaper

    model = _random_gated("resnet20", "lc", group_size=4)
    model.engine.options = EngineOptions(batch_native=False)  # the grouped batch path
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for overhead in (0.0, 1e9):  # 0: grouping always wins; huge: union always wins
        monkeypatch.setattr(grouping, "GROUP_OVERHEAD_MFLOPS", overhead)
        hard, _, masked, _ = _hard_and_masked(model, x)
        assert (hard - masked).abs().max() <= 1e-4


def test_batch_results_equal_per_sample_results():
    model = _random_gated("resnet20", "lc")
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        batched = model(x)
        run_b = model.last_trace.block_run
        single = torch.cat([model(x[i : i + 1]) for i in range(6)])
    assert (batched - single).abs().max() <= 1e-4
    assert run_b.shape == (6, 9)


@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
@pytest.mark.parametrize("name,size", CASES)
def test_all_gates_open_equals_static_backbone(name, size, gating):
    torch.manual_seed(0)
    static = lcnas.create_model(name)
    with torch.no_grad():
        static.train()(torch.rand(8, 3, size, size))
    static.eval()
    gated = lcnas.create_model(name, gating=gating)
    gated.load_backbone(static.state_dict())
    gated.eval()
    x = torch.rand(3, 3, size, size)
    with torch.no_grad():
        ref = static(x)
        for batch in (x[:1], x):
            with gated.forced(ForcedDecisions()):  # every block, every channel, gates bypassed
                out = gated(batch)
            assert (out - ref[: batch.shape[0]]).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())
            assert gated.last_trace.block_run.all()


def _flop_counter() -> FlopCounterMode:
    """FlopCounterMode with a formula for ``addmv`` (2 per MAC, as ``addmm``), which it lacks: at batch 1
    the gates' and the classifier's linear layers run as ``addmv``. Average pooling runs as ``mv``
    there and stays uncounted, as the cost walk does not count pooling."""
    def addmv_flop(self_shape, mat_shape, vec_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * mat_shape[0] * mat_shape[1]
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmv: addmv_flop})


@contextlib.contextmanager
def _native_flops(monkeypatch, path: str, model):
    """Count what native code computed too (FlopCounterMode sees only aten ops): a list whose sum
    is its MFLOPs, per-conv calls from their packed shapes and output size, a whole-network call
    from the multiply-adds it reports."""
    counted: list[float] = []
    _use_path(path, monkeypatch, model)
    if path == "network":
        forward = model.forward

        def counting_forward(x):
            out = forward(x)
            if model.engine.native_mflops is not None:
                counted.append(float(model.engine.native_mflops.sum()))
            return out

        monkeypatch.setattr(model, "forward", counting_forward)
    if path != "aten":
        call = NativeConv.__call__

        def counting(self, x, conv, **kw):
            y = call(self, x, conv, **kw)
            counted.append(conv.mflops(y.shape[2] * y.shape[3]))
            return y

        monkeypatch.setattr(NativeConv, "__call__", counting)
    yield counted


PATHS = ["network", "native", "aten"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
@pytest.mark.parametrize("name,size", CASES)
def test_trace_flops_equal_flop_counter_at_batch_1(name, size, gating, path, monkeypatch):
    model = _random_gated(name, gating)
    gen = torch.Generator().manual_seed(4)
    with _native_flops(monkeypatch, path, model) as native_mflops:
        for _ in range(3):
            native_mflops.clear()
            x = torch.rand(1, 3, size, size, generator=gen)
            with torch.no_grad(), _flop_counter() as counter:
                model(x)
            aten = counter.get_total_flops() / 1e6
            assert sample_mflops(model).item() == pytest.approx(aten + sum(native_mflops), rel=0.01)
            assert bool(native_mflops) == (path != "aten")
            # the whole-network call runs every FLOP natively: nothing reaches aten
            assert (aten == 0) == (path == "network" and name in ("resnet20", "resnet56"))


@pytest.mark.parametrize("path", PATHS)
def test_forced_random_decisions_flops_and_skip(path, monkeypatch):
    model = _random_gated("resnet56", "lc")
    gen = torch.Generator().manual_seed(5)
    blocks = model.blocks()
    run = torch.rand(len(blocks), generator=gen) < 0.5
    keep = tuple(torch.rand(b.channel_gate.outputs, generator=gen) < 0.5 for b in blocks)
    x = torch.rand(1, 3, 32, 32)
    with _native_flops(monkeypatch, path, model) as native_mflops, torch.no_grad(), \
            model.forced(ForcedDecisions(block_run=run, channel_keep=keep)), _flop_counter() as counter:
        model(x)
    trace = model.last_trace
    assert torch.equal(trace.block_run[0], run)
    assert not trace.gates_evaluated
    assert sample_mflops(model).item() == pytest.approx(counter.get_total_flops() / 1e6 + sum(native_mflops), rel=0.01)
    assert sample_mflops(model).item() < 0.6 * static_mflops(model)


def test_static_flops_match_the_literature():
    # He et al. count multiply-accumulates: ResNet-20 ~41 M, ResNet-56 ~125 M; FlopCounterMode counts 2 per MAC.
    assert static_mflops(lcnas.create_model("resnet20")) / 2 == pytest.approx(40.8, rel=0.02)
    assert static_mflops(lcnas.create_model("resnet56")) / 2 == pytest.approx(125.5, rel=0.02)


def test_threshold_knob_trades_compute():
    model = _random_gated("resnet32", "lc")
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    flops = []
    for threshold in (0.2, 0.5, 0.8):
        model.set_thresholds(layer=threshold, channel=threshold)
        with torch.no_grad():
            model(x)
        flops.append(sample_mflops(model).mean().item())
    assert flops[0] > flops[1] > flops[2]


def test_training_mode_uses_hard_decisions_and_gates_get_gradients():
    model = _random_gated("resnet20", "lc").train()
    x = torch.rand(4, 3, 32, 32)
    out = model(x)
    trace = model.last_trace
    assert trace.run_prob is not None and trace.run_prob.requires_grad
    out.square().mean().backward()
    grads = [p.grad for p in model.gate_parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # straight-through: the forward decisions are hard 0/1
    assert set(trace.block_run.unique().tolist()) <= {False, True}


def test_checkpoint_round_trip_keeps_gates_and_config(tmp_path):
    from lcnas.checkpoint import save_checkpoint

    model = _random_gated("resnet20", "lc", hidden=8, group_size=2, stages=(2, 3))
    model.set_thresholds(layer=0.6)
    save_checkpoint(tmp_path / "lc.pt", model)
    loaded = lcnas.load_model(tmp_path / "lc.pt")
    assert loaded.gate_config == model.gate_config
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)
    assert loaded.blocks()[0].layer_gate is None  # stage 1 not gated
    assert torch.equal(loaded.last_trace.block_run, model.last_trace.block_run)


def test_gate_config_validation():
    with pytest.raises(ValueError, match="pooling"):
        GateConfig(pooling="median")
    with pytest.raises(ValueError, match="group_size 3 does not divide"):
        lcnas.create_model("resnet20", gating="channel", gate_config=GateConfig(group_size=3))
    with pytest.raises(ValueError, match="stages"):
        lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(stages=(4,)))
    with pytest.raises(ValueError, match="unknown field"):
        GateConfig.from_dict({"hiden": 3})
    assert GateConfig.from_dict(GateConfig(stages=(1, 2)).to_dict()) == GateConfig(stages=(1, 2))


def test_gate_input_norm_is_folded_into_the_hard_path():
    model = _random_gated("resnet20", "lc")
    with torch.no_grad():
        for block in model.blocks():
            for gate in (block.layer_gate, block.channel_gate):
                gate.norm.running_mean.uniform_(-2, 2)
                gate.norm.running_var.uniform_(0.1, 4)
    model.eval()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for batch in (x[:1], x):
        hard, th, masked, tm = _hard_and_masked(model, batch)
        assert torch.equal(th.block_run, tm.block_run) and torch.equal(th.channels_kept, tm.channels_kept)
        assert (hard - masked).abs().max() <= 1e-4


def test_checkpoint_from_before_gate_norm_still_loads(tmp_path):
    from lcnas.checkpoint import save_checkpoint

    model = _random_gated("resnet20", "lc", norm=False)
    save_checkpoint(tmp_path / "old.pt", model)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=False)
    del ckpt["model"]["gate_config"]["norm"]  # as written by lcnas before gates had it
    torch.save(ckpt, tmp_path / "old.pt")
    loaded = lcnas.load_model(tmp_path / "old.pt")
    assert loaded.gate_config.norm is False
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_training_trace_carries_straight_through_decisions_for_rate_terms():
    model = _random_gated("resnet20", "lc", group_size=4).train()
    model(torch.rand(4, 3, 32, 32))
    decisions = model.last_trace.gate_decisions
    gates = sum((b.layer_gate is not None) + (b.channel_gate is not None) for b in model.blocks())
    assert len(decisions) == gates and all(d.shape[0] == 4 and d.requires_grad for d in decisions)
    assert all(((d.detach() - d.detach().round()).abs() < 1e-5).all() for d in decisions)  # 0/1 up to rounding
    model.eval()(torch.rand(2, 3, 32, 32))
    assert model.last_trace.gate_decisions is None


@pytest.mark.parametrize("hidden", [0, 8])
@pytest.mark.parametrize("pooling", ["avg", "max", "avgmax"])
@pytest.mark.parametrize("gating", ["layer", "channel", "lc"])
def test_batch_1_gate_path_equals_masked_reference_for_every_gate_shape(hidden, pooling, gating, conv_path):
    # Batch 1 stacks a block's gates into one first layer and pools with a matrix-vector product:
    # every gate shape must still take the masked reference's decisions and scales.
    model = conv_path(_random_gated("resnet20", gating, hidden=hidden, pooling=pooling))
    for seed in range(3):
        x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        for layout in (torch.contiguous_format, torch.channels_last):
            hard, th, masked, tm = _hard_and_masked(model, x.contiguous(memory_format=layout))
            assert torch.equal(th.block_run, tm.block_run) and torch.equal(th.channels_kept, tm.channels_kept)
            assert (hard - masked).abs().max() <= 1e-4 * max(1.0, masked.abs().max().item())


def test_pooling_as_matrix_vector_product_equals_mean_in_both_layouts():
    model = lcnas.create_model("resnet20", gating="layer").eval()
    x = torch.randn(1, 16, 8, 8)
    for t in (x, x.contiguous(memory_format=torch.channels_last), x[:, :, ::2, ::2]):
        assert torch.allclose(model.engine.pool_one("avg", t), t.mean((2, 3))[0], atol=1e-6)
        assert torch.equal(model.engine.pool_one("max", t), t.amax((2, 3))[0])


def test_the_trace_describes_the_last_forward_even_when_read_later():
    model = _random_gated("resnet20", "lc")
    nb = len(model.blocks())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        with model.forced(ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))):
            model(x)
        trace = model.last_trace  # read after the forcing ended: still the forced pass
        assert not trace.block_run.any() and trace.gates_evaluated is False
        model(x)
        assert model.last_trace.gates_evaluated is True and model.last_trace is not trace
        assert model.last_trace is model.last_trace  # built once per forward


@pytest.mark.parametrize("group_size", [1, 4, 8])
@pytest.mark.parametrize("name,size", [("resnet20", 32), ("resnet50", 64)])
def test_native_kernel_with_unaligned_channel_sets_equals_masked_reference(name, size, group_size, conv_path):
    # Kept widths that are not multiples of the kernel's 8-float vectors are zero-padded between
    # a block's convs; the channel scales are padded to match. Forced sets make every width occur.
    model = conv_path(_random_gated(name, "lc", group_size=group_size))
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        keep = tuple(torch.rand(b.channel_gate.outputs, generator=gen) < 0.6 for b in model.blocks())
        x = torch.rand(1, 3, size, size, generator=gen)
        with model.forced(ForcedDecisions(channel_keep=keep, evaluate_gates=True)):
            hard, th, masked, tm = _hard_and_masked(model, x)
        assert torch.equal(th.channels_kept, tm.channels_kept)
        assert (hard - masked).abs().max() <= 1e-4 * max(1.0, masked.abs().max().item())

"""The native batch-1 convolution: equals PyTorch's, fuses the block epilogue, builds once into the
cache, and falls back to PyTorch (with one warning) when it cannot be built."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
import torch.nn.functional as F

import lcnas
from lcnas.cost import sample_mflops
from lcnas.engine import _native
from lcnas.models import ForcedDecisions, GateConfig
from lcnas.engine import EngineOptions, NativeConv, compiler_available, native, native_status, options

CL = torch.channels_last


@pytest.fixture()
def kernel():
    if not compiler_available():
        pytest.skip("no C++ compiler: the executor runs PyTorch's convolutions (tested on that path)")
    lib = native()
    assert lib is not None, native_status()  # with a compiler, the build must work
    return lib


@pytest.mark.parametrize("cin,cout,size,k,stride,pad", [
    (3, 16, 32, 3, 1, 1), (16, 8, 32, 3, 1, 1), (16, 12, 32, 3, 2, 1), (32, 64, 16, 1, 2, 0),
    (64, 5, 8, 3, 1, 1), (3, 64, 33, 7, 2, 3), (20, 24, 7, 3, 1, 1), (16, 4, 32, 3, 1, 1), (16, 28, 9, 3, 2, 1),
    # row remainders of each tile width: narrow 6- and 3-pixel tiles, with and without edge
    # columns; few-input 12/8/4/1-pixel tiles
    (16, 4, 29, 3, 1, 1), (16, 8, 27, 3, 1, 1), (16, 4, 29, 3, 1, 0), (16, 8, 26, 3, 2, 1), (4, 16, 27, 3, 1, 1),
    (8, 32, 29, 3, 1, 1),
])
def test_conv_equals_pytorch(kernel, cin, cout, size, k, stride, pad):
    gen = torch.Generator().manual_seed(cin + cout)
    x = torch.randn(1, cin, size, size, generator=gen).contiguous(memory_format=CL)
    w, b = torch.randn(cout, cin, k, k, generator=gen), torch.randn(cout, generator=gen)
    y = kernel(x, kernel.pack(w, b, stride, pad))
    ref = F.conv2d(x, w, b, stride, pad)
    assert y.shape[1] == -(-cout // 4) * 4 and y.is_contiguous(memory_format=CL)
    assert torch.allclose(y[:, :cout], ref, atol=1e-4, rtol=1e-4)
    assert not y[:, cout:].any()  # padded outputs are exactly zero, so the next conv may read them


def test_fused_epilogue_and_padded_input(kernel):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 8, 8, generator=gen).contiguous(memory_format=CL)
    w1, b1 = torch.randn(12, 16, 3, 3, generator=gen), torch.randn(12, generator=gen)
    w2, b2 = torch.randn(16, 12, 3, 3, generator=gen), torch.randn(16, generator=gen)
    scale = torch.rand(16, generator=gen) + 0.5  # padded to 16 for 12 real channels
    res = torch.randn(1, 16, 8, 8, generator=gen).contiguous(memory_format=CL)
    c1 = kernel.pack(w1, b1, 1, 1)
    c2 = kernel.pack(w2, b2, 1, 1, in_channels=c1.padded_out)
    h = kernel(x, c1, relu=True, channel_scale=scale)
    y = kernel(h, c2, alpha=0.7, residual=res, relu=True)
    h_ref = F.conv2d(x, w1, b1, 1, 1).relu() * scale[:12, None, None]
    y_ref = (res + 0.7 * F.conv2d(h_ref, w2, b2, 1, 1)).relu()
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)
    assert c2.in_channels == 12 and c2.mflops(64) == pytest.approx(2 * 9 * 12 * 16 * 64 / 1e6)


@pytest.mark.parametrize("cin,cout,size,stride", [
    (16, 8, 32, 1), (16, 4, 9, 2), (32, 8, 16, 2), (64, 3, 8, 1), (16, 12, 10, 1),  # narrow outputs
    (4, 16, 32, 1), (8, 32, 9, 1), (4, 16, 9, 2),  # few inputs
    (16, 16, 32, 1), (32, 32, 16, 1), (16, 64, 8, 1), (16, 32, 9, 2), (12, 16, 9, 1), (20, 32, 7, 2), (28, 16, 5, 1),  # ≤ 32 inputs, outputs in 16s
    (6, 16, 9, 1), (36, 16, 6, 1),  # outputs in 16s, inputs the bordered kernel does not take
])
def test_specialised_kernels_with_the_fused_epilogue(kernel, cin, cout, size, stride):
    # Up to 12 outputs take the input-channel-vectorised kernel (transposed weights, reduced
    # accumulators), 3 or 4-32 inputs in 4s with outputs in 16s the bordered one-loop-per-kernel-
    # row kernel (other input counts: the outputs-vectorised kernel): same results as PyTorch,
    # epilogue included, in any thread count.
    gen = torch.Generator().manual_seed(cin * cout + stride)
    x = torch.randn(1, cin, size, size, generator=gen).contiguous(memory_format=CL)
    w, b = torch.randn(cout, cin, 3, 3, generator=gen), torch.randn(cout, generator=gen)
    conv = kernel.pack(w, b, stride, 1)
    ho = (size - 1) // stride + 1
    res = torch.randn(1, 8, ho, ho, generator=gen).contiguous(memory_format=CL)  # windows fall on 8s
    scale = torch.rand(conv.padded_out, generator=gen) + 0.5
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(kernel(x, conv, alpha=0.6, residual=res, relu=True, channel_scale=scale))
    finally:
        torch.set_num_threads(before)
    ref = 0.6 * F.conv2d(x, w, b, stride, 1)
    ref[:, : min(8, cout)] += res[:, : min(8, cout)]
    ref = ref.relu() * scale[:cout, None, None]
    assert torch.allclose(outs[0][:, :cout], ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(outs[0], outs[1])


def test_random_shapes_equal_pytorch_on_every_kernel(kernel):
    # Seeded random shapes across the three kernels' dispatch (outputs 4-40, inputs 3-40 incl. the
    # small-input widths 3/4/8, maps 1-37 wide, 1×1 / 3×3 / 5×5, stride 1-2, padding 0-2), with the
    # shortcut window and ReLU on: every tile width and row remainder, interior and edge columns.
    gen = torch.Generator().manual_seed(20261201)
    for _ in range(40):
        cin = int(torch.tensor([3, 4, 8, 12, 16, 24, 32, 40])[torch.randint(0, 8, (1,), generator=gen)])
        cout = 4 * int(torch.randint(1, 11, (1,), generator=gen))
        k = int(torch.tensor([1, 3, 5])[torch.randint(0, 3, (1,), generator=gen)])
        stride, pad = int(torch.randint(1, 3, (1,), generator=gen)), int(torch.randint(0, 3, (1,), generator=gen))
        size = int(torch.randint(max(1, k - 2 * pad), 38, (1,), generator=gen))
        x = torch.randn(1, cin, size, size, generator=gen).contiguous(memory_format=CL)
        w, b = torch.randn(cout, cin, k, k, generator=gen), torch.randn(cout, generator=gen)
        ref = F.conv2d(x, w, b, stride, pad)
        res = torch.randn(1, 8 if cout >= 8 else 0, *ref.shape[2:], generator=gen).contiguous(memory_format=CL)
        y = kernel(x, kernel.pack(w, b, stride, pad), residual=res if cout >= 8 else None, relu=True)
        if cout >= 8:
            ref[:, :8] += res
        shape = (cin, cout, size, k, stride, pad)
        assert torch.allclose(y[:, :cout], ref.relu(), atol=1e-4, rtol=1e-4), shape


def test_sixteen_float_vectors_equal_pytorch(kernel):
    # Widths of 16n and 16n + 8: where AVX-512 is there these take 16-float vectors with an 8-float
    # tail (elsewhere the 8-float kernels), in the outputs kernel (inputs 36-64) and the few-input
    # kernel (inputs 3-32), and narrow widths; channel scale on, with shortcut windows (offset,
    # channels) that cover a vector, none, or half of one ("option A" 16 -> 32: channels 8-23).
    gen = torch.Generator().manual_seed(16)
    for cin, cout, size, stride, window in [
            (64, 64, 8, 1, (0, 64)), (36, 48, 9, 1, (16, 16)), (64, 56, 8, 1, (8, 40)), (40, 24, 11, 2, (8, 8)),
            (64, 40, 8, 1, None), (16, 16, 32, 1, (0, 16)), (32, 32, 16, 1, (8, 16)), (12, 64, 8, 1, (16, 32)),
            (3, 16, 31, 1, None), (32, 64, 17, 2, (24, 16)), (32, 32, 16, 1, (16, 8)),
            # narrow widths (4-12 outputs; with AVX-512 4 inputs x 4 outputs per FMA, 4 pixels per epilogue)
            (16, 4, 32, 1, None), (16, 4, 30, 2, None), (32, 8, 16, 1, (0, 8)), (64, 12, 8, 1, None), (24, 8, 13, 1, None)]:
        x = torch.randn(1, cin, size, size, generator=gen).contiguous(memory_format=CL)
        w, b = torch.randn(cout, cin, 3, 3, generator=gen), torch.randn(cout, generator=gen)
        ref = F.conv2d(x, w, b, stride, 1) * 0.5
        scale = torch.rand(cout, generator=gen) + 0.5
        res, offset = None, 0
        if window is not None:
            offset, channels = window
            res = torch.randn(1, channels, *ref.shape[2:], generator=gen).contiguous(memory_format=CL)
            ref[:, offset:offset + channels] += res
        y = kernel(x, kernel.pack(w, b, stride, 1), alpha=0.5, residual=res, residual_offset=offset, relu=True,
                   channel_scale=scale)
        ref = ref.relu() * scale[:, None, None]
        assert torch.allclose(y[:, :cout], ref, atol=1e-4, rtol=1e-4), (cin, cout, size, stride, window)


@pytest.mark.parametrize("height,width,layout,relu", [(32, 32, "nchw", True), (31, 32, "nhwc", False), (16, 48, "strided", True),
                                                      (1, 16, "nchw", True)])
def test_stem_kernel_equals_pytorch_and_the_thread_count_changes_nothing(kernel, height, width, layout, relu):
    # 3 inputs, 3x3, 16 outputs, rows a multiple of 16 wide: with AVX-512 the pixel-vectorised stem
    # kernel (rows in pairs, a last odd row alone), the border the per-channel pad value of a folded
    # input normalisation; any input layout.
    gen = torch.Generator().manual_seed(height)
    x = torch.randn(1, 3, height, 2 * width if layout == "strided" else width, generator=gen)
    x = x[..., ::2] if layout == "strided" else x.contiguous(memory_format=CL) if layout == "nhwc" else x
    w, b, pad_value = torch.randn(16, 3, 3, 3, generator=gen), torch.randn(16, generator=gen), torch.randn(3, generator=gen)
    shift = pad_value[None, :, None, None]
    ref = F.conv2d(F.pad(x - shift, (1, 1, 1, 1)) + shift, w, b)
    ref = ref.relu() if relu else ref
    conv = kernel.pack(w, b, 1, 1, pad_value=pad_value)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernel(x, conv, relu=relu)
        torch.set_num_threads(2)
        two = kernel(x, conv, relu=relu)
    finally:
        torch.set_num_threads(before)
    assert torch.allclose(one, ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(one, two)


def test_results_do_not_depend_on_the_thread_count(kernel):
    x = torch.randn(1, 32, 16, 16).contiguous(memory_format=CL)
    conv = kernel.pack(torch.randn(32, 32, 3, 3), torch.randn(32), 1, 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernel(x, conv)
        torch.set_num_threads(2)
        two = kernel(x, conv)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_kept_widths_follow_one_rule_in_python_and_the_engine(kernel):
    # The per-block path packs conv1 to _native.kept_width(k) outputs, the network engine to its own
    # kept_width(k): the latency tables time the engine, so the two must agree.
    widths = [_native.kept_width(k) for k in range(1, 129)]
    assert widths == [kernel.kept_width(k) for k in range(1, 129)]
    assert widths[:16] == [4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 16, 16, 16, 16]
    assert [_native.kept_width(k) for k in (20, 28, 44, 60, 64)] == [24, 32, 48, 64, 64]
    w, b = torch.randn(28, 16, 3, 3), torch.randn(28)
    assert kernel.pack(w, b, 1, 1, width=32).padded_out == 32
    with pytest.raises(ValueError, match="output width 30"):
        kernel.pack(w, b, 1, 1, width=30)


def test_kernel_rejects_arguments_it_cannot_run(kernel):
    # Direct calls of the C entry point: zero outputs, negative padding, a kernel larger than the
    # padded image, a zero stride are refused (return 1) instead of read or written out of bounds.
    x, w, b, y = (torch.zeros(1024) for _ in range(4))

    def call(h=4, cin=8, k=3, stride=1, pad=1, kp=8):
        return kernel._fn(x.data_ptr(), h, h, cin, h * cin, cin, 1, None, k, stride, pad, w.data_ptr(), b.data_ptr(),
                          kp, 1.0, None, 0, 0, 0, 0, 0, None, y.data_ptr(), 1)
    assert call() == 0
    assert call(kp=0) == 1 and call(pad=-1) == 1 and call(h=1, pad=0) == 1 and call(stride=0) == 1


def test_wrong_input_width_is_one_clear_error(kernel):
    conv = kernel.pack(torch.randn(8, 16, 3, 3), torch.randn(8), 1, 1)
    with pytest.raises(ValueError, match="16"):
        kernel(torch.randn(1, 4, 8, 8).contiguous(memory_format=CL), conv)


def test_built_once_into_the_cache(kernel, monkeypatch, tmp_path):
    monkeypatch.setenv("LCNAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_native, "_state", {})
    lib = native()
    assert lib is not None and tmp_path in lib.path.parents
    built = sorted(tmp_path.rglob("*.so"))
    assert built == [lib.path]  # no temporary left behind
    monkeypatch.setattr(_native, "_state", {})
    mtime = lib.path.stat().st_mtime_ns
    assert native().path == lib.path and lib.path.stat().st_mtime_ns == mtime


def test_no_compiler_falls_back_to_pytorch_with_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("LCNAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(_native, "_state", {})
    with pytest.warns(RuntimeWarning, match="native kernel unavailable"):
        assert native() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not per call
        assert native() is None
        assert "no-such-compiler" in native_status()
        model = lcnas.create_model("resnet20", gating="lc").eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("LCNAS_NATIVE", "0")
    assert native() is None
    assert "LCNAS_NATIVE=0" in native_status()


def test_environment_switch_is_read_on_every_call(kernel, monkeypatch):
    # The batch-1 path reads LCNAS_NATIVE from os.environ's backing dict (no KeyError raised per
    # call); setting, changing and removing it between calls still switches the engine each time.
    model = lcnas.create_model("resnet20", gating="lc").eval()
    x = torch.rand(1, 3, 32, 32)
    engines = []
    with torch.no_grad():
        for value in (None, "0", " Off ", "1", None, "false"):
            if value is None:
                monkeypatch.delenv("LCNAS_NATIVE", raising=False)
            else:
                monkeypatch.setenv("LCNAS_NATIVE", value)
            model(x)
            engines.append(model.engine.native_mflops is not None)
    assert engines == [True, False, False, True, True, False]


def test_batch_1_forcing_cache_follows_the_forcing_not_its_id(kernel):
    # Arrays cached under id(forcing) are remade when that id now names another forcing (the
    # first one freed and its id reused), never handed to it.
    model = _gated("resnet20")
    nb = len(model.blocks())
    first = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))
    second = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool))
    hard = model.engine
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))  # packs the network
    groups = hard.native_network((32, 32)).groups
    hard._forced_one[id(second)] = (first, hard._forced_arrays_one(first, groups))
    run = hard._forced_arrays_one(second, groups)[3][0]
    assert torch.equal(run, torch.ones(1, nb, dtype=torch.int8))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), model.forced(second):
        model(x)
    assert bool(model.last_trace.block_run.all())


def test_per_block_path_uses_the_kernel_at_batch_1_only(kernel, monkeypatch):
    calls = []
    call = NativeConv.__call__
    monkeypatch.setattr(NativeConv, "__call__", lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    model = lcnas.create_model("resnet20", gating="layer").eval()
    model.engine.options = EngineOptions(whole_network=False, batch_native=False)
    all_on = ForcedDecisions(block_run=torch.ones(len(model.blocks()), dtype=torch.bool))
    with torch.no_grad(), model.forced(all_on):
        model(torch.rand(1, 3, 32, 32))
        assert len(calls) == 19  # stem + 9 blocks × 2 convs
        model(torch.rand(2, 3, 32, 32))
        assert len(calls) == 19


def _gated(name: str, **cfg) -> torch.nn.Module:
    """A CIFAR LC-Net with random gates (mixed decisions) and non-trivial BN statistics."""
    torch.manual_seed(0)
    model = lcnas.create_model(name, gating="lc", gate_config=GateConfig(init_logit=0.0, **cfg))
    for p in model.gate_parameters():
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        model.train()(torch.rand(8, 3, 32, 32))
    return model.eval()


def test_whole_network_in_one_native_call_where_eligible(kernel, monkeypatch):
    # CIFAR ResNets run the whole pass in one call (no per-conv kernel call, no aten conv);
    # ImageNet ResNets (max-pooled stem, bottlenecks, conv shortcuts) keep the per-block path.
    model = _gated("resnet20")
    calls = []
    call = NativeConv.__call__
    monkeypatch.setattr(NativeConv, "__call__", lambda self, *a, **k: calls.append(1) or call(self, *a, **k))
    monkeypatch.setattr(torch.nn.functional, "conv2d", None)  # any aten conv would fail loudly
    with torch.no_grad():
        for batch in (1, 4):
            model(torch.rand(batch, 3, 32, 32))
            assert model.engine.native_mflops is not None and model.engine.native_mflops.shape == (batch,)
    assert calls == []
    monkeypatch.undo()
    big = lcnas.create_model("resnet18", gating="layer").eval()
    with torch.no_grad():
        big(torch.rand(1, 3, 64, 64))
    assert big.engine.native_mflops is None


def test_native_batch_takes_each_samples_own_forced_path(kernel):
    model = _gated("resnet20")
    blocks = model.blocks()
    gen = torch.Generator().manual_seed(9)
    run = torch.rand(6, len(blocks), generator=gen) < 0.5
    keep = tuple(torch.rand(6, b.channel_gate.outputs, generator=gen) < 0.5 for b in blocks)
    x = torch.rand(6, 3, 32, 32, generator=gen)
    forced = ForcedDecisions(block_run=run, channel_keep=keep)
    with torch.no_grad():
        for layout in (torch.contiguous_format, CL):
            with model.forced(forced):
                hard = model(x.contiguous(memory_format=layout))
                trace = model.last_trace
                model.execution = "mask"
                masked = model(x)
                model.execution = "hard"
            assert torch.equal(trace.block_run, run)
            expected = torch.stack([torch.where(run[:, i], k.sum(1) * 4 + (~k.any(1)) * 4, 0) for i, k in enumerate(keep)], 1)
            assert torch.equal(trace.channels_kept, expected)
            assert (hard - masked).abs().max() <= 1e-4
            assert torch.allclose(model.engine.native_mflops.float(), sample_mflops(model, trace), rtol=1e-5)


def test_native_batch_does_not_depend_on_the_thread_count(kernel):
    model = _gated("resnet20")
    x = torch.rand(5, 3, 32, 32)
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs.append(model(x))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize(("name", "pooling"), [("resnet20", "avg"), ("resnet32", "avg"), ("resnet20", "max"), ("resnet20", "avgmax")])
def test_batch_1_team_of_threads_equals_one_thread(kernel, name, pooling):
    # On several threads a batch-1 pass runs as one team (every thread the whole pass, each conv's
    # rows split, shared buffers): gates evaluated (skips, kept sets, scales, skipped downsampling
    # blocks) and forced decisions give bit-identical logits, traces and FLOPs on 1 and 2 threads,
    # and the packed network's single-block call matches too. Three threads (over this machine's
    # cores or not) split rows unevenly (32 as 10 / 11 / 11), so the narrow kernel's P-row edge
    # groups, counted from each band's first row, end short of P inside a band, and each thread
    # pools a different number of rows for the gates and the head (summed row by row on any count).
    model = _gated(name, pooling=pooling)
    nb = len(model.blocks())
    gen = torch.Generator().manual_seed(5)
    xs = torch.rand(6, 3, 32, 32, generator=gen)
    forced = [ForcedDecisions(block_run=torch.rand(nb, generator=gen) < 0.6,
                              channel_keep=tuple(torch.rand(1, b.channel_gate.outputs, generator=gen) < 0.5 for b in model.blocks()))
              for _ in range(3)]
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            out = []
            with torch.no_grad():
                for i in range(6):
                    ctx = model.forced(forced[i % 3]) if i >= 3 else contextlib.nullcontext()
                    with ctx:
                        logits = model(xs[i : i + 1])
                    trace = model.last_trace
                    out.append((logits, trace.block_run, trace.channels_kept, model.engine.native_mflops))
                net = model.engine.native_network((32, 32))
                x4 = torch.rand(1, 16, 32, 32, generator=torch.Generator().manual_seed(1))
                out.append(net.block(1, x4, None, True))
            runs.append(out)
    finally:
        torch.set_num_threads(before)
    assert any(not bool(t[1].all()) for t in runs[0][:6])  # some blocks skipped by the gates or the forcing
    for other in runs[1:]:
        for one, two in zip(runs[0], other):
            for a, b in zip(one, two):
                assert torch.equal(a, b)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_block_alone_runs_the_whole_network_engines_code(kernel, batch):
    # The latency tables time blocks through executor.block: on the whole-network engine that is
    # the packed network's own block code, which must equal the per-block path's result.
    model = _gated("resnet20")
    ex = model.engine
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
        h = w = 32
        for i, block in enumerate(model.blocks()):
            x = torch.rand(batch, block.conv1.in_channels, h, w, generator=gen).contiguous(memory_format=CL)
            run = torch.rand(batch, len(model.blocks()), generator=gen) < 0.5
            keep = tuple(torch.rand(batch, b.channel_gate.outputs, generator=gen) < 0.5 for b in model.blocks())
            for forced in (ForcedDecisions(block_run=run, channel_keep=keep), ForcedDecisions(evaluate_gates=True), None):
                outs = []
                for whole in (True, False):
                    with options(model, whole_network=whole, batch_native=whole), \
                            model.forced(forced) if forced is not None else contextlib.nullcontext():
                        outs.append(ex.block(i, block, x.clone()))
                (y_net, run_net, kept_net), (y_py, run_py, kept_py) = outs
                assert (y_net - y_py).abs().max() <= 1e-4
                if batch == 1:
                    assert (run_net, kept_net) == (run_py, kept_py) and type(run_net) is bool
                else:
                    assert torch.equal(run_net, run_py) and torch.equal(kept_net, kept_py)
            h, w = (h - 1) // block.stride + 1, (w - 1) // block.stride + 1


def test_cached_channel_set_weights_follow_new_weights(kernel):
    # Gathered weights of a kept channel set are cached under the packing's id: a repeated set
    # hits the cache, and new weights (a new packing) never read the old ones.
    model = _gated("resnet20")
    other = _gated("resnet20")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    keep = tuple(torch.arange(b.channel_gate.outputs) % 2 == 0 for b in model.blocks())
    forced = ForcedDecisions(channel_keep=keep)
    x = torch.rand(1, 3, 32, 32)

    def hard_and_masked():
        with torch.no_grad(), model.forced(forced):
            hard = model(x)
            model.execution = "mask"
            masked = model(x)
            model.execution = "hard"
        return hard, masked

    first, masked = hard_and_masked()
    again, _ = hard_and_masked()
    assert torch.equal(first, again) and (first - masked).abs().max() <= 1e-4
    model.load_state_dict(other.state_dict())
    new, new_masked = hard_and_masked()
    assert (new - new_masked).abs().max() <= 1e-4 and (new - first).abs().max() > 1e-3


def test_forced_rows_that_fit_no_batch_are_one_clear_error(kernel):
    model = _gated("resnet20")
    forced = ForcedDecisions(block_run=torch.ones(3, len(model.blocks()), dtype=torch.bool))
    with torch.no_grad(), model.forced(forced), pytest.raises(ValueError, match="3 rows for a batch of 5"):
        model(torch.rand(5, 3, 32, 32))
    keep = [None] * len(model.blocks())
    keep[0] = torch.ones(3, dtype=torch.bool)  # block 0 has 4 groups of 4
    with pytest.raises(ValueError, match=r"channel_keep\[0\] has shape \(3,\); expected \(4,\)"):  # refused as it is imposed
        model.forced(ForcedDecisions(channel_keep=tuple(keep)))


def test_option_a_shortcut_read_in_place_and_materialised(kernel):
    # A downsampling block's shortcut (every 2nd pixel, channels placed at an offset among zeros)
    # is read by the epilogue without a copy; a skipped block materialises it.
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(1, 16, 8, 8, generator=gen).contiguous(memory_format=CL)
    shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))
    h = torch.randn(1, 32, 4, 4, generator=gen).contiguous(memory_format=CL)
    conv = kernel.pack(torch.randn(32, 32, 3, 3, generator=gen), torch.randn(32, generator=gen), 1, 1)
    y = kernel(h, conv, residual=x, residual_stride=2, residual_offset=8, relu=True)
    assert torch.allclose(y, (F.conv2d(h, conv.weight.permute(3, 2, 0, 1), conv.bias, 1, 1) + shortcut).relu(), atol=1e-4)
    assert torch.equal(kernel.pad_subsample(x, 2, 8, 32), shortcut)


def test_out_of_image_taps_read_the_pad_value_in_any_input_layout(kernel):
    # The stem folds (x - mean) / std into its weights; its zero padding of the normalised input
    # is then padding the raw input with the mean.
    gen = torch.Generator().manual_seed(4)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    w, b = torch.randn(16, 3, 3, 3, generator=gen), torch.randn(16, generator=gen)
    x = torch.rand(1, 3, 32, 32, generator=gen)
    ref = F.conv2d((x - mean[:, None, None]) / std[:, None, None], w, b, 1, 1)
    w_fold = w / std[:, None, None]
    conv = kernel.pack(w_fold, b - (w_fold * mean[:, None, None]).sum((1, 2, 3)), 1, 1, pad_value=mean)
    for layout in (torch.contiguous_format, CL):
        assert torch.allclose(kernel(x.contiguous(memory_format=layout), conv), ref, atol=1e-4)


def test_engine_options_are_per_model_and_restored(kernel):
    # Options belong to one model's engine: another model keeps the defaults, and the context
    # manager puts the previous options back, also when the block raises.
    a, b = _gated("resnet20"), _gated("resnet20")
    assert isinstance(a.engine, lcnas.engine.Engine) and a.engine.options == EngineOptions()
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(RuntimeError), torch.no_grad():
        with options(a, whole_network=False) as opts:
            assert opts == EngineOptions(whole_network=False) and a.engine.options is opts
            a(x)
            b(x)
            assert a.engine.native_mflops is None and b.engine.native_mflops is not None
            raise RuntimeError("leave the block")
    assert a.engine.options == EngineOptions()
    with pytest.raises(AttributeError):
        a.engine.options.whole_network = False  # frozen: set a new EngineOptions instead

"""A whole forward pass of a gated CIFAR ResNet in one native call (``_native_net.cpp``).

The per-conv native path still pays Python's fixed cost for every gate step and kernel call, and
at batch 1 that cost, not arithmetic, is what a gate costs. Here the executor packs the network
once (BN-folded convs in the kernel's layout, each block's gates as one stacked first layer plus
heads), and one call runs the stem, every block's gates and decisions (the same rules as
:class:`~lcnas.engine._executor.HardExecutor`'s batch-1 path), only the kept blocks and channels,
and the head. It returns the logits, the trace (ran, kept channels per block) and the
multiply-adds it computed. A batch runs one image per thread, each on its own path.

Eligible: basic blocks with identity or "option A" shortcuts, a 3×3 stem without max-pooling, an
average-pooled linear head, gates of at most two linear layers, widths the kernel writes unpadded
(multiples of 8). Anything else keeps the per-conv path.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import torch
from torch import nn

from ._native import NativeConv, packable, window_ok
from ..models._resnet import BasicBlock, PadShortcut

__all__ = ["NativeNet", "build_native_net"]

_P, _I, _D = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
_POOL = {"avg": 0, "max": 1, "avgmax": 2}
_MAX_WIDTH = 4096  # the C side's per-block arrays
_ids = itertools.count(1)  # one per packing: the C side caches gathered weights under it


class _Head(ctypes.Structure):
    _fields_ = [("lo", _I), ("hi", _I), ("w2", _P), ("b2", _P), ("out", _I)]


class _Block(ctypes.Structure):
    _fields_ = [("cin", _I), ("cmid", _I), ("cout", _I), ("h", _I), ("w", _I), ("stride", _I),
                ("w1", _P), ("b1", _P), ("w2", _P), ("b2", _P), ("pad_stride", _I), ("pad_lo", _I),
                ("pool", _I), ("feat", _I), ("rows", _I), ("gw", _P), ("gb", _P),
                ("layer", _Head), ("channel", _Head), ("groups", _I), ("gsize", _I), ("scaling", _I),
                ("run_logit", _D), ("keep_logit", _D)]


class _Net(ctypes.Structure):
    _fields_ = [("stem_w", _P), ("stem_b", _P), ("stem_padv", _P), ("cin", _I), ("h", _I), ("w", _I),
                ("stem_cout", _I), ("stem_stride", _I), ("stem_pad", _I), ("nblocks", _I), ("blocks", _P),
                ("fc_w", _P), ("fc_b", _P), ("classes", _I), ("feat", _I), ("id", ctypes.c_ulonglong)]


class NativeNet:
    """One packed network for one input size; ``__call__`` runs a batch (one image per thread) or one image."""

    def __init__(self, lib: NativeConv, net: _Net, blocks: ctypes.Array, keep_alive: list[torch.Tensor], classes: int) -> None:
        self._lib, self._net, self._blocks, self._keep_alive = lib, net, blocks, keep_alive
        self.nblocks = len(blocks)
        self.groups = [b.groups for b in blocks]
        self.classes = classes
        # Batch 1's trace buffers: ctypes arrays, reused, read out with bytes() (a torch op on a
        # batch-1 call costs more than its microbenchmark: torch's state is cold after a pass).
        self._ran1, self._kept1 = (ctypes.c_uint8 * self.nblocks)(), (ctypes.c_int32 * self.nblocks)()
        self._macs1 = torch.zeros(1, dtype=torch.float64)
        self._one_ptrs = (ctypes.addressof(self._ran1), ctypes.addressof(self._kept1), self._macs1.data_ptr())
        self._logits1 = torch.empty(1, classes, dtype=torch.float32)  # the shape and dtype of a batch-1 call's logits
        self._net_p = ctypes.addressof(net)

    def _outputs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.zeros(n, self.nblocks, dtype=torch.uint8), torch.zeros(n, self.nblocks, dtype=torch.int32),
                torch.zeros(n, dtype=torch.float64))

    def __call__(self, x: torch.Tensor, forced: tuple | None, eval_gates: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits ``N×classes``, ran ``N×B`` uint8, kept channels ``N×B`` int32, multiply-adds
        computed ``N`` float64) for ``N×C×H×W`` float32 images; ``forced`` from :func:`forced_arrays` or None."""
        n = x.shape[0]
        logits = torch.empty(n, self.classes, dtype=torch.float32)
        ran, kept, macs = self._outputs(n)
        self._run(x, forced, eval_gates, logits, (ran.data_ptr(), kept.data_ptr(), macs.data_ptr()))
        return logits, ran, kept, macs

    def one(self, x: torch.Tensor, forced: tuple | None, eval_gates: bool) -> tuple[torch.Tensor, bytes, bytes, torch.Tensor]:
        """One image: (logits ``1×classes``, ran as B bytes, kept channels as B native int32s, the
        multiply-adds ``1`` float64, a buffer the next call reuses)."""
        # Every Python-side step of a batch-1 call runs on caches the pass has just flushed
        # (~0.5 µs per torch attribute read): one allocation, one stride read, fixed pointers.
        logits = torch.empty_like(self._logits1)
        xs_n, xs_c, xs_h, xs_w = x.stride()
        run_p, keep_p, bits_p = (None, None, None) if forced is None else forced[:3]
        rc = self._lib.net_forward(self._net_p, x.data_ptr(), 1, xs_n, xs_c, xs_h, xs_w, run_p, keep_p, bits_p,
                                   1 if eval_gates else 0, logits.data_ptr(), *self._one_ptrs, torch.get_num_threads())
        if rc != 0:
            raise RuntimeError("native network forward rejected its packed arguments")
        return logits, bytes(self._ran1), bytes(self._kept1), self._macs1

    def _run(self, x: torch.Tensor, forced: tuple | None, eval_gates: bool, logits: torch.Tensor, outs: tuple) -> None:
        xs_n, xs_c, xs_h, xs_w = x.stride()
        run_p, keep_p, bits_p = (None, None, None) if forced is None else forced[:3]
        rc = self._lib.net_forward(self._net_p, x.data_ptr(), x.shape[0], xs_n, xs_c, xs_h, xs_w, run_p, keep_p,
                                   bits_p, int(eval_gates), logits.data_ptr(), *outs, torch.get_num_threads())
        if rc != 0:
            raise RuntimeError("native network forward rejected its packed arguments")

    def takes(self, i: int, x: torch.Tensor) -> bool:
        """Whether ``x`` is an input of block ``i`` of this packing (float32 ``N×C×H×W`` of its shape)."""
        b = self._blocks[i]
        return x.dtype == torch.float32 and tuple(x.shape[1:]) == (b.cin, b.h, b.w)

    def block(self, i: int, x: torch.Tensor, forced: tuple | None, eval_gates: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block ``i`` alone on ``N`` images of its input shape, exactly as the forward pass runs it:
        (output ``N×C×H×W`` channels-last, ran ``N`` uint8, kept channels ``N`` int32)."""
        b = self._blocks[i]
        n = x.shape[0]
        x = x.contiguous(memory_format=torch.channels_last)
        if not self.takes(i, x):
            raise ValueError(f"block {i} of the packed network takes float32 N×{b.cin}×{b.h}×{b.w}, got {x.dtype} {tuple(x.shape)}")
        y = torch.empty((n, b.cout, (b.h - 1) // b.stride + 1, (b.w - 1) // b.stride + 1), dtype=torch.float32,
                        memory_format=torch.channels_last)
        ran, kept = torch.zeros(n, dtype=torch.uint8), torch.zeros(n, dtype=torch.int32)
        macs, same = torch.zeros(n, dtype=torch.float64), ctypes.c_int()
        run_p, keep_p, bits_p = (None, None, None) if forced is None else forced[:3]
        rc = self._lib.net_block(ctypes.addressof(self._net), i, x.data_ptr(), n, y.data_ptr(), run_p, keep_p, bits_p,
                                 int(eval_gates), ran.data_ptr(), kept.data_ptr(), macs.data_ptr(), ctypes.byref(same),
                                 torch.get_num_threads())
        if rc != 0:
            raise RuntimeError("native network block rejected its packed arguments")
        return (x if same.value else y), ran, kept


def _rows(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
    """A forced ``D`` or ``N×D`` tensor as ``n×D`` (batch 1 takes the first row, as the per-block path does)."""
    if t.dim() == 1:
        return t.expand(n, -1)
    if t.shape[0] == n:
        return t
    if n == 1:
        return t[:1]
    raise ValueError(f"ForcedDecisions.{what} has {t.shape[0]} rows for a batch of {n}: give one row or one per sample")


def forced_arrays(forced: Any, n: int, groups: list[int]) -> tuple:
    """A :class:`~lcnas.models.ForcedDecisions` for ``n`` images in the C layout: pointers to (run
    ``n×B`` int8, -1 = not forced; keep offsets ``n×B`` int32 into the bits, -1 = not forced; keep
    bits uint8, block-major), then the tensors that own them."""
    nb = len(groups)
    run = torch.full((n, nb), -1, dtype=torch.int8)
    if forced.block_run is not None:
        run = _rows(forced.block_run.to(torch.int8), n, "block_run").contiguous()
    offsets = torch.full((n, nb), -1, dtype=torch.int32)
    bits, base = [], 0
    for i, k in enumerate(forced.channel_keep or ()):
        if k is None:
            continue
        k = _rows(k.to(torch.uint8), n, f"channel_keep[{i}]").contiguous()
        if k.shape[1] != groups[i]:
            raise ValueError(f"ForcedDecisions.channel_keep[{i}] has {k.shape[1]} groups, block {i} has {groups[i]}")
        offsets[:, i] = base + torch.arange(n, dtype=torch.int32) * groups[i]
        bits.append(k.reshape(-1))
        base += k.numel()
    bits_t = torch.cat(bits) if bits else torch.zeros(1, dtype=torch.uint8)
    return (run.data_ptr(), offsets.data_ptr(), bits_t.data_ptr(), (run, offsets, bits_t))


def _eligible(model: nn.Module) -> bool:
    if not isinstance(model.maxpool, nn.Identity) or model.fc.bias is None:
        return False
    stem = model.conv1
    if not (packable(stem) and stem.kernel_size == (3, 3) and window_ok(stem.out_channels)):
        return False
    for block in model.blocks():
        if not isinstance(block, BasicBlock) or not (block.downsample is None or isinstance(block.downsample, PadShortcut)):
            return False
        c1, c2 = block.conv1, block.conv2
        if any(c.kernel_size != (3, 3) or c.padding != (1, 1) or not packable(c) for c in (c1, c2)) or c2.stride != (1, 1):
            return False
        if not window_ok(c2.out_channels, c1.in_channels) or max(c1.out_channels, c1.in_channels) > _MAX_WIDTH:
            return False
        if isinstance(block.downsample, PadShortcut) and not window_ok(block.downsample.pad // 2):
            return False
        for gate in (block.layer_gate, block.channel_gate):
            if gate is not None and sum(isinstance(m, nn.Linear) for m in gate.mlp) > 2:
                return False
    return True


def build_native_net(executor: Any, lib: NativeConv, input_hw: tuple[int, int]) -> NativeNet | None:
    """Pack ``executor.model`` for inputs of ``input_hw``; None when the model is not eligible."""
    model = executor.model
    if not _eligible(model):
        return None
    cfg = executor.config
    keep: list[torch.Tensor] = []

    def ptr(t: torch.Tensor | None) -> int | None:
        if t is None:
            return None
        t = t.detach().float().contiguous()
        keep.append(t)
        return t.data_ptr()

    stem = executor.native_stem(lib)  # weights with the input normalisation folded in
    if stem is None:
        return None
    h = (input_hw[0] + 2 * stem.pad - 3) // stem.stride + 1
    w = (input_hw[1] + 2 * stem.pad - 3) // stem.stride + 1
    blocks = (_Block * len(model.blocks()))()
    for i, block in enumerate(model.blocks()):
        pack = executor._pack(i, block)
        (w1, b1), (w2, b2) = pack["folded"]
        b = blocks[i]
        b.cin, b.cmid, b.cout, b.h, b.w, b.stride = block.conv1.in_channels, w1.shape[0], w2.shape[0], h, w, block.stride
        b.w1, b.b1 = ptr(w1.permute(2, 3, 1, 0)), ptr(b1)
        b.w2, b.b2 = ptr(w2.permute(2, 3, 1, 0)), ptr(b2)
        if isinstance(block.downsample, PadShortcut):
            b.pad_stride, b.pad_lo = block.downsample.stride, block.downsample.pad // 2
        gates = pack["gates_one"]
        b.pool, b.scaling = _POOL[cfg.pooling], int(cfg.scaling)
        b.run_logit, b.keep_logit = pack["run_logit"], pack["keep_logit"]
        if gates is not None:
            gw, gb, layer_head, channel_head = gates
            b.rows, b.feat = gw.shape[0], gw.shape[1]
            b.gw, b.gb = ptr(gw), ptr(gb)
            for field, head, gate in (("layer", layer_head, block.layer_gate), ("channel", channel_head, block.channel_gate)):
                if head is None:
                    continue
                lo, hi, rest = head
                w_2, b_2 = rest[0] if rest else (None, None)
                outputs = gate.outputs * (2 if cfg.scaling else 1)
                setattr(b, field, _Head(lo, hi, ptr(w_2), ptr(b_2), outputs))
        if block.channel_gate is not None:
            b.groups, b.gsize = block.channel_gate.outputs, cfg.group_size
        h, w = (h - 1) // block.stride + 1, (w - 1) // block.stride + 1
    net = _Net()
    net.stem_w, net.stem_b, net.stem_padv = ptr(stem.weight), ptr(stem.bias), ptr(stem.pad_value)
    net.cin, net.h, net.w = stem.in_channels, input_hw[0], input_hw[1]
    net.stem_cout, net.stem_stride, net.stem_pad = stem.padded_out, stem.stride, stem.pad
    net.nblocks, net.blocks = len(blocks), ctypes.addressof(blocks)
    net.fc_w, net.fc_b = ptr(model.fc.weight), ptr(model.fc.bias)
    net.classes, net.feat = model.fc.out_features, model.fc.in_features
    net.id = next(_ids)
    return NativeNet(lib, net, blocks, keep, model.fc.out_features)

"""A whole forward pass of a gated CIFAR ResNet in one native call (``_native_net.cpp``).

The per-conv native path still pays Python's fixed cost for every gate step and kernel call, and
at batch 1 that cost, not arithmetic, is what a gate costs. Here the engine packs the network
once (BN-folded convs in the kernel's layout, each block's gates as one stacked first layer plus
heads), and one call runs the stem, every block's gates and decisions (the same rules as
:class:`~lcnas.engine.Engine`'s batch-1 path), only the kept blocks and channels,
and the head. It returns the logits, the trace (ran, kept channels per block) and the
multiply-adds it computed. A batch runs one image per thread, each on its own path.

Eligible: basic blocks with identity or "option A" shortcuts, a 3×3 stem without max-pooling, an
average-pooled linear head, gates of at most two linear layers, widths the kernel writes unpadded
(multiples of 8). Anything else keeps the per-conv path.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._abi import BLOCK, GATE_HEAD, NET, ctypes_struct
from ._forced import ForcedArrays, forced_arrays
from ._native import NativeConv, PackedConv, window_ok
from ._packs import BlockPack, StemPack

__all__ = ["NativeNet", "build_native_net", "native_net_eligible"]

_POOL = {"avg": 0, "max": 1, "avgmax": 2}
_MAX_WIDTH = 4096  # the C side's per-block arrays
_ids = itertools.count(1)  # one per packing: the C side caches gathered weights under it
_Head, _Block, _Net = ctypes_struct(GATE_HEAD), ctypes_struct(BLOCK), ctypes_struct(NET)


class NativeNet:
    """One packed network for one input size; ``__call__`` runs a batch (one image per thread) or one image."""

    def __init__(self, lib: NativeConv, net: ctypes.Structure, blocks: ctypes.Array, keep_alive: list[torch.Tensor], classes: int) -> None:
        self._lib, self._net, self._blocks, self._keep_alive = lib, net, blocks, keep_alive
        self.nblocks = len(blocks)
        self.groups = [b.groups for b in blocks]
        self.classes = classes
        # Batch 1's trace buffers: ctypes arrays, reused, read out with bytes() (a torch op on a
        # batch-1 call costs more than its microbenchmark: torch's state is cold after a pass).
        self._ran1, self._kept1 = (ctypes.c_uint8 * self.nblocks)(), (ctypes.c_int32 * self.nblocks)()
        self._macs1 = torch.zeros(1, dtype=torch.float64)
        # ran, kept, per-image groups (not recorded at batch 1), multiply-adds: the C call's order
        self._one_ptrs = (ctypes.addressof(self._ran1), ctypes.addressof(self._kept1), None, self._macs1.data_ptr())
        self._logits1 = torch.empty(1, classes, dtype=torch.float32)  # the shape and dtype of a batch-1 call's logits
        self._net_p = ctypes.addressof(net)

    def forced_arrays(self, forced: Any, n: int) -> ForcedArrays:
        """A forcing (``ForcedDecisions``) for ``n`` images in this network's C layout (uncached)."""
        return forced_arrays(forced, n, self.groups)

    def bound_one(self, x: torch.Tensor, forced: ForcedArrays | None) -> Callable[[], int]:
        """The C call of :meth:`one` for image ``x`` with every argument built once: the native
        forward alone, without Python's per-call work (what ``benchmarks/call_overhead.py`` times).
        The callable returns the C return code (0: done); logits and trace go to internal buffers."""
        logits = torch.empty_like(self._logits1)
        run_p, keep_p, bits_p = (None, None, None) if forced is None else forced[:3]
        args = (self._net_p, x.data_ptr(), 1, *x.stride(), run_p, keep_p, bits_p, 0, logits.data_ptr(), *self._one_ptrs,
                torch.get_num_threads())
        call = self._lib.net_forward

        def run() -> int:
            return call(*args)

        run.keep_alive = (x, forced, logits)  # type: ignore[attr-defined]  # the memory the pointers name
        return run

    def _outputs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.zeros(n, self.nblocks, dtype=torch.uint8), torch.zeros(n, self.nblocks, dtype=torch.int32),
                torch.zeros(n, dtype=torch.float64))

    def __call__(self, x: torch.Tensor, forced: tuple | None,
                 eval_gates: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
        """(logits ``N×classes``, ran ``N×B`` uint8, kept channels ``N×B`` int32, multiply-adds
        computed ``N`` float64, and per block with channel groups the ``N×G`` groups each image
        kept, all False where it skipped the block) for ``N×C×H×W`` float32 images; ``forced`` from
        :func:`forced_arrays` or None."""
        n = x.shape[0]
        logits = torch.empty(n, self.classes, dtype=torch.float32)
        ran, kept, macs = self._outputs(n)
        groups = torch.zeros(n, sum(self.groups), dtype=torch.uint8)
        self._run(x, forced, eval_gates, logits, (ran.data_ptr(), kept.data_ptr(), groups.data_ptr() if groups.numel() else None,
                                                  macs.data_ptr()))
        masks, start = {}, 0
        for i, g in enumerate(self.groups):
            if g:
                masks[i] = groups[:, start : start + g].bool()
            start += g
        return logits, ran, kept, macs, masks

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


def native_net_eligible(stem: StemPack, blocks: Sequence[BlockPack], fc: nn.Linear) -> bool:
    """Whether the native network runs this model: see the module docstring."""
    if stem.maxpool is not None or fc.bias is None or not stem.native_ok or stem.kernel_size != (3, 3):
        return False
    for pack in blocks:
        if pack.bottleneck or pack.shortcut is not None:
            return False
        c1, c2 = pack.convs
        if any(c.kernel_size != (3, 3) or c.padding != (1, 1) for c in (c1, c2)) or c2.stride != (1, 1) or not pack.native_ok:
            return False
        if not window_ok(c2.out_channels, c1.in_channels) or max(c1.out_channels, c1.in_channels) > _MAX_WIDTH:
            return False
        if pack.gate_layers > 2:
            return False
    return True


def build_native_net(lib: NativeConv, stem: PackedConv, blocks: Sequence[BlockPack], fc: nn.Linear,
                     input_hw: tuple[int, int]) -> NativeNet:
    """Pack a network for inputs of ``input_hw``: its stem conv (input normalisation folded in),
    its block packs (:func:`native_net_eligible` ones) and its classifier."""
    keep: list[torch.Tensor] = []

    def ptr(t: torch.Tensor | None) -> int | None:
        if t is None:
            return None
        t = t.detach().float().contiguous()
        keep.append(t)
        return t.data_ptr()

    h = (input_hw[0] + 2 * stem.pad - 3) // stem.stride + 1
    w = (input_hw[1] + 2 * stem.pad - 3) // stem.stride + 1
    packed = (_Block * len(blocks))()
    for i, pack in enumerate(blocks):
        (w1, b1), (w2, b2) = pack.folded
        b = packed[i]
        b.cin, b.cmid, b.cout, b.h, b.w, b.stride = pack.in_channels, w1.shape[0], w2.shape[0], h, w, pack.stride
        b.w1, b.b1 = ptr(w1.permute(2, 3, 1, 0)), ptr(b1)
        b.w2, b.b2 = ptr(w2.permute(2, 3, 1, 0)), ptr(b2)
        if pack.pad_window is not None:
            b.pad_stride, b.pad_lo = pack.pad_window.stride, pack.pad_window.offset
        gates = pack.gates_one
        b.pool, b.scaling = _POOL[pack.pooling], int(pack.scaling)
        b.run_logit, b.keep_logit = pack.run_logit, pack.keep_logit
        if gates is not None:
            b.rows, b.feat = gates.weight.shape[0], gates.weight.shape[1]
            b.gw, b.gb = ptr(gates.weight), ptr(gates.bias)
            for name, head in (("layer", gates.layer), ("channel", gates.channel)):
                if head is None:
                    continue
                w_2, b_2 = head.rest[0] if head.rest else (None, None)
                outputs = head.outputs * (2 if pack.scaling else 1)
                setattr(b, name, _Head(head.lo, head.hi, ptr(w_2), ptr(b_2), outputs))
        if pack.groups:
            b.groups, b.gsize = pack.groups, pack.group_size
        h, w = (h - 1) // pack.stride + 1, (w - 1) // pack.stride + 1
    net = _Net()
    net.stem_w, net.stem_b, net.stem_padv = ptr(stem.weight), ptr(stem.bias), ptr(stem.pad_value)
    net.cin, net.h, net.w = stem.in_channels, input_hw[0], input_hw[1]
    net.stem_cout, net.stem_stride, net.stem_pad = stem.padded_out, stem.stride, stem.pad
    net.nblocks, net.blocks = len(packed), ctypes.addressof(packed)
    net.fc_w, net.fc_b = ptr(fc.weight), ptr(fc.bias)
    net.classes, net.feat = fc.out_features, fc.in_features
    net.id = next(_ids)
    return NativeNet(lib, net, packed, keep, fc.out_features)

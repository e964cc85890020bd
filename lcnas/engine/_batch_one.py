"""Batch 1 block by block: decisions as Python numbers, the convs on the native kernel where it can
run them (else PyTorch's).

Decisions and scales are read with one ``.tolist()`` per gate, so a gate costs a pooling and one or
two ``addmv`` calls (a block's layer and channel gates share one stacked first layer), and the
block only what it runs. On the native kernel the block's bias, scales, shortcut and ReLU are fused
into its convs (``_native.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._decision import gate_scale, keep_groups_one, run_block_one
from ._native import NativeConv, PackedConv, kept_width
from ._packs import BlockPack, GateHead, lru, subset_weights
from ._pooling import VectorPool
from ._residual import residual, shortcut, skipped

__all__ = ["block_one"]


def _head_one(h: torch.Tensor, head: GateHead) -> torch.Tensor:
    """One gate's outputs (1-D) from the stacked first-layer output ``h``."""
    lo, hi = head.lo, head.hi
    out = h if (lo == 0 and hi == h.shape[0]) else h[lo:hi]
    for w, b in head.rest:
        out = torch.addmv(b, w, out.relu())
    return out


def block_one(pack: BlockPack, block: Any, x: torch.Tensor, nat: NativeConv | None, gates_on: bool,
              forced_run: bool | None, forced_keep: tuple[bool, ...] | None,
              pool_one: VectorPool) -> tuple[torch.Tensor, bool, int]:
    """(output, ran, kept channels) of one image through one block. ``nat``: this pass's native
    kernel or None; ``gates_on``: evaluate the gates; ``forced_*``: this block's forced decisions."""
    gates = pack.gates_one if gates_on else None
    h = None
    layer_logit = run_scale = None
    if gates is not None:
        h = torch.addmv(gates.bias, gates.weight, pool_one(pack.pooling, x))  # both gates' first layers
        if gates.layer is not None:
            out = _head_one(h, gates.layer).tolist()
            layer_logit = out[0]
            if pack.scaling:
                run_scale = gate_scale(out[1])
    run = run_block_one(layer_logit, pack.run_logit, forced_run)
    if not pack.native_ok:
        nat = None
    if not run:
        if nat is None:
            return skipped(pack, block, x), False, 0
        window = pack.pad_window
        if window is not None:
            return nat.pad_subsample(x, window.stride, window.offset, window.out_channels), False, 0
        return _shortcut_native(nat, pack, x, relu=True), False, 0

    keep_row, scale = None, None
    if pack.groups:
        groups = pack.groups
        out_t = logits = None
        if h is not None and gates is not None and gates.channel is not None:  # gates evaluated (h is their first layer)
            out_t = _head_one(h, gates.channel)
            logits = out_t.tolist()[:groups]
        keep_row = keep_groups_one(logits, pack.keep_logit, forced_keep)
        if out_t is not None and keep_row is not None and pack.scaling:
            # gate_scales (2·sigmoid) of the kept groups' scale outputs, in place on the gathered row,
            # one per kept channel (padded to the native kernel's width): a cached index into the
            # gate's output row (one gather) rather than a Python list per call.
            scale = torch.index_select(out_t, 0, _scale_index(pack, keep_row, out_t.device)).sigmoid_().mul_(2.0)
    kept = pack.width if keep_row is None else sum(keep_row) * pack.group_size
    if nat is not None:
        return _block_native(nat, pack, x, keep_row, scale, run_scale), True, kept
    if scale is not None:
        scale = scale[:kept][None]
    res = residual(pack.bottleneck, pack.stride, x, subset_weights(pack, keep_row), scale)
    sc = shortcut(pack, block, x)
    if run_scale is None:
        return res.add_(sc).relu_(), True, kept
    return torch.add(sc, res, alpha=run_scale).relu_(), True, kept


def _scale_index(pack: BlockPack, keep_row: tuple[bool, ...], device: torch.device) -> torch.Tensor:
    """Column of each kept channel's scale in the channel gate's output row (cached per set),
    padded to the native kernel's kept width by repeating a column (padded channels are zero)."""
    g, groups = pack.group_size, pack.groups

    def make() -> torch.Tensor:
        cols = [groups + k for k, on in enumerate(keep_row) if on for _ in range(g)]
        return torch.tensor(cols + cols[:1] * (kept_width(len(cols)) - len(cols)), device=device)

    return lru(pack.caches.scale_index, keep_row, make)


def _block_native(nat: NativeConv, pack: BlockPack, x: torch.Tensor, keep_row: tuple[bool, ...] | None,
                  scale: torch.Tensor | None, run_scale: float | None) -> torch.Tensor:
    """A running block at batch 1 on the native kernel: ReLU and the channel scale fused into the
    inner convs, ``relu(shortcut + run_scale·residual)`` into the last, the shortcut read in place."""
    convs = lru(pack.caches.native_sets, keep_row if keep_row is not None and not all(keep_row) else None,
                lambda: _pack_native(nat, pack, keep_row))
    h = x
    for conv in convs[:-1]:
        h = nat(h, conv, relu=True, channel_scale=scale)
    alpha = 1.0 if run_scale is None else run_scale
    window = pack.pad_window
    if window is not None:
        return nat(h, convs[-1], alpha=alpha, residual=x, residual_stride=window.stride, residual_offset=window.offset, relu=True)
    return nat(h, convs[-1], alpha=alpha, residual=_shortcut_native(nat, pack, x), relu=True)


def _shortcut_native(nat: NativeConv, pack: BlockPack, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Identity (``x`` itself; post-ReLU, so >= 0) or the 1×1 conv shortcut on the kernel."""
    sc = pack.shortcut
    if sc is None:
        return x
    caches = pack.caches
    if caches.native_shortcut is None:
        caches.native_shortcut = nat.pack(sc.weight, sc.bias, sc.stride[0], 0)
    return nat(x, caches.native_shortcut, relu=relu)


def _pack_native(nat: NativeConv, pack: BlockPack, keep_row: tuple[bool, ...] | None) -> tuple[PackedConv, ...]:
    """The block's convs for one kept set in the native layout; each conv reads the previous
    one's padded output, so its input rows are padded to match."""
    w = subset_weights(pack, keep_row)
    packed, cin, last = [], None, len(pack.convs) - 1
    for j, conv in enumerate(pack.convs):
        width = kept_width(w[2 * j].shape[0]) if j < last else None  # inner convs: the engine's kept widths
        p = nat.pack(w[2 * j], w[2 * j + 1], conv.stride[0], int(conv.padding[0]), in_channels=cin, width=width)
        packed.append(p)
        cin = p.padded_out
    return tuple(packed)

"""A block's or the stem's weights prepared once for inference (the engine's "primitive descriptors").

BatchNorm is folded into the convs, weights are stored channels-last (2× faster than NCHW for
these small convs on oneDNN CPUs), gate MLPs become plain ``addmm`` operands, and per block the
folded weights restricted to each kept channel-group set are cached (an LRU of pre-packed
contiguous tensors, so a repeated set costs no copy). Packs are immutable; their caches are
explicit mutable fields (:class:`BlockCaches`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._decision import threshold_logit
from ._fold import fold_conv_bn
from ._native import PackedConv, packable, window_ok
from ._structure import GateSettings, shortcut_kind

__all__ = ["BlockCaches", "BlockPack", "ConvShortcut", "GateHead", "PadWindow", "StackedGates", "StemPack", "lru",
           "pack_block", "pack_stem", "subset_weights", "PACK_CACHE_SIZE"]

PACK_CACHE_SIZE = 128
_CL = torch.channels_last

GateLayers = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (weight, bias) per linear layer


@dataclass(frozen=True)
class GateHead:
    """One gate's outputs from rows ``[lo, hi)`` of a block's stacked first layer, then ``rest``
    (its later layers as (weight ``out×in``, bias), after a ReLU each)."""

    lo: int
    hi: int
    rest: GateLayers
    outputs: int  # decisions (groups, or 1 for a layer gate); twice as many values with scales


@dataclass(frozen=True)
class StackedGates:
    """A block's gates in batch-1 form: both first layers stacked (one ``addmv`` for both), then a
    head per gate (None where the block has no such gate)."""

    weight: torch.Tensor  # rows × features
    bias: torch.Tensor
    layer: GateHead | None
    channel: GateHead | None


@dataclass(frozen=True)
class ConvShortcut:
    """A folded 1×1 conv shortcut (channels-last weight); it runs for every sample."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]


@dataclass(frozen=True)
class PadWindow:
    """An "option A" shortcut as the native epilogue reads it: every ``stride``-th pixel, its
    channels at ``offset`` among ``out_channels``."""

    stride: int
    offset: int
    out_channels: int


@dataclass
class BlockCaches:
    """A block pack's caches, filled as channel sets occur (least recently used out)."""

    subsets: OrderedDict = field(default_factory=OrderedDict)  # kept set → folded weights
    native_sets: OrderedDict = field(default_factory=OrderedDict)  # kept set (None: all) → packed native convs
    native_shortcut: PackedConv | None = None
    scale_index: OrderedDict = field(default_factory=OrderedDict)  # kept set → scale columns


@dataclass(frozen=True)
class BlockPack:
    """One block prepared for inference."""

    bottleneck: bool
    stride: int
    in_channels: int
    width: int  # inner channels (conv1's outputs)
    out_channels: int
    group_size: int
    groups: int  # channel-gate decisions (0: no channel gate)
    convs: tuple[nn.Conv2d, ...]  # the block's convs, in order (their strides and paddings)
    folded: GateLayers  # (weight, bias) per conv, BN folded, NCHW-contiguous
    full: tuple[torch.Tensor, ...]  # every channel kept: w1, b1, w2, b2[, w3, b3] channels-last
    layer_gate: GateLayers | None  # batch form: (weight transposed, bias) per layer, for addmm
    channel_gate: GateLayers | None
    gates_one: StackedGates | None
    gate_layers: int  # linear layers of the deeper gate (0: no gates)
    run_logit: float  # the thresholds as logits
    keep_logit: float
    pooling: str  # the gates' input pooling: avg, max or avgmax
    scaling: bool  # the gates output scales
    shortcut: ConvShortcut | None
    pad_window: PadWindow | None
    native_ok: bool  # the native kernel can run the block's convs and epilogue
    caches: BlockCaches = field(default_factory=BlockCaches, compare=False, repr=False)


@dataclass(frozen=True)
class StemPack:
    """The stem conv with its BatchNorm folded (channels-last weight), and its max-pool or None."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int]
    kernel_size: tuple[int, int]
    out_channels: int
    maxpool: nn.Module | None
    native_ok: bool  # the native kernel can run the stem conv


def _batch_gate(gate: Any) -> GateLayers | None:
    if gate is None:
        return None
    return tuple((w.t().contiguous(), b) for w, b in gate.folded_linears())


def _stacked_gates(block: Any) -> StackedGates | None:
    gates = (block.layer_gate, block.channel_gate)
    if all(g is None for g in gates):
        return None
    weights, biases, row = [], [], 0
    heads: list[GateHead | None] = []
    for gate in gates:
        if gate is None:
            heads.append(None)
            continue
        (w1, b1), *rest = gate.folded_linears()
        weights.append(w1)
        biases.append(b1)
        heads.append(GateHead(row, row + w1.shape[0], tuple((w.contiguous(), b) for w, b in rest), gate.outputs))
        row += w1.shape[0]
    return StackedGates(torch.cat(weights).contiguous(), torch.cat(biases), heads[0], heads[1])


def pack_stem(model: Any) -> StemPack:
    """The model's stem conv + BN folded, weight channels-last."""
    w, b = fold_conv_bn(model.conv1, model.bn1)
    maxpool = None if isinstance(model.maxpool, nn.Identity) else model.maxpool
    conv = model.conv1
    return StemPack(w.contiguous(memory_format=_CL), b, conv.stride, conv.padding, conv.kernel_size, conv.out_channels,
                    maxpool, packable(conv) and window_ok(conv.out_channels))


def pack_block(block: Any, cfg: GateSettings) -> BlockPack:
    """``block`` prepared for inference under the gate configuration ``cfg``."""
    bottleneck = block.kind == "bottleneck"
    convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    if bottleneck:
        convs.append((block.conv3, block.bn3))
    folded = tuple(fold_conv_bn(c, b) for c, b in convs)
    kind = shortcut_kind(block)
    shortcut = pad_window = None
    conv_mods = [c for c, _ in convs]
    out_channels = convs[-1][0].out_channels
    if kind == "conv":
        wd, bd = fold_conv_bn(block.downsample[0], block.downsample[1])
        shortcut = ConvShortcut(wd.contiguous(memory_format=_CL), bd, block.downsample[0].stride)
        conv_mods.append(block.downsample[0])
    # The native kernel adds the shortcut in its epilogue, so the block's output width must be
    # one the kernel writes unpadded (a multiple of its vector width).
    native_ok = all(packable(c) for c in conv_mods) and window_ok(out_channels)
    if kind == "pad":
        # read in place by the kernel's epilogue: the channel window must fall on its vectors
        lo = block.downsample.pad // 2
        pad_window = PadWindow(block.downsample.stride, lo, out_channels)
        native_ok = native_ok and window_ok(lo, block.conv1.in_channels)
    gate_layers = max((sum(isinstance(m, nn.Linear) for m in g.mlp) for g in (block.layer_gate, block.channel_gate)
                       if g is not None), default=0)
    return BlockPack(
        bottleneck=bottleneck, stride=block.stride, in_channels=block.conv1.in_channels, width=block.conv1.out_channels,
        out_channels=out_channels, group_size=cfg.group_size,
        groups=0 if block.channel_gate is None else block.channel_gate.outputs,
        convs=tuple(c for c, _ in convs), folded=folded,
        full=tuple(t for w, b in folded for t in (w.contiguous(memory_format=_CL), b)),
        layer_gate=_batch_gate(block.layer_gate), channel_gate=_batch_gate(block.channel_gate),
        gates_one=_stacked_gates(block), gate_layers=gate_layers,
        run_logit=threshold_logit(cfg.layer_threshold), keep_logit=threshold_logit(cfg.channel_threshold),
        pooling=cfg.pooling, scaling=cfg.scaling,
        shortcut=shortcut, pad_window=pad_window, native_ok=native_ok)


def subset_weights(pack: BlockPack, keep_row: tuple[bool, ...] | None) -> tuple[torch.Tensor, ...]:
    """Folded weights for one kept group set: pre-packed, contiguous, cached."""
    if keep_row is None or all(keep_row):
        return pack.full
    return lru(pack.caches.subsets, keep_row, lambda: _gather_subset(pack, keep_row))


def _gather_subset(pack: BlockPack, keep_row: tuple[bool, ...]) -> tuple[torch.Tensor, ...]:
    g = pack.group_size
    idx = torch.tensor([k * g + j for k, on in enumerate(keep_row) if on for j in range(g)])
    (w1, b1), (w2, b2), *last = pack.folded
    packed: tuple[torch.Tensor, ...]
    if pack.bottleneck:
        (w3, b3), = last
        packed = (w1[idx], b1[idx], w2[idx][:, idx], b2[idx], w3[:, idx], b3)
    else:
        packed = (w1[idx], b1[idx], w2[:, idx], b2)
    return tuple(t.contiguous(memory_format=_CL) if t.dim() == 4 else t.contiguous() for t in packed)


def lru(cache: OrderedDict, key: Any, make: Any, size: int = PACK_CACHE_SIZE) -> Any:
    """``cache[key]``, made by ``make()`` on a miss; at most ``size`` entries, least recently used out."""
    hit = cache.get(key)
    if hit is not None:
        cache.move_to_end(key)
        return hit
    hit = cache[key] = make()
    if len(cache) > size:
        cache.popitem(last=False)
    return hit

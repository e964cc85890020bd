"""Hard execution: skipped blocks and channels are not computed at all.

Everything is prepared on the first eval-mode pass and cached on the executor until ``train()``,
``eval()``, ``load_state_dict`` or ``.to()`` clears it: BatchNorm folded into
the convs, weights in channels-last (2× faster than NCHW for these small convs on oneDNN CPUs),
gate MLPs as plain ``addmm`` operands, and, per block, the folded weights restricted to each kept
channel-group set (an LRU of pre-packed contiguous tensors, so a repeated set costs no copy).

CIFAR ResNets on a CPU run the whole forward pass in one native call instead, batches one image
per thread (``_native_net.py``; ``whole_network`` / ``batch_native`` below); the paths described
next serve every other model, and both when those flags are off.

Batch size 1 takes a plain-control-flow path with Python decisions. Its convolutions run on
lcnas's native kernel when it could be built (``_native.py``: a direct convolution whose cost
scales with the kept channels, the block's bias, scales, shortcut and ReLU fused in, the stem's
input normalisation folded into its weights), else on PyTorch's. The rest is per-call overhead,
so the gates make few calls: average pooling is one matrix-vector product over the activation's
memory (any layout), a block's layer and channel gates share one stacked first layer (one
``addmv`` for both), and the classifier head is one ``addmv``. Batches group samples by path:
the samples that run a block are gathered, run and scattered back; among them, samples with
different channel sets either run one conv per distinct set or one conv over the union of their
sets with the rest masked, whichever :func:`grouping_is_cheaper` predicts is faster.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._fold import fold_conv_bn
from ..models._gates import GateConfig
from ._native import NativeConv, PackedConv, kept_width, native, packable, window_ok
from ._native_net import NativeNet, build_native_net, forced_arrays
from ..models._normalize import Normalize
from ..models._resnet import Bottleneck, PadShortcut

__all__ = ["HardExecutor", "grouping_is_cheaper", "pool", "residual_mflops_per_channel", "GROUP_OVERHEAD_MFLOPS"]

# Each extra channel-set group in a batch costs a fixed overhead (gather, scatter, two more conv
# calls) that does no useful work. benchmarks/grouping_rule.py fits time = overhead + rate × MFLOPs
# per CIFAR stage and finds 28-47 MFLOPs of conv work on a 2-core AVX-512 CPU (see its JSON).
GROUP_OVERHEAD_MFLOPS = 30.0
_PACK_CACHE_SIZE = 128
# Forcings converted for the native engine, kept per forcing: a benchmark cycling over a few
# hundred (16 samples x every level) must not rebuild them on every call (~0.1 ms at batch 1).
_FORCED_CACHE_SIZE = 1024
_CL = torch.channels_last


def grouping_is_cheaper(per_channel_mflops: float, group_size: int, keep: torch.Tensor, sets: torch.Tensor,
                        inverse: torch.Tensor) -> bool:
    """Per-set convs vs one conv over the union of the batch's channel groups.

    grouped = sum over sets (samples × kept channels) × MFLOPs/channel + overhead × (sets - 1)
    union   = samples × union channels × MFLOPs/channel
    """
    counts = torch.bincount(inverse, minlength=sets.shape[0]).to(torch.float32)
    grouped = float((counts * sets.sum(1).to(torch.float32)).sum()) * group_size * per_channel_mflops
    grouped += GROUP_OVERHEAD_MFLOPS * (sets.shape[0] - 1)
    union = float(keep.any(0).sum()) * group_size * keep.shape[0] * per_channel_mflops
    return grouped < union


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _scale(z: float) -> float:
    """2·sigmoid(z) without overflow: the gates' scale parametrisation."""
    if z >= 0:
        return 2.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return 2.0 * e / (1.0 + e)


def _pack_gate(gate: nn.Module | None) -> tuple | None:
    if gate is None:
        return None
    return tuple((w.t().contiguous(), b) for w, b in gate.folded_linears())


def _pack_gates_one(block: nn.Module) -> tuple | None:
    """Batch-1 form of a block's gates: (stacked first-layer weight, bias, layer head, channel head).

    A head is (first row, end row, later layers as (weight ``out×in``, bias)) or None where the
    block has no such gate. Stacking the first layers makes both gates' first step one ``addmv``.
    """
    gates = (block.layer_gate, block.channel_gate)
    if all(g is None for g in gates):
        return None
    weights, biases, heads, row = [], [], [], 0
    for gate in gates:
        if gate is None:
            heads.append(None)
            continue
        (w1, b1), *rest = gate.folded_linears()
        weights.append(w1)
        biases.append(b1)
        heads.append((row, row + w1.shape[0], tuple((w.contiguous(), b) for w, b in rest)))
        row += w1.shape[0]
    return (torch.cat(weights).contiguous(), torch.cat(biases), *heads)


def _head_one(h: torch.Tensor, head: tuple) -> torch.Tensor:
    """One gate's outputs (1-D) from the stacked first-layer output ``h``."""
    lo, hi, rest = head
    out = h if (lo == 0 and hi == h.shape[0]) else h[lo:hi]
    for w, b in rest:
        out = torch.addmv(b, w, out.relu())
    return out


def _run_gate(packed: tuple, v: torch.Tensor) -> torch.Tensor:
    (w, b), *rest = packed
    out = torch.addmm(b, v, w)
    for w2, b2 in rest:
        out = torch.addmm(b2, out.relu_(), w2)
    return out


def pool(v_kind: str, x: torch.Tensor) -> torch.Tensor:
    """A gate's input vector (N×features) from ``x`` (N×C×H×W) by ``v_kind`` pooling: avg, max or avgmax."""
    if v_kind == "avg":
        return x.mean((2, 3))
    if v_kind == "max":
        return x.amax((2, 3))
    return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)


# What the engine reads of a gate configuration for a static model (no gates): every block runs.
_STATIC_CONFIG = GateConfig()


class HardExecutor:
    """Runs a :class:`~lcnas.models.ResNet` in eval mode without computing skipped work.

    A :class:`~lcnas.models.DynamicResNet` runs its gates' decisions; a static ResNet (no gates)
    runs every block on the same engine, so static and dynamic models are timed on one engine.
    """

    # Batch 1 on the native kernel: the whole network in one call where the model is eligible
    # (``_native_net.py``); False runs it block by block from Python (benchmarks compare the two).
    whole_network = True
    # Batches on the native kernel too, one image per thread, each taking only its own path;
    # False groups samples by path on PyTorch's (oneDNN) convolutions.
    batch_native = True

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.packs: dict[int, dict[str, Any]] = {}
        self._forced_cache: OrderedDict[int, tuple] = OrderedDict()  # id(forcing) → (forcing, (runs, keeps))
        self._inv_hw: dict[tuple, torch.Tensor] = {}  # (HW, dtype, device) → 1/HW vector: average pooling as mv
        self._nat: NativeConv | None = None  # the native kernel for the current forward, or None
        self._blocks: list[nn.Module] | None = None
        self._forced_native: OrderedDict[tuple[int, int], tuple] = OrderedDict()  # (id(forcing), N) → (forcing, C arrays)
        self._forced_one: dict[int, tuple] = {}  # id(forcing) → (forcing, C arrays for one image)
        self._nets: dict[tuple[int, int], NativeNet | None] = {}  # input H×W → the packed network (None: not eligible)
        self._native_macs: torch.Tensor | None = None  # per image, what the last whole-network native call computed
        # Batch calls: block index → the N×G group masks it executed (for the trace; the batch
        # latency predictor replays the grouping rule on them). Reset by the model per forward.
        self.masks: dict[int, torch.Tensor] = {}

    @property
    def config(self) -> GateConfig:
        """The model's gate configuration (thresholds, group size, pooling); defaults for a static model."""
        return getattr(self.model, "gate_config", None) or _STATIC_CONFIG

    def clear(self) -> None:
        """Drop every packed weight and cached network (the weights or the thresholds changed)."""
        self.packs.clear()
        self._blocks = None
        self._forced_cache.clear()
        self._forced_native.clear()
        self._forced_one.clear()
        self._inv_hw.clear()
        self._nets.clear()

    def forward_native(self, x: torch.Tensor) -> tuple[torch.Tensor, Any, Any] | None:
        """The whole forward pass in one native call: (logits, ran, kept channels per block: bytes
        at batch 1 (one uint8 / native int32 per block), ``N×B`` tensors otherwise), or None where
        it does not apply (then the per-block path runs)."""
        self._native_macs = None
        shape = x.shape
        net = self._native_net(x, (shape[2], shape[3]), shape[0])
        if net is None:
            return None
        forced = self.model._forced
        gates = forced is None or forced.evaluate_gates
        if shape[0] == 1:  # the trace as bytes, made tensors when the trace is read
            arrays = None if forced is None else self._forced_arrays_one(forced, net.groups)
            logits, ran, kept, self._native_macs = net.one(x, arrays, gates)
            return logits, ran, kept
        arrays = None if forced is None else self._forced_arrays(forced, shape[0], net.groups)
        logits, ran, kept, self._native_macs = net(x, arrays, gates)
        return logits, ran.bool(), kept.long()

    @property
    def native_mflops(self) -> torch.Tensor | None:
        """Per image, the MFLOPs the last whole-network native call computed (None if it did not run)."""
        return None if self._native_macs is None else self._native_macs * 2e-6

    def _forced_arrays(self, forced, n: int, groups: list[int]) -> tuple:
        """A forcing in the native network's layout for ``n`` images, cached for the last few."""
        return _per_forcing(self._forced_native, forced, (id(forced), n), lambda: forced_arrays(forced, n, groups))

    def _forced_arrays_one(self, forced, groups: list[int]) -> tuple:
        """``_forced_arrays(forced, 1, groups)`` with one dict lookup on a hit: benchmarks and
        callers that cycle over per-sample forcings make this lookup on every batch-1 call."""
        hit = self._forced_one.get(id(forced))
        if hit is not None and hit[0] is forced:
            return hit[1]
        if len(self._forced_one) >= _FORCED_CACHE_SIZE:
            self._forced_one.clear()
        arrays = forced_arrays(forced, 1, groups)
        self._forced_one[id(forced)] = (forced, arrays)  # the forcing held: its id is not reused meanwhile
        return arrays

    def pool_one(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """A ``1×C×H×W`` input pooled to a ``C`` (``2C`` for avgmax) vector."""
        if kind != "avg":
            return pool(kind, x)[0]
        m = x[0].flatten(1)  # C×HW: a view in NCHW and in channels-last memory alike
        key = (m.shape[1], m.dtype, m.device)
        inv = self._inv_hw.get(key)
        if inv is None:
            inv = self._inv_hw[key] = torch.full((m.shape[1],), 1.0 / m.shape[1], dtype=m.dtype, device=m.device)
        return torch.mv(m, inv)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling + classifier; one ``addmv`` on the pooled vector at batch 1."""
        fc = self.model.fc
        if x.shape[0] != 1 or fc.bias is None:
            return self.model.forward_head(x)
        return torch.addmv(fc.bias, fc.weight, self.pool_one("avg", x))[None]

    # ---------------------------------------------------------------- packing
    def blocks(self) -> list[nn.Module]:
        """The model's blocks (cached: the list is rebuilt from its stages otherwise)."""
        if self._blocks is None:
            self._blocks = self.model.blocks()
        return self._blocks

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem on the folded weights (native kernel where eligible); also picks this pass's engine."""
        m = self.model
        # One decision per forward: the blocks follow the stem's (a batch-1 float32 CPU input).
        nat = self._nat = self._native_for(x)
        conv = None if nat is None else self.native_stem(nat)
        pack = self._stem_pack()
        if conv is not None:
            y = nat(x, conv, relu=True)  # reads x in its own layout
            return y if pack["maxpool"] is None else pack["maxpool"](y)
        x = m.normalize(x).contiguous(memory_format=_CL)
        return m.maxpool(F.conv2d(x, pack["w"], pack["b"], m.conv1.stride, m.conv1.padding).relu_())

    def _stem_pack(self) -> dict[str, Any]:
        pack = self.packs.get(-1)
        if pack is None:
            m = self.model
            w, b = fold_conv_bn(m.conv1, m.bn1)
            pack = self.packs[-1] = {"w": w.contiguous(memory_format=_CL), "b": b,
                                     "maxpool": None if isinstance(m.maxpool, nn.Identity) else m.maxpool}
        return pack

    def native_stem(self, nat: NativeConv) -> PackedConv | None:
        """The stem conv packed for the native kernel (None where it cannot run it)."""
        m, pack = self.model, self._stem_pack()
        conv = pack.get("native", False)
        if conv is False:
            ok = packable(m.conv1) and window_ok(m.conv1.out_channels)
            conv = pack["native"] = self._pack_stem(nat) if ok else None
        return conv

    def _pack_stem(self, nat: NativeConv):
        """The stem conv with the input normalisation folded in: weights scaled by 1/std, the bias
        shifted by the mean's response, and out-of-image taps reading the mean (so the folded conv
        sees normalised zeros there, as the unfolded one does)."""
        m, pack = self.model, self.packs[-1]
        w, b = pack["w"], pack["b"]
        norm = m.normalize
        if not isinstance(norm, Normalize):
            return nat.pack(w, b, m.conv1.stride[0], m.conv1.padding[0]) if isinstance(norm, nn.Identity) else None
        inv_std, mean = norm.inv_std.reshape(1, -1, 1, 1), norm.mean.reshape(1, -1, 1, 1)
        w_fold = w * inv_std
        b_fold = b - (w_fold * mean).sum((1, 2, 3))
        return nat.pack(w_fold, b_fold, m.conv1.stride[0], m.conv1.padding[0], pad_value=mean)

    @staticmethod
    def _native_for(x: torch.Tensor) -> NativeConv | None:
        """The native kernel if it may run ``x`` (one float32 CPU image, no autograd through it)."""
        if x.shape[0] != 1 or x.device.type != "cpu" or x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled()):
            return None
        return native()

    def _pack(self, i: int, block: nn.Module) -> dict[str, Any]:
        pack = self.packs.get(i)
        if pack is not None:
            return pack
        cfg = self.config
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        if isinstance(block, Bottleneck):
            convs.append((block.conv3, block.bn3))
        folded = [fold_conv_bn(c, b) for c, b in convs]
        pack = {
            "full": tuple(t for w, b in folded for t in (w.contiguous(memory_format=_CL), b)),
            "folded": folded,
            "subsets": OrderedDict(),
            "bottleneck": isinstance(block, Bottleneck),
            "layer_gate": _pack_gate(block.layer_gate),
            "channel_gate": _pack_gate(block.channel_gate),
            "gates_one": _pack_gates_one(block),
            "run_logit": _logit(cfg.layer_threshold),
            "keep_logit": _logit(cfg.channel_threshold),
        }
        if block.downsample is not None and not isinstance(block.downsample, PadShortcut):
            wd, bd = fold_conv_bn(block.downsample[0], block.downsample[1])
            pack["shortcut"] = (wd.contiguous(memory_format=_CL), bd, block.downsample[0].stride)
        # The native kernel adds the shortcut in its epilogue, so the block's output width must be
        # one the kernel writes unpadded (a multiple of its vector width).
        conv_mods = [c for c, _ in convs] + ([block.downsample[0]] if "shortcut" in pack else [])
        pack["convs"] = [c for c, _ in convs]
        pack["native_ok"] = all(packable(c) for c in conv_mods) and window_ok(convs[-1][0].out_channels)
        if isinstance(block.downsample, PadShortcut):
            # read in place by the kernel's epilogue: the channel window must fall on its vectors
            lo, cin = block.downsample.pad // 2, block.conv1.in_channels
            pack["pad_window"] = (block.downsample.stride, lo, convs[-1][0].out_channels)
            pack["native_ok"] &= window_ok(lo, cin)
        pack["native"] = OrderedDict()
        self.packs[i] = pack
        return pack

    def _weights(self, pack: dict[str, Any], keep_row: tuple[bool, ...] | None) -> tuple:
        """Folded weights for one kept group set: pre-packed, contiguous, cached."""
        if keep_row is None or all(keep_row):
            return pack["full"]
        return _lru(pack["subsets"], keep_row, lambda: self._pack_subset(pack, keep_row))

    def _pack_subset(self, pack: dict[str, Any], keep_row: tuple[bool, ...]) -> tuple:
        g = self.config.group_size
        idx = torch.tensor([k * g + j for k, on in enumerate(keep_row) if on for j in range(g)])
        (w1, b1), (w2, b2), *last = pack["folded"]
        if pack["bottleneck"]:
            (w3, b3), = last
            packed = (w1[idx], b1[idx], w2[idx][:, idx], b2[idx], w3[:, idx], b3)
        else:
            packed = (w1[idx], b1[idx], w2[:, idx], b2)
        return tuple(t.contiguous(memory_format=_CL) if t.dim() == 4 else t.contiguous() for t in packed)

    # ---------------------------------------------------------------- execution
    def block(self, i: int, block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, Any, Any]:
        """(output, run, kept): Python bool/int at batch 1, ``N`` tensors otherwise."""
        net = self._net_for_block(i, x)
        if net is not None and net.takes(i, x):  # the whole-network engine's own code for this block
            forced = self.model._forced
            arrays = None if forced is None else self._forced_arrays(forced, x.shape[0], net.groups)
            out, ran, kept = net.block(i, x, arrays, forced is None or forced.evaluate_gates)
            if x.shape[0] == 1:
                return out, bool(ran[0]), int(kept[0])
            return out, ran.bool(), kept.long()
        pack = self._pack(i, block)
        if x.shape[0] == 1:
            return self._block_one(i, block, pack, x)
        return self._block_batch(i, block, pack, x)

    def _net_for_block(self, i: int, x: torch.Tensor) -> NativeNet | None:
        """The packed network that would run block ``i`` on ``x`` in a forward pass, or None."""
        # the network input this block input comes from: undo the strides before block i
        scale = self.model.conv1.stride[0]
        for blk in self.blocks()[:i]:
            scale *= blk.stride
        return self._native_net(x, (x.shape[2] * scale, x.shape[3] * scale))

    def _native_net(self, x: torch.Tensor, input_hw: tuple[int, int], n: int | None = None) -> NativeNet | None:
        """The packed network for inputs of ``input_hw`` if the native engine runs ``x`` (``n``
        images, default ``x.shape[0]``; batch 1: ``whole_network``; batches: ``batch_native``;
        float32 CPU, no autograd), else None."""
        one = (x.shape[0] if n is None else n) == 1
        if not (self.whole_network if one else self.batch_native):
            return None
        # _native_for's checks, each attribute read once: on a batch-1 call every torch attribute
        # read costs ~0.5 µs, the pass before having evicted torch's state from the caches.
        if x.dtype != torch.float32 or not x.is_cpu or (x.requires_grad and torch.is_grad_enabled()):
            return None
        nat = native()
        if nat is None:
            return None
        net = self._nets.get(input_hw, False)
        if net is False:
            net = self._nets[input_hw] = build_native_net(self, nat, input_hw)
        return net

    def _shortcut(self, pack: dict[str, Any], block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        sc = pack.get("shortcut")
        if sc is not None:  # 1×1 conv shortcut: runs for every sample (the block changes shape)
            return F.conv2d(x, sc[0], sc[1], sc[2])
        return block.shortcut(x)

    def _skipped(self, pack: dict[str, Any], block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # A skipped block outputs relu(shortcut); identity/pad shortcuts of a post-ReLU input are >= 0.
        out = self._shortcut(pack, block, x)
        return out.relu_() if "shortcut" in pack else out

    def _block_one(self, i: int, block: nn.Module, pack: dict[str, Any], x: torch.Tensor):
        # Batch 1: decisions and scales as Python numbers (one .tolist() per gate), so each gate
        # costs a pooling and one or two addmm calls, and the block only what it runs.
        m, cfg = self.model, self.config
        forced = m._forced
        gates = pack["gates_one"] if forced is None or forced.evaluate_gates else None
        forced_run, forced_keep = self._forced_row(i)
        h = None
        run = True if forced_run is None else forced_run
        run_scale = None
        if gates is not None:
            h = torch.addmv(gates[1], gates[0], self.pool_one(cfg.pooling, x))  # both gates' first layers
            if gates[2] is not None:
                out = _head_one(h, gates[2]).tolist()
                if forced_run is None:
                    run = out[0] > pack["run_logit"]
                if cfg.scaling:
                    run_scale = _scale(out[1])
        nat = self._nat if pack["native_ok"] else None
        if not run:
            if nat is None:
                return self._skipped(pack, block, x), False, 0
            window = pack.get("pad_window")
            if window is not None:
                return nat.pad_subsample(x, *window), False, 0
            return self._shortcut_native(nat, pack, x, relu=True), False, 0

        keep_row, scale = None, None
        if pack["channel_gate"] is not None:
            groups = block.channel_gate.outputs
            keep_row = forced_keep
            out = None
            if h is not None:
                out_t = _head_one(h, gates[3])
                out = out_t.tolist()
                if keep_row is None:
                    keep_row = tuple(logit > pack["keep_logit"] for logit in out[:groups])
                    if not any(keep_row):  # a block with 0 channels would be a skip: keep the likeliest group
                        top = max(range(groups), key=out.__getitem__)
                        keep_row = tuple(k == top for k in range(groups))
            if keep_row is not None and not any(keep_row):
                keep_row = (True,) + keep_row[1:]
            if out is not None and cfg.scaling:
                # 2·sigmoid of the kept groups' scale outputs, one per kept channel (padded to the
                # native kernel's width): a cached index into the gate's output row (one gather)
                # rather than a Python list per call.
                scale = torch.index_select(out_t, 0, self._scale_index(pack, keep_row, groups, out_t.device)).sigmoid_().mul_(2.0)
        kept = block.conv1.out_channels if keep_row is None else sum(keep_row) * cfg.group_size
        if nat is not None:
            return self._block_native(nat, pack, block, x, keep_row, scale, run_scale), True, kept
        if scale is not None:
            scale = scale[:kept][None]
        res = _residual(pack["bottleneck"], block.stride, x, self._weights(pack, keep_row), scale)
        shortcut = self._shortcut(pack, block, x)
        if run_scale is None:
            return res.add_(shortcut).relu_(), True, kept
        return torch.add(shortcut, res, alpha=run_scale).relu_(), True, kept

    def _scale_index(self, pack: dict[str, Any], keep_row: tuple[bool, ...], groups: int, device: torch.device) -> torch.Tensor:
        """Column of each kept channel's scale in the channel gate's output row (cached per set),
        padded to the native kernel's kept width by repeating a column (padded channels are zero)."""
        g = self.config.group_size

        def make() -> torch.Tensor:
            cols = [groups + k for k, on in enumerate(keep_row) if on for _ in range(g)]
            return torch.tensor(cols + cols[:1] * (kept_width(len(cols)) - len(cols)), device=device)

        return _lru(pack.setdefault("scale_index", OrderedDict()), keep_row, make)

    def _block_native(self, nat: NativeConv, pack: dict[str, Any], block: nn.Module, x: torch.Tensor,
                      keep_row: tuple[bool, ...] | None, scale: torch.Tensor | None, run_scale: float | None) -> torch.Tensor:
        """A running block at batch 1 on the native kernel: ReLU and the channel scale fused into the
        inner convs, ``relu(shortcut + run_scale·residual)`` into the last, the shortcut read in place."""
        convs = _lru(pack["native"], keep_row if keep_row is not None and not all(keep_row) else None,
                     lambda: self._pack_native(nat, pack, keep_row))
        h = x
        for conv in convs[:-1]:
            h = nat(h, conv, relu=True, channel_scale=scale)
        alpha = 1.0 if run_scale is None else run_scale
        window = pack.get("pad_window")
        if window is not None:
            return nat(h, convs[-1], alpha=alpha, residual=x, residual_stride=window[0], residual_offset=window[1], relu=True)
        return nat(h, convs[-1], alpha=alpha, residual=self._shortcut_native(nat, pack, x), relu=True)

    def _shortcut_native(self, nat: NativeConv, pack: dict[str, Any], x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """Identity (``x`` itself; post-ReLU, so >= 0) or the 1×1 conv shortcut on the kernel."""
        sc = pack.get("shortcut")
        if sc is None:
            return x
        return nat(x, _lru(pack["native"], "shortcut", lambda: nat.pack(sc[0], sc[1], sc[2][0], 0)), relu=relu)

    def _pack_native(self, nat: NativeConv, pack: dict[str, Any], keep_row: tuple[bool, ...] | None) -> tuple:
        """The block's convs for one kept set in the native layout; each conv reads the previous
        one's padded output, so its input rows are padded to match."""
        w = self._weights(pack, keep_row)
        packed, cin, last = [], None, len(pack["convs"]) - 1
        for j, conv in enumerate(pack["convs"]):
            width = kept_width(w[2 * j].shape[0]) if j < last else None  # inner convs: the engine's kept widths
            p = nat.pack(w[2 * j], w[2 * j + 1], conv.stride[0], conv.padding[0], in_channels=cin, width=width)
            packed.append(p)
            cin = p.padded_out
        return tuple(packed)

    def _forced_row(self, i: int) -> tuple[bool | None, tuple[bool, ...] | None]:
        """Forced (run, kept groups) of block ``i`` for a batch-1 call, as Python values (cached per forcing)."""
        forced = self.model._forced
        if forced is None:
            return None, None
        def rows() -> tuple:
            fr = forced.block_run
            runs = None if fr is None else [bool(r) for r in (fr if fr.dim() == 1 else fr[0]).tolist()]
            keeps = None
            if forced.channel_keep is not None:
                keeps = [None if k is None else tuple(bool(v) for v in (k if k.dim() == 1 else k[0]).tolist()) for k in forced.channel_keep]
            return runs, keeps

        # Python rows per forcing, for the last few forcings: a benchmark cycling over per-sample
        # decisions would otherwise convert every block's tensors on every call.
        runs, keeps = _per_forcing(self._forced_cache, forced, id(forced), rows)
        return (None if runs is None else runs[i]), (None if keeps is None else keeps[i])

    def _block_batch(self, i: int, block: nn.Module, pack: dict[str, Any], x: torch.Tensor):
        m, cfg = self.model, self.config
        n = x.shape[0]
        gates_on = m._gates_on()
        run = m._forced_run(i, n, x.device)
        v = run_scale = None
        if pack["layer_gate"] is not None and gates_on:
            v = pool(cfg.pooling, x)
            out = _run_gate(pack["layer_gate"], v)
            if run is None:
                run = out[:, 0] > pack["run_logit"]
            if cfg.scaling:
                run_scale = 2.0 * torch.sigmoid(out[:, 1])
        run_idx = None if run is None or bool(run.all()) else run.nonzero().squeeze(1)
        n_run = n if run_idx is None else int(run_idx.numel())
        kept = torch.zeros(n, dtype=torch.long, device=x.device)
        if n_run == 0:
            return self._skipped(pack, block, x), torch.zeros(n, dtype=torch.bool, device=x.device), kept
        xr = x if run_idx is None else _gather(x, run_idx)

        keep, c_scale = None, None
        if pack["channel_gate"] is not None:
            groups = block.channel_gate.outputs
            keep = m._forced_keep(i, n, groups, x.device)
            if keep is not None and run_idx is not None:
                keep = keep[run_idx]
            if gates_on:
                vr = pool(cfg.pooling, xr) if v is None else (v if run_idx is None else v[run_idx])
                out = _run_gate(pack["channel_gate"], vr)
                logits = out[:, :groups]
                if keep is None:
                    keep = m._at_least_one(logits > pack["keep_logit"], logits)
                if cfg.scaling:
                    c_scale = 2.0 * torch.sigmoid(out[:, groups:])
            keep = m._at_least_one(keep, None)
        kept_r = keep.sum(1) * cfg.group_size if keep is not None else torch.full((n_run,), block.conv1.out_channels, device=x.device)
        if keep is not None:
            full = torch.zeros(n, keep.shape[1], dtype=torch.bool, device=x.device)
            full[slice(None) if run_idx is None else run_idx] = keep
            self.masks[i] = full
        res = self._residual_sets(pack, block, xr, keep, c_scale)
        if run_scale is not None:
            res = res * (run_scale if run_idx is None else run_scale[run_idx])[:, None, None, None]
        if run_idx is None:
            return res.add_(self._shortcut(pack, block, x)).relu_(), torch.ones(n, dtype=torch.bool, device=x.device), kept_r.long()
        # Scatter the running samples into the skipped ones' output. Under no_grad the block input
        # is ours to overwrite (identity shortcut), which saves a full copy per block.
        if "shortcut" in pack:  # conv shortcut: computed once for the whole batch
            sc = self._shortcut(pack, block, x)
            ran = res.add_(_gather(sc, run_idx)).relu_()
            out = sc.relu_()
        else:
            ran = res.add_(block.shortcut(xr)).relu_()
            out = block.shortcut(x)
            if torch.is_grad_enabled() and out is x:
                out = out.clone()
        out.index_copy_(0, run_idx, ran)
        kept[run_idx] = kept_r.long()
        return out, run, kept

    def _residual_sets(self, pack, block, x: torch.Tensor, keep: torch.Tensor | None, c_scale: torch.Tensor | None) -> torch.Tensor:
        g = self.config.group_size
        bottleneck, stride = pack["bottleneck"], block.stride
        if keep is None:
            return _residual(bottleneck, stride, x, pack["full"], None)
        sets, inverse = torch.unique(keep, dim=0, return_inverse=True)
        if sets.shape[0] > 1 and grouping_is_cheaper(_mflops_per_channel(block, x), g, keep, sets, inverse):
            out = None
            for s in range(sets.shape[0]):
                idx = (inverse == s).nonzero().squeeze(1)
                row = sets[s]
                scale = None if c_scale is None else c_scale[idx][:, row].repeat_interleave(g, 1)
                res = _residual(bottleneck, stride, _gather(x, idx), self._weights(pack, tuple(row.tolist())), scale)
                if out is None:
                    out = res.new_empty((x.shape[0],) + res.shape[1:]).contiguous(memory_format=_CL)
                out.index_copy_(0, idx, res)
            return out
        union = keep.any(0)
        mult = None
        if sets.shape[0] > 1 or c_scale is not None:
            mult = keep[:, union].to(x.dtype)
            if c_scale is not None:
                mult = mult * c_scale[:, union]
            mult = mult.repeat_interleave(g, 1)
        return _residual(bottleneck, stride, x, self._weights(pack, tuple(union.tolist())), mult)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]`` along the batch, channels-last kept. For a channels-last ``x`` it is a row gather of
    the NHWC view, contiguous rows, where advanced indexing walks the NCHW strides."""
    if x.dim() == 4 and x.is_contiguous(memory_format=_CL):
        return x.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)
    return x[idx]


def _per_forcing(cache: OrderedDict, forced, key, make):
    """``make()`` for one forcing, cached for the last few under ``key`` (built on ``id(forced)``),
    remade when that id now belongs to another forcing (the first was freed)."""
    hit = _lru(cache, key, lambda: (forced, make()), _FORCED_CACHE_SIZE)
    if hit[0] is not forced:
        hit = cache[key] = (forced, make())
    return hit[1]


def _lru(cache: OrderedDict, key, make, size: int = _PACK_CACHE_SIZE):
    """``cache[key]``, made by ``make()`` on a miss; at most ``size`` entries, least recently used out."""
    hit = cache.get(key)
    if hit is not None:
        cache.move_to_end(key)
        return hit
    hit = cache[key] = make()
    if len(cache) > size:
        cache.popitem(last=False)
    return hit


def _mflops_per_channel(block: nn.Module, x: torch.Tensor) -> float:
    hw_out = -(-x.shape[2] // block.stride) * -(-x.shape[3] // block.stride)
    out_channels = (block.conv3 if isinstance(block, Bottleneck) else block.conv2).out_channels
    return residual_mflops_per_channel(block.conv1.in_channels, out_channels, hw_out)


def residual_mflops_per_channel(in_channels: int, out_channels: int, hw_out: int) -> float:
    """Residual MFLOPs per kept inner channel (exact for basic blocks; linearised for bottlenecks)."""
    return 2.0 * 9 * (in_channels + out_channels) * hw_out / 1e6


def _residual(bottleneck: bool, stride: int, x: torch.Tensor, weights: tuple, scale: torch.Tensor | None) -> torch.Tensor:
    s = None if scale is None else scale[:, :, None, None]
    if bottleneck:
        w1, b1, w2, b2, w3, b3 = weights
        h = F.conv2d(x, w1, b1).relu_()
        if s is not None:
            h.mul_(s)
        h = F.conv2d(h, w2, b2, stride, 1).relu_()
        if s is not None:
            h.mul_(s)
        return F.conv2d(h, w3, b3)
    w1, b1, w2, b2 = weights
    h = F.conv2d(x, w1, b1, stride, 1).relu_()
    if s is not None:
        h.mul_(s)
    return F.conv2d(h, w2, b2, 1, 1)

"""The engine: hard execution of a ResNet in eval mode, where skipped blocks and channels are not
computed at all.

Everything is prepared on the first eval-mode pass and cached until ``train()``, ``eval()``,
``load_state_dict`` or ``.to()`` clears it (:mod:`._packs`). CIFAR ResNets on a CPU run the whole
forward pass in one native call, batches one image per thread (:mod:`._native_net`); every other
model, and these when :class:`~lcnas.engine.EngineOptions` turns it off, runs block by block:
batch 1 on plain control flow with Python decisions (:mod:`._batch_one`), batches grouped by path
on PyTorch's convolutions (:mod:`._grouped`). Every path takes its decisions by one rule
(:mod:`._decision`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from ._batch_one import block_one
from ._forced import FORCED_CACHE_SIZE, ForcedArrays, forced_arrays, gates_evaluated, per_forcing, python_rows
from ._grouped import block_batch
from ._native import NativeConv, PackedConv, native
from ._native_net import NativeNet, build_native_net, native_net_eligible
from ._options import EngineOptions
from ._packs import BlockPack, StemPack, pack_block, pack_stem
from ._pooling import VectorPool
from ._structure import GateSettings, gate_settings

__all__ = ["Engine"]

_CL = torch.channels_last
_UNSET: Any = object()


class Engine:
    """Runs a ResNet (``lcnas.models.ResNet``) in eval mode without computing skipped work: the
    engine of ``model.engine``.

    A gated model (``DynamicResNet``) runs its gates' decisions; a static ResNet (no gates) runs
    every block on the same engine, so static and dynamic models are timed on one engine. Which
    paths it may take is :attr:`options` (an :class:`~lcnas.engine.EngineOptions`).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.options = EngineOptions()
        self._stem: StemPack | None = None
        self._stem_native: PackedConv | None = _UNSET
        self._packs: dict[int, BlockPack] = {}
        self._blocks: list[Any] | None = None
        self._pool_one = VectorPool()
        self._nat: NativeConv | None = None  # the native kernel for the current per-block forward, or None
        self._forced_rows: OrderedDict[int, tuple] = OrderedDict()  # id(forcing) → (forcing, Python rows)
        self._forced_native: OrderedDict[tuple[int, int], tuple] = OrderedDict()  # (id(forcing), N) → (forcing, C arrays)
        self._forced_one: dict[int, tuple] = {}  # id(forcing) → (forcing, C arrays for one image)
        self._nets: dict[tuple[int, int], NativeNet | None] = {}  # input H×W → the packed network (None: not eligible)
        self._native_macs: torch.Tensor | None = None  # per image, what the last whole-network native call computed
        # Batch calls: block index → the N×G group masks it executed (for the trace; the batch
        # latency predictor replays the grouping rule on them). Reset by the model per forward.
        self.masks: dict[int, torch.Tensor] = {}

    @property
    def config(self) -> GateSettings:
        """The model's gate configuration (thresholds, group size, pooling); defaults for a static model."""
        return gate_settings(self.model)

    def clear(self) -> None:
        """Drop every packed weight and cached network (the weights or the thresholds changed)."""
        self._stem = None
        self._stem_native = _UNSET
        self._packs.clear()
        self._blocks = None
        self._forced_rows.clear()
        self._forced_native.clear()
        self._forced_one.clear()
        self._pool_one.clear()
        self._nets.clear()

    # ---------------------------------------------------------------- the whole network in one call
    def forward_native(self, x: torch.Tensor) -> tuple[torch.Tensor, Any, Any, dict[int, torch.Tensor] | None] | None:
        """The whole forward pass in one native call: (logits, ran, kept channels per block: bytes
        at batch 1 (one uint8 / native int32 per block), ``N×B`` tensors otherwise; and for a batch,
        per block with channel groups the ``N×G`` groups each image kept, None at batch 1), or
        None where it does not apply (then the per-block path runs)."""
        self._native_macs = None
        shape = x.shape
        net = self._native_net(x, (shape[2], shape[3]), shape[0])
        if net is None:
            return None
        forced = self.model._forced
        gates = gates_evaluated(forced)
        if shape[0] == 1:  # the trace as bytes, made tensors when the trace is read
            arrays = None if forced is None else self._forced_arrays_one(forced, net.groups)
            logits, ran, kept, self._native_macs = net.one(x, arrays, gates)
            return logits, ran, kept, None
        arrays = None if forced is None else self._forced_arrays(forced, shape[0], net.groups)
        logits_n, ran_n, kept_n, self._native_macs, groups = net(x, arrays, gates)
        return logits_n, ran_n.bool(), kept_n.long(), groups

    @property
    def native_mflops(self) -> torch.Tensor | None:
        """Per image, the MFLOPs the last whole-network native call computed (None if it did not run)."""
        return None if self._native_macs is None else self._native_macs * 2e-6

    @property
    def ran_native_convs(self) -> bool:
        """Whether the last per-block batch-1 pass ran its convolutions on the native kernel."""
        return self._nat is not None

    def native_network(self, input_hw: tuple[int, int]) -> NativeNet | None:
        """The model packed for the native network at inputs of ``input_hw`` (H, W), built on first
        use; None where the model is not eligible or the native kernel is unavailable."""
        nat = native()
        if nat is None:
            return None
        net: Any = self._nets.get(input_hw, False)
        if net is False:
            net = self._nets[input_hw] = self._build_net(nat, input_hw)
        return net

    def _build_net(self, nat: NativeConv, input_hw: tuple[int, int]) -> NativeNet | None:
        stem = self._stem_pack()
        packs = [self._pack(i, block) for i, block in enumerate(self.blocks())]
        if not native_net_eligible(stem, packs, self.model.fc):
            return None
        conv = self.native_stem(nat)  # weights with the input normalisation folded in
        if conv is None:
            return None
        return build_native_net(nat, conv, packs, self.model.fc, input_hw)

    def _native_net(self, x: torch.Tensor, input_hw: tuple[int, int], n: int | None = None) -> NativeNet | None:
        """The packed network for inputs of ``input_hw`` if the native engine runs ``x`` (``n``
        images, default ``x.shape[0]``; batch 1: ``options.whole_network``; batches:
        ``options.batch_native``; float32 CPU, no autograd), else None."""
        one = (x.shape[0] if n is None else n) == 1
        opts = self.options
        if not (opts.whole_network if one else opts.batch_native):
            return None
        # _native_for's checks, each attribute read once: on a batch-1 call every torch attribute
        # read costs ~0.5 µs, the pass before having evicted torch's state from the caches.
        if x.dtype != torch.float32 or not x.is_cpu or (x.requires_grad and torch.is_grad_enabled()):
            return None
        return self.native_network(input_hw)

    def _forced_arrays(self, forced: Any, n: int, groups: list[int]) -> ForcedArrays:
        """A forcing in the native network's layout for ``n`` images, cached for the last few."""
        return per_forcing(self._forced_native, forced, (id(forced), n), lambda: forced_arrays(forced, n, groups))

    def _forced_arrays_one(self, forced: Any, groups: list[int]) -> ForcedArrays:
        """``_forced_arrays(forced, 1, groups)`` with one dict lookup on a hit: benchmarks and
        callers that cycle over per-sample forcings make this lookup on every batch-1 call."""
        hit = self._forced_one.get(id(forced))
        if hit is not None and hit[0] is forced:
            return hit[1]
        if len(self._forced_one) >= FORCED_CACHE_SIZE:
            self._forced_one.clear()
        arrays = forced_arrays(forced, 1, groups)
        self._forced_one[id(forced)] = (forced, arrays)  # the forcing held: its id is not reused meanwhile
        return arrays

    # ---------------------------------------------------------------- stem and head
    def pool_one(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """A ``1×C×H×W`` input pooled to a ``C`` (``2C`` for avgmax) vector."""
        return self._pool_one(kind, x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling + classifier; one ``addmv`` on the pooled vector at batch 1."""
        fc = self.model.fc
        if x.shape[0] != 1 or fc.bias is None:
            return self.model.forward_head(x)
        return torch.addmv(fc.bias, fc.weight, self._pool_one("avg", x))[None]

    def blocks(self) -> list[Any]:
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
        if nat is not None and conv is not None:
            y = nat(x, conv, relu=True)  # reads x in its own layout
            return y if pack.maxpool is None else pack.maxpool(y)
        x = m.normalize(x).contiguous(memory_format=_CL)
        return m.maxpool(F.conv2d(x, pack.weight, pack.bias, pack.stride, pack.padding).relu_())

    def _stem_pack(self) -> StemPack:
        if self._stem is None:
            self._stem = pack_stem(self.model)
        return self._stem

    def native_stem(self, nat: NativeConv) -> PackedConv | None:
        """The stem conv packed for the native kernel (None where it cannot run it)."""
        if self._stem_native is _UNSET:
            self._stem_native = self._pack_stem(nat) if self._stem_pack().native_ok else None
        return self._stem_native

    def _pack_stem(self, nat: NativeConv) -> PackedConv | None:
        """The stem conv with the input normalisation folded in: weights scaled by 1/std, the bias
        shifted by the mean's response, and out-of-image taps reading the mean (so the folded conv
        sees normalised zeros there, as the unfolded one does)."""
        pack, norm = self._stem_pack(), self.model.normalize
        w, b = pack.weight, pack.bias
        if not (hasattr(norm, "mean") and hasattr(norm, "inv_std")):  # not a (mean, 1/std) normalisation
            return nat.pack(w, b, pack.stride[0], pack.padding[0]) if isinstance(norm, torch.nn.Identity) else None
        inv_std, mean = norm.inv_std.reshape(1, -1, 1, 1), norm.mean.reshape(1, -1, 1, 1)
        w_fold = w * inv_std
        b_fold = b - (w_fold * mean).sum((1, 2, 3))
        return nat.pack(w_fold, b_fold, pack.stride[0], pack.padding[0], pad_value=mean)

    @staticmethod
    def _native_for(x: torch.Tensor) -> NativeConv | None:
        """The native kernel if it may run ``x`` (one float32 CPU image, no autograd through it)."""
        if x.shape[0] != 1 or x.device.type != "cpu" or x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled()):
            return None
        return native()

    # ---------------------------------------------------------------- blocks
    def _pack(self, i: int, block: Any) -> BlockPack:
        pack = self._packs.get(i)
        if pack is None:
            pack = self._packs[i] = pack_block(block, self.config)
        return pack

    def block(self, i: int, block: Any, x: torch.Tensor) -> tuple[torch.Tensor, Any, Any]:
        """Block ``i`` on ``x`` under the model's current forcing: (output, ran, kept channels),
        Python bool/int at batch 1, ``N`` tensors otherwise (what the latency tables time)."""
        net = self._net_for_block(i, x)
        forced = self.model._forced
        if net is not None and net.takes(i, x):  # the whole-network engine's own code for this block
            arrays = None if forced is None else self._forced_arrays(forced, x.shape[0], net.groups)
            out, ran, kept = net.block(i, x, arrays, gates_evaluated(forced))
            if x.shape[0] == 1:
                return out, bool(ran[0]), int(kept[0])
            return out, ran.bool(), kept.long()
        pack = self._pack(i, block)
        if x.shape[0] == 1:
            forced_run, forced_keep = self._forced_row(i)
            return block_one(pack, block, x, self._nat, gates_evaluated(forced), forced_run, forced_keep,
                             self._pool_one)
        return block_batch(i, pack, block, x, forced, self.masks)

    def _net_for_block(self, i: int, x: torch.Tensor) -> NativeNet | None:
        """The packed network that would run block ``i`` on ``x`` in a forward pass, or None."""
        # the network input this block input comes from: undo the strides before block i
        scale = self.model.conv1.stride[0]
        for blk in self.blocks()[:i]:
            scale *= blk.stride
        return self._native_net(x, (x.shape[2] * scale, x.shape[3] * scale))

    def _forced_row(self, i: int) -> tuple[bool | None, tuple[bool, ...] | None]:
        """Forced (run, kept groups) of block ``i`` for a batch-1 call, as Python values (cached per forcing)."""
        forced = self.model._forced
        if forced is None:
            return None, None
        # Python rows per forcing, for the last few forcings: a benchmark cycling over per-sample
        # decisions would otherwise convert every block's tensors on every call.
        runs, keeps = per_forcing(self._forced_rows, forced, id(forced), lambda: python_rows(forced))
        return (None if runs is None else runs[i]), (None if keeps is None else keeps[i])

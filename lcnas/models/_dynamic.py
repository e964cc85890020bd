"""Gated ResNets that skip for real: hard execution in eval mode, masked execution in training.

Training (``model.train()``): every block is computed densely and its residual branch and inner
channels are multiplied by straight-through gate values (hard 0/1 forward, sigmoid gradient)
times the learned scales. Inference (``model.eval()``, ``execution="hard"``): skipped blocks and
channels are not computed: conv weights are BN-folded once, sliced to each kept channel set once
and cached (an LRU of pre-packed contiguous tensors per block), and samples that take the same
path are grouped (gather → run → scatter). ``execution="mask"`` runs the eval-mode masked
reference instead: everything computed, multiplied by zero (what SkipNet/ConvNet-AIG do).

Skipping a block means its output is its shortcut: the identity, the parameter-free "option A"
pad shortcut of CIFAR ResNets, or, for ImageNet ResNets, the 1×1 conv shortcut, which then still
runs (followed by the ReLU the block would apply) because the block changes shape.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._fold import fold_conv_bn
from ._gates import Gate, GateConfig, straight_through_gate
from ._resnet import BasicBlock, Bottleneck, PadShortcut, ResNet
from ._trace import ExecutionTrace

__all__ = ["DynamicResNet", "ForcedDecisions"]

# Batches whose samples keep different channel sets run either one conv per distinct set (gather →
# run → scatter) or one conv over the union of their channels with the rest masked. Each extra
# group costs a fixed overhead (gather, scatter, two more conv calls), expressed here as the
# MFLOPs per sample the convs would do in that time; benchmarks/grouping_rule.py measures it.
GROUP_OVERHEAD_MFLOPS = 0.5
_PACK_CACHE_SIZE = 128


@dataclass(frozen=True)
class ForcedDecisions:
    """Decisions imposed on a gated model (benchmarks, tests).

    ``block_run``: ``B`` or ``N×B`` bool (None: gates decide / all run). ``channel_keep``: per block a
    ``G`` or ``N×G`` bool group mask or None (all groups). ``evaluate_gates``: still run the gates
    (their cost and scales count) or bypass them (scales 1, no gate cost).
    """

    block_run: torch.Tensor | None = None
    channel_keep: tuple[torch.Tensor | None, ...] | None = None
    evaluate_gates: bool = False


class _Decision:
    __slots__ = ("run", "run_mult", "run_prob", "keep", "chan_mult", "kept_expected", "chan_scale", "run_scale")

    def __init__(self) -> None:
        self.run = self.run_mult = self.run_prob = self.keep = self.chan_mult = None
        self.kept_expected = self.chan_scale = self.run_scale = None


class DynamicResNet(ResNet):
    """A :class:`ResNet` whose blocks carry a Layer-Net and/or Channel-Net gate.

    The backbone's parameter names are unchanged (a static ``state_dict`` loads with
    :meth:`load_backbone`); gates live at ``layerX.Y.layer_gate`` / ``layerX.Y.channel_gate``.
    """

    def __init__(self, *, gating: str, gate_config: GateConfig, **resnet_kwargs: Any) -> None:
        super().__init__(**resnet_kwargs)
        if gating not in ("layer", "channel", "lc"):
            raise ValueError(f"DynamicResNet gating must be layer, channel or lc, got {gating!r}")
        self.gating = gating
        self.gate_config = gate_config
        self.execution = "hard"
        self.last_trace: ExecutionTrace | None = None
        self._forced: ForcedDecisions | None = None
        self._packs: dict[int, dict[str, Any]] = {}
        stages = set(gate_config.stages or range(1, len(self.stages) + 1))
        unknown = stages - set(range(1, len(self.stages) + 1))
        if unknown:
            raise ValueError(f"GateConfig.stages {sorted(unknown)} out of range: this model has stages 1..{len(self.stages)}")
        for s, name in enumerate(self.stages, 1):
            for block in getattr(self, name):
                block.layer_gate = block.channel_gate = None
                if s not in stages:
                    continue
                in_ch, width = block.conv1.in_channels, block.conv1.out_channels
                if gating in ("layer", "lc"):
                    block.layer_gate = Gate(in_ch, 1, gate_config)
                if gating in ("channel", "lc"):
                    if width % gate_config.group_size:
                        raise ValueError(f"group_size {gate_config.group_size} does not divide block width {width}")
                    block.channel_gate = Gate(in_ch, width // gate_config.group_size, gate_config)
        self.register_load_state_dict_post_hook(lambda module, keys: module._packs.clear())

    # ---------------------------------------------------------------- public knobs
    def set_thresholds(self, *, layer: float | None = None, channel: float | None = None) -> None:
        """The runtime compute knob: keep thresholds on gate probabilities (higher = less compute)."""
        kw = {k: v for k, v in (("layer_threshold", layer), ("channel_threshold", channel)) if v is not None}
        self.gate_config = replace(self.gate_config, **kw)

    @contextlib.contextmanager
    def forced(self, decisions: ForcedDecisions) -> Iterator[None]:
        """Run with imposed decisions inside the ``with`` block."""
        previous, self._forced = self._forced, decisions
        try:
            yield
        finally:
            self._forced = previous

    def gate_parameters(self) -> Iterator[nn.Parameter]:
        for block in self.blocks():
            for gate in (block.layer_gate, block.channel_gate):
                if gate is not None:
                    yield from gate.parameters()

    def load_backbone(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a static backbone's weights; gates keep their (all-on) initialisation."""
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        bad_missing = [k for k in missing if "_gate." not in k]
        if bad_missing or unexpected:
            raise RuntimeError(f"backbone weights do not fit: missing {bad_missing[:3]}, unexpected {list(unexpected)[:3]}")

    def train(self, mode: bool = True) -> DynamicResNet:
        self._packs.clear()
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .half(): folded weights are stale
        self._packs.clear()
        return super()._apply(fn, recurse)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_size = tuple(x.shape[1:])
        hard = not self.training and self.execution == "hard"
        x = self._stem_hard(x) if hard else self.forward_stem(x)
        records = []
        for i, block in enumerate(self.blocks()):
            x, rec = (self._block_hard if hard else self._block_masked)(i, block, x)
            records.append(rec)
        self.last_trace = self._trace(records, input_size, training=self.training)
        return self.forward_head(x)

    def _trace(self, records: list[_Decision], input_size, *, training: bool) -> ExecutionTrace:
        run = torch.stack([r.run for r in records], 1)
        kept = torch.stack([r.keep for r in records], 1)
        forced = self._forced
        run_prob = kept_exp = None
        if training:
            run_prob = torch.stack([r.run_prob for r in records], 1)
            kept_exp = torch.stack([r.kept_expected for r in records], 1)
        return ExecutionTrace(block_run=run.bool(), channels_kept=kept.long(),
                              gates_evaluated=forced is None or forced.evaluate_gates,
                              input_size=input_size, run_prob=run_prob, kept_expected=kept_exp)

    # ---------------------------------------------------------------- decisions
    def _forced_run(self, i: int, n: int, device) -> torch.Tensor | None:
        """Imposed run decisions ``n``, or None (the layer gate decides, or every block runs)."""
        f = self._forced
        if f is None or f.block_run is None:
            return None
        r = f.block_run.to(device=device, dtype=torch.bool)
        return (r[i].expand(n) if r.dim() == 1 else r[:, i]).contiguous()

    def _forced_keep(self, i: int, n: int, groups: int, device) -> torch.Tensor | None:
        """Imposed group masks ``n×G``, or None when the channel gate decides."""
        f = self._forced
        if f is None:
            return None
        k = None if f.channel_keep is None else f.channel_keep[i]
        if k is None:
            return None if f.evaluate_gates else torch.ones(n, groups, dtype=torch.bool, device=device)
        k = k.to(device=device, dtype=torch.bool)
        return k.expand(n, groups) if k.dim() == 1 else k

    def _gates_on(self) -> bool:
        return self._forced is None or self._forced.evaluate_gates

    @staticmethod
    def _at_least_one(keep: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        """Keep the most likely group where a sample would keep none (a block with 0 channels is a skip)."""
        empty = ~keep.any(1)
        if not bool(empty.any()):
            return keep
        top = logits.argmax(1) if logits is not None else torch.zeros(keep.shape[0], dtype=torch.long, device=keep.device)
        return keep | (F.one_hot(top, keep.shape[1]).bool() & empty[:, None])

    # ---------------------------------------------------------------- masked execution (training + reference)
    def _block_masked(self, i: int, block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, _Decision]:
        cfg, d, n = self.gate_config, _Decision(), x.shape[0]
        width = block.conv1.out_channels
        gates_on = self._gates_on()
        run_scale = None
        run_mult = torch.ones(n, device=x.device, dtype=x.dtype)
        d.run_prob = torch.ones(n, device=x.device)
        if block.layer_gate is not None and gates_on:
            logits, run_scale = block.layer_gate(x)
            logit = logits[:, 0]
            d.run_prob = torch.sigmoid(logit)
            g = straight_through_gate(logit, cfg.temperature) if self.training else (d.run_prob > cfg.layer_threshold).to(x.dtype)
            run_mult = g
        forced_run = self._forced_run(i, n, x.device)
        if forced_run is not None:
            run_mult = forced_run.to(x.dtype)
        d.run = run_mult.detach() > 0.5
        if run_scale is not None:
            run_mult = run_mult * run_scale[:, 0]

        chan_mult = None
        d.kept_expected = torch.full((n,), float(width), device=x.device)
        if block.channel_gate is not None:
            g_size = cfg.group_size
            groups = width // g_size
            c_logits = c_scale = g = None
            if gates_on:
                c_logits, c_scale = block.channel_gate(x)
                probs = torch.sigmoid(c_logits)
                d.kept_expected = probs.sum(1) * g_size
                if self.training:
                    g = straight_through_gate(c_logits, cfg.temperature)
                    hard = self._at_least_one(g.detach() > 0.5, c_logits)
                    g = g + (hard.to(g.dtype) - g.detach())  # forward: the fixed hard mask; backward: ST gradient
                else:
                    g = self._at_least_one(probs > cfg.channel_threshold, c_logits).to(x.dtype)
            forced_keep = self._forced_keep(i, n, groups, x.device)
            if forced_keep is not None:
                g = self._at_least_one(forced_keep, None).to(x.dtype)
            keep_groups = g.detach() > 0.5
            d.keep = keep_groups.sum(1) * g_size
            chan_mult = g.repeat_interleave(g_size, 1)
            if c_scale is not None:
                chan_mult = chan_mult * c_scale.repeat_interleave(g_size, 1)
        else:
            d.keep = torch.full((n,), width, device=x.device, dtype=torch.long)
        d.keep = torch.where(d.run, d.keep, torch.zeros_like(d.keep))

        res = _residual_masked(block, x, chan_mult)
        return F.relu(res * run_mult[:, None, None, None] + block.shortcut(x)), d

    # ---------------------------------------------------------------- hard execution (inference)
    def _stem_hard(self, x: torch.Tensor) -> torch.Tensor:
        pack = self._pack_stem()
        x = F.conv2d(self.normalize(x), pack["w"], pack["b"], self.conv1.stride, self.conv1.padding).relu_()
        return self.maxpool(x)

    def _pack_stem(self) -> dict[str, Any]:
        pack = self._packs.get(-1)
        if pack is None:
            w, b = fold_conv_bn(self.conv1, self.bn1)
            pack = self._packs[-1] = {"w": w, "b": b}
        return pack

    def _pack(self, i: int, block: nn.Module) -> dict[str, Any]:
        pack = self._packs.get(i)
        if pack is None:
            pack = {"subsets": OrderedDict()}
            pack["w1"], pack["b1"] = fold_conv_bn(block.conv1, block.bn1)
            pack["w2"], pack["b2"] = fold_conv_bn(block.conv2, block.bn2)
            if isinstance(block, Bottleneck):
                pack["w3"], pack["b3"] = fold_conv_bn(block.conv3, block.bn3)
            if block.downsample is not None and not isinstance(block.downsample, PadShortcut):
                pack["wd"], pack["bd"] = fold_conv_bn(block.downsample[0], block.downsample[1])
            self._packs[i] = pack
        return pack

    def _subset_weights(self, pack: dict[str, Any], block: nn.Module, keep_row: torch.Tensor | None) -> tuple:
        """Folded weights restricted to one kept group set, pre-packed contiguous and cached."""
        bottleneck = isinstance(block, Bottleneck)
        if keep_row is None or bool(keep_row.all()):
            return (pack["w1"], pack["b1"], pack["w2"], pack["b2"], pack.get("w3"), pack.get("b3"))
        key = tuple(keep_row.tolist())
        cache = pack["subsets"]
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        idx = keep_row.nonzero().squeeze(1).repeat_interleave(self.gate_config.group_size) * self.gate_config.group_size
        idx = idx + torch.arange(self.gate_config.group_size, device=idx.device).repeat(int(keep_row.sum()))
        w1, b1 = pack["w1"][idx].contiguous(), pack["b1"][idx].contiguous()
        if bottleneck:
            w2, b2 = pack["w2"][idx][:, idx].contiguous(), pack["b2"][idx].contiguous()
            w3, b3 = pack["w3"][:, idx].contiguous(), pack["b3"]
        else:
            w2, b2 = pack["w2"][:, idx].contiguous(), pack["b2"]
            w3 = b3 = None
        hit = cache[key] = (w1, b1, w2, b2, w3, b3)
        if len(cache) > _PACK_CACHE_SIZE:
            cache.popitem(last=False)
        return hit

    def _block_hard(self, i: int, block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, _Decision]:
        cfg, d, n = self.gate_config, _Decision(), x.shape[0]
        pack = self._pack(i, block)
        width = block.conv1.out_channels
        gates_on = self._gates_on()

        run = self._forced_run(i, n, x.device)
        run_scale = None
        if block.layer_gate is not None and gates_on:
            logits, run_scale = block.layer_gate(x)
            if run is None:
                run = logits[:, 0] > _logit(cfg.layer_threshold)
        d.run = run if run is not None else torch.ones(n, dtype=torch.bool, device=x.device)
        run_idx = None if run is None else run.nonzero().squeeze(1)
        n_run = n if run_idx is None else int(run_idx.numel())

        shortcut = self._shortcut_hard(pack, block, x)
        conv_shortcut = "wd" in pack
        d.keep = torch.zeros(n, dtype=torch.long, device=x.device)
        if n_run == 0:
            # A skipped block outputs relu(shortcut); identity/pad shortcuts of a post-ReLU input are >= 0 already.
            return shortcut.relu_() if conv_shortcut else shortcut, d
        xr = x if n_run == n else x.index_select(0, run_idx)

        keep, c_scale = None, None
        if block.channel_gate is not None:
            groups = width // cfg.group_size
            keep = self._forced_keep(i, n, groups, x.device)
            if keep is not None and n_run < n:
                keep = keep.index_select(0, run_idx)
            c_logits = None
            if gates_on:
                c_logits, c_scale = block.channel_gate(xr)
                if keep is None:
                    keep = c_logits > _logit(cfg.channel_threshold)
            keep = self._at_least_one(keep, c_logits) if keep is not None else None
        kept_r = (keep.sum(1) * cfg.group_size) if keep is not None else torch.full((n_run,), width, device=x.device, dtype=torch.long)
        if run_idx is None:
            d.keep = kept_r
        else:
            d.keep.index_copy_(0, run_idx, kept_r)

        res = self._residual_hard(pack, block, xr, keep, c_scale)
        if run_scale is not None:
            rs = run_scale[:, 0] if n_run == n else run_scale[:, 0].index_select(0, run_idx)
            res = res * rs[:, None, None, None]
        if n_run == n:
            return (res + shortcut).relu_(), d
        ran = (res + shortcut.index_select(0, run_idx)).relu_()
        out = shortcut if not torch.is_grad_enabled() else shortcut.clone()
        if conv_shortcut:
            out = out.relu_()
        out.index_copy_(0, run_idx, ran)
        return out, d

    def _shortcut_hard(self, pack: dict[str, Any], block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if "wd" in pack:  # conv shortcut: runs for every sample, skipped or not (the block changes shape)
            return F.conv2d(x, pack["wd"], pack["bd"], block.downsample[0].stride)
        return block.shortcut(x)

    def _residual_hard(self, pack, block, x: torch.Tensor, keep: torch.Tensor | None, c_scale: torch.Tensor | None) -> torch.Tensor:
        g = self.gate_config.group_size
        if keep is None:
            return _residual_folded(block, x, self._subset_weights(pack, block, None), None)
        if x.shape[0] == 1:
            row = keep[0]
            scale = None if c_scale is None else c_scale[:, row]
            scale = None if scale is None else scale.repeat_interleave(g, 1)
            return _residual_folded(block, x, self._subset_weights(pack, block, row), scale)
        sets, inverse = torch.unique(keep, dim=0, return_inverse=True)
        if sets.shape[0] == 1 or not self._group_is_cheaper(block, x, keep, sets, inverse):
            union = keep.any(0)
            mult = keep[:, union].to(x.dtype)
            if c_scale is not None:
                mult = mult * c_scale[:, union]
            mult = mult.repeat_interleave(g, 1)
            if sets.shape[0] == 1 and c_scale is None:
                mult = None
            return _residual_folded(block, x, self._subset_weights(pack, block, union), mult)
        out = None
        for s in range(sets.shape[0]):
            idx = (inverse == s).nonzero().squeeze(1)
            scale = None if c_scale is None else c_scale.index_select(0, idx)[:, sets[s]].repeat_interleave(g, 1)
            res = _residual_folded(block, x.index_select(0, idx), self._subset_weights(pack, block, sets[s]), scale)
            if out is None:
                out = res.new_empty((x.shape[0],) + res.shape[1:])
            out.index_copy_(0, idx, res)
        return out

    def _group_is_cheaper(self, block, x: torch.Tensor, keep: torch.Tensor, sets: torch.Tensor, inverse: torch.Tensor) -> bool:
        """The documented rule: per-set convs vs one conv over the union of channels, in MFLOPs.

        grouped = sum over sets of (samples × kept channels) × MFLOPs per channel + overhead × (sets - 1)
        union   = samples × union channels × MFLOPs per channel
        """
        hw_out = -(-x.shape[2] // block.stride) * -(-x.shape[3] // block.stride)
        out_channels = (block.conv3 if isinstance(block, Bottleneck) else block.conv2).out_channels
        # Residual MFLOPs per kept inner channel (exact for basic blocks; linearised for bottlenecks).
        per_channel = 2.0 * 9 * (block.conv1.in_channels + out_channels) * hw_out / 1e6
        g = self.gate_config.group_size
        counts = torch.bincount(inverse, minlength=sets.shape[0]).to(torch.float32)
        grouped = float((counts * sets.sum(1).to(torch.float32)).sum()) * g * per_channel
        grouped += GROUP_OVERHEAD_MFLOPS * (sets.shape[0] - 1)
        union = float(keep.any(0).sum()) * g * keep.shape[0] * per_channel
        return grouped < union


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _residual_masked(block: nn.Module, x: torch.Tensor, chan_mult: torch.Tensor | None) -> torch.Tensor:
    m = None if chan_mult is None else chan_mult[:, :, None, None]
    h = block.relu(block.bn1(block.conv1(x)))
    if m is not None:
        h = h * m
    if isinstance(block, Bottleneck):
        h = block.relu(block.bn2(block.conv2(h)))
        if m is not None:
            h = h * m
        return block.bn3(block.conv3(h))
    return block.bn2(block.conv2(h))


def _residual_folded(block: nn.Module, x: torch.Tensor, weights: Sequence, scale: torch.Tensor | None) -> torch.Tensor:
    w1, b1, w2, b2, w3, b3 = weights
    s = None if scale is None else scale[:, :, None, None]
    if isinstance(block, Bottleneck):
        h = F.conv2d(x, w1, b1).relu_()
        if s is not None:
            h = h * s
        h = F.conv2d(h, w2, b2, block.stride, 1).relu_()
        if s is not None:
            h = h * s
        return F.conv2d(h, w3, b3)
    h = F.conv2d(x, w1, b1, block.stride, 1).relu_()
    if s is not None:
        h = h * s
    return F.conv2d(h, w2, b2, 1, 1)

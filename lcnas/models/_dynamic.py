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

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..engine._decision import at_least_one, keep_groups, run_block, threshold_logit
from ..engine._forced import FORCED_CACHE_SIZE, forced_keep, forced_run, gates_evaluated
from ..errors import InputError
from ._gates import GATED, Gate, GateConfig, straight_through_gate
from ._resnet import Bottleneck, ResNet, check_images
from ._trace import ExecutionTrace

__all__ = ["DynamicResNet", "ForcedDecisions"]


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


class _Forcing:
    """The context manager of :meth:`DynamicResNet.forced`. A plain class writing the model's
    ``__dict__``: a generator context manager and ``nn.Module.__setattr__`` cost ~5 µs a call,
    a seventh of a fully skipped ResNet-20's batch-1 pass."""

    __slots__ = ("_state", "_decisions", "_previous")

    def __init__(self, state: dict[str, Any], decisions: ForcedDecisions) -> None:
        self._state, self._decisions = state, decisions

    def __enter__(self) -> None:
        self._previous = self._state["_forced"]
        self._state["_forced"] = self._decisions

    def __exit__(self, *exc: object) -> None:
        self._state["_forced"] = self._previous


class _GatedBlock(Protocol):
    """A :class:`~lcnas.models.BasicBlock` or :class:`~lcnas.models.Bottleneck` as the masked pass
    reads it, with the gates a :class:`DynamicResNet` sets (None on ungated blocks)."""

    @property
    def conv1(self) -> nn.Conv2d:
        """The first convolution (its ``out_channels`` is the gated width)."""

    @property
    def bn1(self) -> nn.BatchNorm2d:
        """The first convolution's BatchNorm."""

    @property
    def conv2(self) -> nn.Conv2d:
        """The second convolution."""

    @property
    def bn2(self) -> nn.BatchNorm2d:
        """The second convolution's BatchNorm."""

    @property
    def relu(self) -> nn.ReLU:
        """The block's ReLU."""

    @property
    def layer_gate(self) -> Gate | None:
        """The Layer-Net gate, or None."""

    @property
    def channel_gate(self) -> Gate | None:
        """The Channel-Net gate, or None."""

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The block's shortcut path."""


class _Decision:
    """One block's decisions in a forward pass: ``N`` tensors, or Python values on the batch-1 hard path."""

    __slots__ = ("run", "keep", "run_prob", "kept_expected", "st")

    def __init__(self, run: torch.Tensor | bool | None = None, keep: torch.Tensor | int | None = None) -> None:
        self.run, self.keep = run, keep
        self.run_prob: torch.Tensor | None = None  # the masked pass's expectations (training reads them)
        self.kept_expected: torch.Tensor | None = None
        self.st: list[torch.Tensor] = []  # straight-through decisions of this block's gates (training)


class DynamicResNet(ResNet):
    """A :class:`ResNet` whose blocks carry a Layer-Net and/or Channel-Net gate.

    The backbone's parameter names are unchanged (a static ``state_dict`` loads with
    :meth:`load_backbone`); gates live at ``layerX.Y.layer_gate`` / ``layerX.Y.channel_gate``.
    Hard execution caches BN-folded weights: ``train()``/``eval()``, ``load_state_dict`` and
    ``.to()`` refresh them; after editing weights in place in eval mode, call ``eval()`` again.
    """

    def __init__(self, *, gating: str, gate_config: GateConfig, **resnet_kwargs: Any) -> None:
        super().__init__(**resnet_kwargs)
        if gating not in GATED:
            raise ValueError(f"DynamicResNet gating must be one of {', '.join(GATED)}, got {gating!r}")
        self.gating = gating
        self.gate_config = gate_config
        self._last_trace: ExecutionTrace | None = None
        self._pending_trace: tuple | None = None
        self._fitting_forcings: dict[int, ForcedDecisions] = {}  # forcings checked against the model (forced())
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

    # ---------------------------------------------------------------- public knobs
    def set_thresholds(self, *, layer: float | None = None, channel: float | None = None) -> None:
        """The runtime compute knob: keep thresholds on gate probabilities (higher = less compute)."""
        cfg = self.gate_config
        self.gate_config = replace(cfg, layer_threshold=cfg.layer_threshold if layer is None else layer,
                                   channel_threshold=cfg.channel_threshold if channel is None else channel)
        self._engine.clear()

    def forced(self, decisions: ForcedDecisions) -> _Forcing:
        """Run with imposed decisions inside the ``with`` block (nested blocks restore the outer one).

        Raises:
            InputError: ``decisions`` do not fit the model (a ``block_run`` column per block, a
                ``channel_keep`` entry per block with a column per channel group of a block
                with a channel gate).
        """
        state = self.__dict__
        if state["_fitting_forcings"].get(id(decisions)) is not decisions:  # checked once per forcing
            self._check_forcing(decisions)
        return _Forcing(state, decisions)

    def _check_forcing(self, f: ForcedDecisions) -> None:
        """Every path reads a forcing by block index and group: one that does not fit would be read
        past its end (the native engine) or fail deep inside a pass. A forcing that fits is
        remembered (held, so its id is not reused): timed code enters the same one on every call."""
        blocks = self._gated_blocks()

        def fits(t: torch.Tensor, columns: int, what: str) -> None:
            if t.dim() not in (1, 2) or t.shape[-1] != columns:
                raise InputError(f"ForcedDecisions.{what} has shape {tuple(t.shape)}; expected ({columns},) or (N, {columns})")

        if f.block_run is not None:
            fits(f.block_run, len(blocks), "block_run")
        if f.channel_keep is not None and len(f.channel_keep) != len(blocks):
            raise InputError(f"ForcedDecisions.channel_keep has {len(f.channel_keep)} entries; the model has {len(blocks)} blocks "
                             "(one entry per block, None where its channels are not forced)")
        for i, (k, block) in enumerate(zip(f.channel_keep or (), blocks, strict=False)):
            if k is None:
                continue
            if block.channel_gate is None:
                raise InputError(f"ForcedDecisions.channel_keep[{i}] is given, but block {i} has no channel gate: pass None there")
            fits(k, block.conv1.out_channels // self.gate_config.group_size, f"channel_keep[{i}]")
        fitting = self.__dict__["_fitting_forcings"]
        if len(fitting) >= FORCED_CACHE_SIZE:
            fitting.clear()
        fitting[id(f)] = f

    def gate_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters of every layer and channel gate (for a separate optimizer group)."""
        for block in self._gated_blocks():
            for gate in (block.layer_gate, block.channel_gate):
                if gate is not None:
                    yield from gate.parameters()

    def load_backbone(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a static backbone's weights; gates keep their (all-on) initialisation."""
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        bad_missing = [k for k in missing if "_gate." not in k]
        if bad_missing or unexpected:
            raise RuntimeError(f"backbone weights do not fit: missing {bad_missing[:3]}, unexpected {list(unexpected)[:3]}")

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N×classes) of images ``x`` (N×C×H×W, float in [0, 1]; normalised inside).

        Training mode runs the masked (differentiable) pass; eval mode with ``execution="hard"``
        skips blocks and channels for real, through the native engine where it applies. Either
        way the decisions are recorded in :attr:`last_trace`.

        Raises:
            InputError: ``x`` is not a 4-d floating-point batch with the model's input channels.
        """
        check_images(self, x)
        hard = not self.training and self.execution == "hard"
        native = self._engine.forward_native(x) if hard else None
        if native is not None:  # the whole pass in one native call
            logits, ran, kept, groups = native
            # Plain attributes, set past nn.Module.__setattr__'s registry checks (a few µs each at
            # batch 1); the trace's records are built when it is first read.
            state = self.__dict__
            forced = state["_forced"]
            state["_pending_trace"] = ((ran, kept), x.shape, groups, gates_evaluated(forced))
            state["_last_trace"] = None
            return logits
        input_size = tuple(x.shape[1:])
        records = []
        masks: dict[int, torch.Tensor] | None = None
        if hard:
            self._engine.masks = masks = {}
            x = self._engine.stem(x)
            for i, block in enumerate(self._engine.blocks()):
                x, run, kept = self._engine.block(i, block, x)
                records.append(_Decision(run, kept))
        else:
            x = self.forward_stem(x)
            for i, block in enumerate(self._gated_blocks()):
                x, rec = self._block_masked(i, block, x)
                records.append(rec)
        # The trace is built when first read: at batch 1 its tensors cost as much as a block.
        self._pending_trace = (records, input_size, masks, self._gates_on())
        self._last_trace = None
        return self._engine.head(x) if hard else self.forward_head(x)

    @property
    def last_trace(self) -> ExecutionTrace | None:
        """What the last forward pass executed, per sample (None before the first)."""
        if self._pending_trace is not None:
            self._last_trace = self._trace(*self._pending_trace)
            self._pending_trace = None
        return self._last_trace

    def _trace(self, records: list[_Decision] | tuple, input_size, masks: dict[int, torch.Tensor] | None,
               gates_evaluated: bool) -> ExecutionTrace:
        if isinstance(records, tuple):  # the native engine's (ran, kept): bytes at batch 1, N×B tensors otherwise
            run, kept = records
            input_size = tuple(input_size[1:])  # the native path keeps the input's whole shape
            if isinstance(run, bytes):
                run = torch.frombuffer(bytearray(run), dtype=torch.uint8)[None]
                kept = torch.frombuffer(bytearray(kept), dtype=torch.int32)[None]
        elif isinstance(records[0].run, bool):  # batch-1 hard path records Python values
            run = torch.tensor([[r.run for r in records]])
            kept = torch.tensor([[r.keep for r in records]])
        else:  # batched paths record N tensors
            run = torch.stack([cast(torch.Tensor, r.run) for r in records], 1)
            kept = torch.stack([cast(torch.Tensor, r.keep) for r in records], 1)
        run_prob = kept_exp = st = None
        if self.training:  # training runs the masked pass, which records the expectations on every block
            run_prob = torch.stack([cast(torch.Tensor, r.run_prob) for r in records], 1)
            kept_exp = torch.stack([cast(torch.Tensor, r.kept_expected) for r in records], 1)
            st = tuple(g for r in records for g in r.st)
        group_masks = None
        if masks:  # hard execution of a batch: what each block's convs ran on
            group_masks = tuple(None if i not in masks else masks[i].cpu() for i in range(run.shape[1]))
        return ExecutionTrace(block_run=run.bool().cpu(), channels_kept=kept.long().cpu(), gates_evaluated=gates_evaluated,
                              input_size=input_size, run_prob=run_prob, kept_expected=kept_exp, gate_decisions=st,
                              group_masks=group_masks)

    # ---------------------------------------------------------------- decisions
    def _gates_on(self) -> bool:
        return gates_evaluated(self._forced)

    def _gated_blocks(self) -> list[_GatedBlock]:
        return cast("list[_GatedBlock]", self.blocks())  # the backbone's blocks, gates set in __init__

    # ---------------------------------------------------------------- masked execution (training + reference)
    def _block_masked(self, i: int, block: _GatedBlock, x: torch.Tensor) -> tuple[torch.Tensor, _Decision]:
        cfg, d, n = self.gate_config, _Decision(), x.shape[0]
        width = block.conv1.out_channels
        gates_on = self._gates_on()
        # Decisions by lcnas.engine._decision, as every execution path takes them. Training decides
        # on the straight-through gates' hard forward values (Gumbel noise added) instead of the
        # thresholds, under the same overrides: forced decisions, at least one group.
        run_scale = logit = st = None
        d.run_prob = torch.ones(n, device=x.device)
        if block.layer_gate is not None and gates_on:
            logits, run_scale = block.layer_gate(x)
            logit = logits[:, 0]
            d.run_prob = torch.sigmoid(logit)
            if self.training:
                st = straight_through_gate(logit, cfg.temperature)
                d.st.append(st[:, None])
        forced = forced_run(self._forced, i, n, x.device)  # the engine's reading of a forcing
        if st is not None and forced is None:
            run_mult = st
        else:
            run = run_block(None if self.training else logit, threshold_logit(cfg.layer_threshold), forced)
            run_mult = torch.ones(n, device=x.device, dtype=x.dtype) if run is None else run.to(x.dtype)
        ran = run_mult.detach() > 0.5
        d.run = ran
        if run_scale is not None:
            run_mult = run_mult * run_scale[:, 0]

        chan_mult = None
        d.kept_expected = torch.full((n,), float(width), device=x.device)
        if block.channel_gate is not None:
            g_size = cfg.group_size
            groups = width // g_size
            c_logits = c_scale = st = None
            if gates_on:
                c_logits, c_scale = block.channel_gate(x)
                d.kept_expected = torch.sigmoid(c_logits).sum(1) * g_size
                if self.training:
                    st = straight_through_gate(c_logits, cfg.temperature)
                    hard = at_least_one(st.detach() > 0.5, c_logits)
                    st = st + (hard.to(st.dtype) - st.detach())  # forward: the fixed hard mask; backward: ST gradient
                    d.st.append(st)
            forced_mask = forced_keep(self._forced, i, n, groups, x.device)
            if st is not None and forced_mask is None:
                g = st
            else:
                keep = keep_groups(None if self.training else c_logits, threshold_logit(cfg.channel_threshold), forced_mask)
                assert keep is not None  # gates evaluated or forced: never neither (a bypassed gate's forcing keeps every group)
                g = keep.to(x.dtype)
            kept = (g.detach() > 0.5).sum(1) * g_size
            chan_mult = g.repeat_interleave(g_size, 1)
            if c_scale is not None:
                chan_mult = chan_mult * c_scale.repeat_interleave(g_size, 1)
        else:
            kept = torch.full((n,), width, device=x.device, dtype=torch.long)
        d.keep = torch.where(ran, kept, torch.zeros_like(kept))

        res = _residual_masked(block, x, chan_mult)
        return F.relu(res * run_mult[:, None, None, None] + block.shortcut(x)), d


def _residual_masked(block: _GatedBlock, x: torch.Tensor, chan_mult: torch.Tensor | None) -> torch.Tensor:
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

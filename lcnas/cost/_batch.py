"""The architecture walk for samples run as one batch: what the engine executes for the batch as a
whole, where :func:`~lcnas.cost.walk` gives each sample's own cost.

In a batch, units run once for all samples (stem, head, gates, shortcuts), a block that only some
samples run gathers and scatters them, and samples whose channel sets differ run either one conv
per distinct set or one conv over the union of the sets, as :func:`grouping_is_cheaper` (the
engine's rule) picks with the FLOP formula's per-channel cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ._arch import ArchSpec, BlockSpec, GateSpec
from ._conv import residual_mflops_per_channel
from ._grouping import grouping_is_cheaper

__all__ = ["BatchCost", "BatchCostModel", "walk_batch"]


class BatchCostModel(Protocol):
    """Costs of the units of one batch pass; the batch latency predictor implements it.

    ``batch`` is the number of samples in the pass; ``samples`` how many of them a unit runs on.
    """

    def stem(self, arch: ArchSpec) -> float:
        """Cost of the stem for the whole batch; always paid."""

    def head(self, arch: ArchSpec) -> float:
        """Cost of the head for the whole batch; always paid."""

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """Cost of evaluating ``block``'s gate network ``gate`` for the batch."""

    def shortcut(self, block: BlockSpec) -> float:
        """Cost of ``block``'s shortcut for the whole batch; always paid."""

    def scatter(self, block: BlockSpec, samples: int, batch: int) -> float:
        """Cost of gathering ``samples`` of the ``batch`` samples into ``block``'s residual
        branch and scattering the result back."""

    def residual_at(self, block: BlockSpec, kept: float, samples: int, batch: int) -> float:
        """Cost of one pass of ``block``'s residual branch over ``samples`` of the ``batch``
        samples at ``kept`` inner channels."""


@dataclass(frozen=True)
class BatchCost:
    """Cost of one batch pass: ``total`` (every unit, gates included) and ``gates`` (their part)."""

    total: float
    gates: float


def walk_batch(arch: ArchSpec, cost: BatchCostModel, block_run: torch.Tensor, kept: torch.Tensor,
               group_masks: tuple[torch.Tensor | None, ...] | None = None, *,
               gates_evaluated: bool = True) -> BatchCost:
    """Cost of running the ``N`` samples of ``block_run`` (N×B bool) and ``kept`` (N×B inner
    channels) as one batch.

    Per block: its layer gate on the whole batch, its channel gate once when any sample runs the
    block (gates only when ``gates_evaluated``); the shortcut always; when only part of the batch
    runs, one gather and scatter of the running samples. The residual branch:

    - with ``group_masks`` (per block the ``N×G`` channel groups each sample kept, or None: what
      the grouped batch path records), the engine's rule is replayed on the running samples: one
      conv per distinct channel set (and one more gather and scatter) where
      :func:`grouping_is_cheaper` says so, else one conv over the union of the sets;
    - without, one pass over the running samples at their mean kept channels (engines where each
      image runs its own path, so per-sample work adds up).
    """
    n = block_run.shape[0]
    total = cost.stem(arch) + cost.head(arch)
    gates = 0.0
    for b in arch.blocks:
        ran = block_run[:, b.index]
        f = float(ran.float().mean())
        if gates_evaluated and b.layer_gate is not None:
            gates += cost.gate(b, b.layer_gate)
        if gates_evaluated and b.channel_gate is not None and f > 0:
            gates += cost.gate(b, b.channel_gate)
        total += cost.shortcut(b)
        if f == 0:
            continue
        n_run = int(ran.sum())
        scatter = cost.scatter(b, n_run, n)
        if f < 1:
            total += scatter
        masks = None if group_masks is None else group_masks[b.index]
        if masks is None:
            mean_kept = float(kept[:, b.index][ran].float().mean())
            total += cost.residual_at(b, mean_kept, n_run, n)
            continue
        keep = masks[ran]
        sets, inverse = torch.unique(keep, dim=0, return_inverse=True)
        per_channel = residual_mflops_per_channel(b.in_channels, b.out_channels, b.out_hw[0] * b.out_hw[1])
        if sets.shape[0] > 1 and grouping_is_cheaper(per_channel, b.group_size, keep, sets, inverse):
            counts = torch.bincount(inverse, minlength=sets.shape[0])
            for s_row, c in zip(sets, counts.tolist(), strict=True):
                total += cost.residual_at(b, float(s_row.sum() * b.group_size), c, n)
            total += scatter  # the sets' samples are gathered and scattered once more
        else:
            total += cost.residual_at(b, float(keep.any(0).sum() * b.group_size), n_run, n)
    return BatchCost(total=total + gates, gates=gates)

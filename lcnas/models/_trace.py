"""The per-sample execution trace a gated model records on every forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ExecutionTrace"]


@dataclass(frozen=True)
class ExecutionTrace:
    """Which blocks ran and how many inner channels each kept, per sample.

    Attributes:
        block_run: ``N×B`` bool, block ``b`` ran its residual branch for sample ``n``.
        channels_kept: ``N×B`` int64, inner channels computed (0 where the block was skipped).
        gates_evaluated: False when decisions were forced and the gates bypassed.
        input_size: (C, H, W) of the input, for the cost walk.
        run_prob: ``N×B`` gate probabilities (training only; differentiable; 1 where ungated).
        kept_expected: ``N×B`` expected kept channels (training only; differentiable).
        gate_decisions: every evaluated gate's ``N×outputs`` straight-through decisions (training
            only: 0/1 forward, the relaxed gradient backward), for rate terms.
        group_masks: per block, the ``N×G`` channel groups each sample kept (hard execution of a
            batch with channel gates; None elsewhere): which sets a batch ran, for the batch
            latency predictor, which replays the executor's grouping-or-union rule on them.
    """

    block_run: torch.Tensor
    channels_kept: torch.Tensor
    gates_evaluated: bool
    input_size: tuple[int, int, int]
    run_prob: torch.Tensor | None = None
    kept_expected: torch.Tensor | None = None
    gate_decisions: tuple[torch.Tensor, ...] | None = None
    group_masks: tuple[torch.Tensor | None, ...] | None = None

    @property
    def num_samples(self) -> int:
        """Number of samples ``N`` the trace covers."""
        return int(self.block_run.shape[0])

    def block_rate(self) -> torch.Tensor:
        """Fraction of samples that ran each block (``B``)."""
        return self.block_run.float().mean(0)

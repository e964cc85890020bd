"""The batch walk: what one batch pass executes, and the grouping rule it replays."""

from __future__ import annotations

import pytest
import torch

import lcnas
import lcnas.cost._grouping as grouping
from lcnas.cost import (
    ArchSpec,
    BlockSpec,
    GateSpec,
    describe,
    grouping_is_cheaper,
    walk_batch,
)


class _Units:
    """A batch cost model that prices every unit at 1 and records what the walk asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def stem(self, arch: ArchSpec) -> float:
        self.calls.append(("stem",))
        return 1.0

    def head(self, arch: ArchSpec) -> float:
        self.calls.append(("head",))
        return 1.0

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        self.calls.append(("gate", block.index, gate is block.layer_gate))
        return 1.0

    def shortcut(self, block: BlockSpec) -> float:
        self.calls.append(("shortcut", block.index))
        return 1.0

    def scatter(self, block: BlockSpec, samples: int, batch: int) -> float:
        self.calls.append(("scatter", block.index, samples, batch))
        return 1.0

    def residual_at(self, block: BlockSpec, kept: float, samples: int, batch: int) -> float:
        self.calls.append(("residual", block.index, kept, samples, batch))
        return 1.0


def _arch() -> ArchSpec:
    return describe(lcnas.create_model("resnet8", gating="lc", gate_config=lcnas.models.GateConfig(group_size=4)))


def test_units_of_a_batch_pass_without_group_masks():
    arch = _arch()
    run = torch.tensor([[True, False, True], [True, False, False], [True, False, True], [False, False, True]])
    kept = torch.tensor([[8, 0, 16], [4, 0, 0], [12, 0, 32], [0, 0, 48]])
    cost = _Units()
    parts = walk_batch(arch, cost, run, kept)
    residuals = [c for c in cost.calls if c[0] == "residual"]
    # block 0: three of four run at their mean kept channels; block 1: nobody; block 2: three
    assert residuals == [("residual", 0, 8.0, 3, 4), ("residual", 2, 32.0, 3, 4)]
    assert [c[1] for c in cost.calls if c[0] == "shortcut"] == [0, 1, 2]  # always paid
    # layer gates always, a channel gate only where some sample runs the block
    assert [c[1:] for c in cost.calls if c[0] == "gate"] == [(0, True), (0, False), (1, True), (2, True), (2, False)]
    assert parts.gates == 5.0
    assert parts.total == 2 + 3 + 2 + 5 + 2  # stem, head; shortcuts; scatters (blocks 0, 2); gates; residuals
    assert walk_batch(arch, _Units(), run, kept, gates_evaluated=False).gates == 0.0


@pytest.mark.parametrize("overhead_mflops,grouped", [(0.0, True), (1e9, False)])
def test_group_masks_replay_the_grouping_rule(monkeypatch, overhead_mflops, grouped):
    monkeypatch.setattr(grouping, "GROUP_OVERHEAD_MFLOPS", overhead_mflops)
    arch = _arch()
    n = 4
    run = torch.ones(n, len(arch.blocks), dtype=torch.bool)
    masks = []
    for b in arch.blocks:
        g = b.width // b.group_size
        k = torch.zeros(n, g, dtype=torch.bool)
        k[0::2, : g // 2] = True  # two samples keep the first half of the groups
        k[1::2, 0] = True  # two keep the first group only
        masks.append(k)
    kept = torch.stack([m.sum(1) * b.group_size for m, b in zip(masks, arch.blocks, strict=True)], 1)
    cost = _Units()
    walk_batch(arch, cost, run, kept, tuple(masks))
    for b in arch.blocks:
        residuals = [c[2:] for c in cost.calls if c[0] == "residual" and c[1] == b.index]
        scatters = [c for c in cost.calls if c[0] == "scatter" and c[1] == b.index]
        if grouped:  # one conv per set, its samples gathered and scattered once
            assert residuals == [(float(b.group_size), 2, n), (float(b.width // 2), 2, n)]
            assert len(scatters) == 1
        else:  # one conv over the union of the sets for every running sample
            assert residuals == [(float(b.width // 2), n, n)]


def test_grouping_rule_weighs_work_against_the_per_group_overhead():
    keep = torch.tensor([[True, True, True, True], [True, False, False, False]])
    sets, inverse = torch.unique(keep, dim=0, return_inverse=True)
    # grouped: (4 + 1) groups × 4 channels × per-channel cost + overhead; union: 2 × 16 channels
    assert grouping_is_cheaper(1.0, 4, keep, sets, inverse) == (20 + grouping.GROUP_OVERHEAD_MFLOPS < 32)
    assert grouping_is_cheaper(10.0, 4, keep, sets, inverse)  # 200 + overhead < 320
    assert not grouping_is_cheaper(0.1, 4, keep, sets, inverse)  # 2 + overhead > 3.2

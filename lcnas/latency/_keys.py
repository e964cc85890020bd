"""Readable table keys for the units of the architecture walk (one place, used by profiler and predictor)."""

from __future__ import annotations

from ..cost import BlockSpec, GateSpec

__all__ = ["block_key", "gate_key"]


def block_key(b: BlockSpec) -> str:
    """e.g. ``basic in16x32x32 w16 out32 s2 pad``."""
    return f"{b.kind} in{b.in_channels}x{b.in_hw[0]}x{b.in_hw[1]} w{b.width} out{b.out_channels} s{b.stride} {b.shortcut}"


def gate_key(b: BlockSpec, gate: GateSpec, pooling: str, *, pools: bool) -> str:
    """e.g. ``avg f16 h16 o2 pool``; ``pool`` when this gate pays for pooling the block input."""
    return f"{pooling} in{b.in_channels}x{b.in_hw[0]}x{b.in_hw[1]} f{gate.features} h{gate.hidden} o{gate.heads}{' pool' if pools else ''}"

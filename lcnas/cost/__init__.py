"""Per-sample compute cost from execution traces: one architecture walk, several cost models."""

from __future__ import annotations

from ._arch import ArchSpec, BlockSpec, CostModel, GateSpec, describe, walk
from ._flops import FlopsModel, expected_mflops, sample_mflops, static_mflops

__all__ = ["ArchSpec", "BlockSpec", "CostModel", "FlopsModel", "GateSpec", "describe", "expected_mflops",
           "sample_mflops", "static_mflops", "walk"]

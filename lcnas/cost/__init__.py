"""Per-sample compute cost from execution traces: one architecture walk, several cost models.

The FLOP formula (:func:`conv_flops`) and the grouped batch path's rule
(:func:`grouping_is_cheaper`) live here once; the engine and the latency predictor use them.
"""

from __future__ import annotations

from ._arch import ArchSpec, BlockSpec, CostModel, GateSpec, describe, walk
from ._conv import conv_flops, conv_mflops, residual_mflops_per_channel
from ._flops import FlopsModel, expected_mflops, sample_mflops, static_mflops
from ._grouping import GROUP_OVERHEAD_MFLOPS, grouping_is_cheaper

__all__ = ["GROUP_OVERHEAD_MFLOPS", "ArchSpec", "BlockSpec", "CostModel", "FlopsModel", "GateSpec", "conv_flops",
           "conv_mflops", "describe", "expected_mflops", "grouping_is_cheaper", "residual_mflops_per_channel",
           "sample_mflops", "static_mflops", "walk"]

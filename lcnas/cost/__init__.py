"""Per-sample compute cost from execution traces: one architecture walk, several cost models.

The FLOP formula (:func:`conv_flops`) and the grouped batch path's rule
(:func:`grouping_is_cheaper`) live here once; the engine, the FLOPs count and the latency
predictor use them. :func:`walk` gives each sample's cost; :func:`walk_batch` the cost of
samples run as one batch.
"""

from __future__ import annotations

from ._arch import ArchSpec, BlockSpec, CostModel, GateSpec, describe, walk
from ._batch import BatchCost, BatchCostModel, walk_batch
from ._conv import SET_CACHE_MIB, conv_flops, conv_mflops, kept_width, residual_mflops_per_channel
from ._flops import FlopsModel, expected_mflops, sample_mflops, static_mflops
from ._grouping import GROUP_OVERHEAD_MFLOPS, grouping_is_cheaper

__all__ = ["GROUP_OVERHEAD_MFLOPS", "SET_CACHE_MIB", "ArchSpec", "BatchCost", "BatchCostModel", "BlockSpec", "CostModel", "FlopsModel",
           "GateSpec", "conv_flops", "conv_mflops", "describe", "expected_mflops", "grouping_is_cheaper",
           "kept_width", "residual_mflops_per_channel", "sample_mflops", "static_mflops", "walk", "walk_batch"]

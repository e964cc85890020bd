"""lcnas's inference engine: hard execution of static and gated ResNets in ``eval()``, where skipped
blocks and channels are not computed at all (the native whole-network kernel, the per-block path and
grouped batches)."""

from ._executor import GROUP_OVERHEAD_MFLOPS, HardExecutor, grouping_is_cheaper, pool, residual_mflops_per_channel
from ._native import native_status
from ._decision import (at_least_one, gate_scale, gate_scales, keep_groups, keep_groups_one, run_block, run_block_one,
                        threshold_logit)

__all__ = ["GROUP_OVERHEAD_MFLOPS", "HardExecutor", "grouping_is_cheaper", "native_status", "pool", "residual_mflops_per_channel",
           "at_least_one", "gate_scale", "gate_scales", "keep_groups", "keep_groups_one", "run_block", "run_block_one",
           "threshold_logit"]

"""lcnas's inference engine: hard execution of static and gated ResNets in ``eval()``, where skipped
blocks and channels are not computed at all (the native whole-network kernel, the per-block path and
grouped batches)."""

from ._executor import GROUP_OVERHEAD_MFLOPS, HardExecutor, grouping_is_cheaper, pool, residual_mflops_per_channel
from ._native import native_status

__all__ = ["GROUP_OVERHEAD_MFLOPS", "HardExecutor", "grouping_is_cheaper", "native_status", "pool", "residual_mflops_per_channel"]

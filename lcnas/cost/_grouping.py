"""The grouped batch path's rule: one conv per distinct channel set, or one over their union.

The engine executes by it and the batch latency prediction replays it, from this one place.
"""

from __future__ import annotations

import torch

__all__ = ["GROUP_OVERHEAD_MFLOPS", "grouping_is_cheaper"]

# Each extra channel-set group in a batch costs a fixed overhead (gather, scatter, two more conv
# calls) that does no useful work. benchmarks/grouping_rule.py fits time = overhead + rate × MFLOPs
# per CIFAR stage and finds 28-47 MFLOPs of conv work on a 2-core AVX-512 CPU (see its JSON).
GROUP_OVERHEAD_MFLOPS = 30.0


def grouping_is_cheaper(per_channel_mflops: float, group_size: int, keep: torch.Tensor, sets: torch.Tensor,
                        inverse: torch.Tensor) -> bool:
    """Per-set convs vs one conv over the union of the batch's channel groups.

    grouped = sum over sets (samples × kept channels) × MFLOPs/channel + overhead × (sets - 1)
    union   = samples × union channels × MFLOPs/channel
    """
    counts = torch.bincount(inverse, minlength=sets.shape[0]).to(torch.float32)
    grouped = float((counts * sets.sum(1).to(torch.float32)).sum()) * group_size * per_channel_mflops
    grouped += GROUP_OVERHEAD_MFLOPS * (sets.shape[0] - 1)
    union = float(keep.any(0).sum()) * group_size * keep.shape[0] * per_channel_mflops
    return grouped < union

"""Per-iteration learning-rate schedules as multipliers of the peak rate."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["lr_multiplier"]


def lr_multiplier(schedule: str, *, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """``step -> factor`` for ``torch.optim.lr_scheduler.LambdaLR``.

    cosine: linear warm-up then cosine decay to 0. onecycle: linear up for 30 % of the run from
    peak/25, then cosine down to peak/1e4 (Smith & Topin's shape).
    """
    total_steps = max(total_steps, 1)
    if schedule == "cosine":
        def cosine(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return cosine
    if schedule == "onecycle":
        up = max(int(0.3 * total_steps), 1)

        def onecycle(step: int) -> float:
            if step < up:
                return 1 / 25 + (1 - 1 / 25) * step / up
            t = min((step - up) / max(total_steps - up, 1), 1.0)
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t))
        return onecycle
    raise ValueError(f"unknown schedule {schedule!r}")

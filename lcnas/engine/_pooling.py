"""A gate's input vector: the block input pooled over its pixels (avg, max or both)."""

from __future__ import annotations

import torch

__all__ = ["VectorPool", "pool"]


def pool(v_kind: str, x: torch.Tensor) -> torch.Tensor:
    """A gate's input vector (N×features) from ``x`` (N×C×H×W) by ``v_kind`` pooling: avg, max or avgmax."""
    if v_kind == "avg":
        return x.mean((2, 3))
    if v_kind == "max":
        return x.amax((2, 3))
    return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)


class VectorPool:
    """Batch-1 pooling with few calls: average pooling is one matrix-vector product over the
    activation's memory (any layout), with the ``1/HW`` vector cached per size, dtype and device."""

    def __init__(self) -> None:
        self._inv_hw: dict[tuple, torch.Tensor] = {}

    def clear(self) -> None:
        """Drop the cached vectors."""
        self._inv_hw.clear()

    def __call__(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """A ``1×C×H×W`` input pooled to a ``C`` (``2C`` for avgmax) vector."""
        if kind != "avg":
            return pool(kind, x)[0]
        m = x[0].flatten(1)  # C×HW: a view in NCHW and in channels-last memory alike
        key = (m.shape[1], m.dtype, m.device)
        inv = self._inv_hw.get(key)
        if inv is None:
            inv = self._inv_hw[key] = torch.full((m.shape[1],), 1.0 / m.shape[1], dtype=m.dtype, device=m.device)
        return torch.mv(m, inv)

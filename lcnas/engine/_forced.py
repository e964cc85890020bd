"""Forced decisions (``block_run``, ``channel_keep``, ``evaluate_gates``) in each path's form:
``N``/``N×G`` tensors for the grouped path, Python rows for batch 1, C arrays for the native network.

Conversions are cached per forcing for the last few forcings: a benchmark cycling over a few hundred
(16 samples × every level) must not rebuild them on every call (~0.1 ms at batch 1).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from ._packs import lru

__all__ = ["FORCED_CACHE_SIZE", "ForcedArrays", "forced_arrays", "forced_keep", "forced_run", "gates_evaluated", "per_forcing",
           "python_rows"]

FORCED_CACHE_SIZE = 1024

# (run, keep offsets, keep bits) pointers for the C side, then the tensors that own them
ForcedArrays = tuple


def gates_evaluated(forced: Any) -> bool:
    """Whether the gates run under ``forced`` (None: no forcing, the gates decide)."""
    return forced is None or forced.evaluate_gates


def forced_run(forced: Any, i: int, n: int, device: torch.device) -> torch.Tensor | None:
    """Imposed run decisions of block ``i`` for ``n`` samples, or None (the layer gate decides, or every block runs)."""
    if forced is None or forced.block_run is None:
        return None
    r = forced.block_run.to(device=device, dtype=torch.bool)
    return (r[i].expand(n) if r.dim() == 1 else r[:, i]).contiguous()


def forced_keep(forced: Any, i: int, n: int, groups: int, device: torch.device) -> torch.Tensor | None:
    """Imposed group masks ``n×G`` of block ``i``, or None when the channel gate decides."""
    if forced is None:
        return None
    k = None if forced.channel_keep is None else forced.channel_keep[i]
    if k is None:
        return None if forced.evaluate_gates else torch.ones(n, groups, dtype=torch.bool, device=device)
    k = k.to(device=device, dtype=torch.bool)
    return k.expand(n, groups) if k.dim() == 1 else k


def python_rows(forced: Any) -> tuple[list[bool] | None, list[tuple[bool, ...] | None] | None]:
    """A forcing's first sample as Python values: (run per block, kept groups per block), each None when not forced."""
    fr = forced.block_run
    runs = None if fr is None else [bool(r) for r in (fr if fr.dim() == 1 else fr[0]).tolist()]
    keeps = None
    if forced.channel_keep is not None:
        keeps = [None if k is None else tuple(bool(v) for v in (k if k.dim() == 1 else k[0]).tolist()) for k in forced.channel_keep]
    return runs, keeps


def per_forcing(cache: OrderedDict, forced: Any, key: Any, make: Any) -> Any:
    """``make()`` for one forcing, cached for the last few under ``key`` (built on ``id(forced)``),
    remade when that id now belongs to another forcing (the first was freed)."""
    hit = lru(cache, key, lambda: (forced, make()), FORCED_CACHE_SIZE)
    if hit[0] is not forced:
        hit = cache[key] = (forced, make())
    return hit[1]


def _rows(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
    """A forced ``D`` or ``N×D`` tensor as ``n×D`` (batch 1 takes the first row, as the per-block path does)."""
    if t.dim() == 1:
        return t.expand(n, -1)
    if t.shape[0] == n:
        return t
    if n == 1:
        return t[:1]
    raise ValueError(f"ForcedDecisions.{what} has {t.shape[0]} rows for a batch of {n}: give one row or one per sample")


def forced_arrays(forced: Any, n: int, groups: list[int]) -> ForcedArrays:
    """A forcing for ``n`` images in the native network's layout: pointers to (run ``n×B`` int8,
    -1 = not forced; keep offsets ``n×B`` int32 into the bits, -1 = not forced; keep bits uint8,
    block-major), then the tensors that own them."""
    nb = len(groups)
    run = torch.full((n, nb), -1, dtype=torch.int8)
    if forced.block_run is not None:
        run = _rows(forced.block_run.to(torch.int8), n, "block_run").contiguous()
    offsets = torch.full((n, nb), -1, dtype=torch.int32)
    bits, base = [], 0
    for i, k in enumerate(forced.channel_keep or ()):
        if k is None:
            continue
        k = _rows(k.to(torch.uint8), n, f"channel_keep[{i}]").contiguous()
        if k.shape[1] != groups[i]:
            raise ValueError(f"ForcedDecisions.channel_keep[{i}] has {k.shape[1]} groups, block {i} has {groups[i]}")
        offsets[:, i] = base + torch.arange(n, dtype=torch.int32) * groups[i]
        bits.append(k.reshape(-1))
        base += k.numel()
    bits_t = torch.cat(bits) if bits else torch.zeros(1, dtype=torch.uint8)
    return (run.data_ptr(), offsets.data_ptr(), bits_t.data_ptr(), (run, offsets, bits_t))

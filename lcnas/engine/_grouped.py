"""Batches on PyTorch's convolutions, samples grouped by path.

The samples that run a block are gathered, run and scattered back; among them, samples with
different channel sets either run one conv per distinct set or one conv over the union of their
sets with the rest masked, whichever :func:`lcnas.cost.grouping_is_cheaper` predicts is faster.
"""

from __future__ import annotations

from typing import Any

import torch

from ..cost import grouping_is_cheaper, residual_mflops_per_channel
from ._decision import gate_scales, keep_groups, run_block
from ._forced import forced_keep, forced_run, gates_evaluated
from ._packs import BlockPack, GateLayers, subset_weights
from ._pooling import pool
from ._residual import gather, residual, shortcut, skipped

__all__ = ["block_batch"]

_CL = torch.channels_last


def _run_gate(packed: GateLayers, v: torch.Tensor) -> torch.Tensor:
    (w, b), *rest = packed
    out = torch.addmm(b, v, w)
    for w2, b2 in rest:
        out = torch.addmm(b2, out.relu_(), w2)
    return out


def block_batch(i: int, pack: BlockPack, block: Any, x: torch.Tensor, forced: Any,
                masks: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, ran ``N`` bool, kept channels ``N``) of block ``i`` on a batch under the forcing
    ``forced`` (or None); the ``N×G`` group masks it ran on go to ``masks[i]``."""
    n = x.shape[0]
    gates_on = gates_evaluated(forced)
    v = run_scale = layer_logits = None
    if pack.layer_gate is not None and gates_on:
        v = pool(pack.pooling, x)
        out = _run_gate(pack.layer_gate, v)
        layer_logits = out[:, 0]
        if pack.scaling:
            run_scale = gate_scales(out[:, 1])
    run = run_block(layer_logits, pack.run_logit, forced_run(forced, i, n, x.device))
    run_idx = None if run is None or bool(run.all()) else run.nonzero().squeeze(1)
    n_run = n if run_idx is None else int(run_idx.numel())
    kept = torch.zeros(n, dtype=torch.long, device=x.device)
    if n_run == 0:
        return skipped(pack, block, x), torch.zeros(n, dtype=torch.bool, device=x.device), kept
    xr = x if run_idx is None else gather(x, run_idx)

    keep, c_scale = None, None
    if pack.channel_gate is not None:
        groups = pack.groups
        forced_mask = forced_keep(forced, i, n, groups, x.device)
        if forced_mask is not None and run_idx is not None:
            forced_mask = forced_mask[run_idx]
        logits = None
        if gates_on:
            vr = pool(pack.pooling, xr) if v is None else (v if run_idx is None else v[run_idx])
            out = _run_gate(pack.channel_gate, vr)
            logits = out[:, :groups]
            if pack.scaling:
                c_scale = gate_scales(out[:, groups:])
        keep = keep_groups(logits, pack.keep_logit, forced_mask)
    kept_r = keep.sum(1) * pack.group_size if keep is not None else torch.full((n_run,), pack.width, device=x.device)
    if keep is not None:
        full = torch.zeros(n, keep.shape[1], dtype=torch.bool, device=x.device)
        full[slice(None) if run_idx is None else run_idx] = keep
        masks[i] = full
    res = _residual_sets(pack, xr, keep, c_scale)
    if run_scale is not None:
        res = res * (run_scale if run_idx is None else run_scale[run_idx])[:, None, None, None]
    if run_idx is None:
        return res.add_(shortcut(pack, block, x)).relu_(), torch.ones(n, dtype=torch.bool, device=x.device), kept_r.long()
    assert run is not None  # run_idx was taken from it
    # Scatter the running samples into the skipped ones' output. Under no_grad the block input
    # is ours to overwrite (identity shortcut), which saves a full copy per block.
    if pack.shortcut is not None:  # conv shortcut: computed once for the whole batch
        sc = shortcut(pack, block, x)
        ran = res.add_(gather(sc, run_idx)).relu_()
        out = sc.relu_()
    else:
        ran = res.add_(block.shortcut(xr)).relu_()
        out = block.shortcut(x)
        if torch.is_grad_enabled() and out is x:
            out = out.clone()
    out.index_copy_(0, run_idx, ran)
    kept[run_idx] = kept_r.long()
    return out, run, kept


def _mflops_per_channel(pack: BlockPack, x: torch.Tensor) -> float:
    hw_out = -(-x.shape[2] // pack.stride) * -(-x.shape[3] // pack.stride)
    return residual_mflops_per_channel(pack.in_channels, pack.out_channels, hw_out)


def _residual_sets(pack: BlockPack, x: torch.Tensor, keep: torch.Tensor | None, c_scale: torch.Tensor | None) -> torch.Tensor:
    g = pack.group_size
    bottleneck, stride = pack.bottleneck, pack.stride
    if keep is None:
        return residual(bottleneck, stride, x, pack.full, None)
    sets, inverse = torch.unique(keep, dim=0, return_inverse=True)
    if sets.shape[0] > 1 and grouping_is_cheaper(_mflops_per_channel(pack, x), g, keep, sets, inverse):
        out = None
        for s in range(sets.shape[0]):
            idx = (inverse == s).nonzero().squeeze(1)
            row = sets[s]
            scale = None if c_scale is None else c_scale[idx][:, row].repeat_interleave(g, 1)
            res = residual(bottleneck, stride, gather(x, idx), subset_weights(pack, tuple(row.tolist())), scale)
            if out is None:
                out = res.new_empty((x.shape[0],) + res.shape[1:]).contiguous(memory_format=_CL)
            out.index_copy_(0, idx, res)
        assert out is not None  # more than one set ran
        return out
    union = keep.any(0)
    mult = None
    if sets.shape[0] > 1 or c_scale is not None:
        mult = keep[:, union].to(x.dtype)
        if c_scale is not None:
            mult = mult * c_scale[:, union]
        mult = mult.repeat_interleave(g, 1)
    return residual(bottleneck, stride, x, subset_weights(pack, tuple(union.tolist())), mult)

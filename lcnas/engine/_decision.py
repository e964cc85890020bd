"""The gate decision rule: one specification for every execution path.

A gated block takes two decisions per sample, from its gates' outputs and any forced decisions:

- **run** (layer gate): the residual branch runs when the gate's keep logit is above the
  threshold's logit, ``logit > threshold_logit(p)`` (the same as ``sigmoid(logit) > p``, without
  sigmoid's rounding), compared in double precision (a float32 logit widened, never the threshold
  narrowed). A forced decision overrides the gate. A block with neither a gate that is evaluated
  nor a forced decision runs.
- **keep groups** (channel gate, a running block): group ``k`` is kept when its logit is above the
  threshold's logit; a forced mask overrides the gate. A block keeps at least one group (one with
  no channels would be a skip): where a sample would keep none, it keeps its likeliest group (the
  highest logit, the first on ties) when the decision came from the gate, group 0 when it came
  from a forced mask. With neither, every group is kept.
- **scales** (when the gate config scales): ``2·sigmoid(z)`` of the gate's scale outputs, for the
  layer gate's one output and each kept group's. They apply whenever the gates are evaluated, also
  under forced decisions; gates bypassed (``ForcedDecisions(evaluate_gates=False)``) mean scale 1.

How a :class:`~lcnas.models.ForcedDecisions` becomes the ``forced`` arguments (per block ``i``;
``lcnas.engine._forced`` converts it for every path): ``block_run`` None is no forced run;
``channel_keep`` None (or its entry ``i`` None) is no forced mask when the gates are evaluated, and
every group kept (an all-true mask) when they are bypassed.

Functions (tensor forms are TorchScript-compatible; the export scripts them):

- ``threshold_logit(p) -> float``: a keep threshold on a probability as a logit, ``log(p/(1-p))``.
- ``gate_scale(z) -> float``: ``2·sigmoid(z)`` of one number, without overflow.
- ``gate_scales(z) -> Tensor``: ``2·sigmoid(z)`` elementwise.
- ``run_block(logits, threshold_logit, forced) -> Tensor | None``: ``N`` bool from ``N`` logits
  (None: no gate evaluated) and an ``N`` forced bool (None: not forced); None when neither is
  given (every sample runs).
- ``keep_groups(logits, threshold_logit, forced) -> Tensor | None``: ``N×G`` bool from ``N×G``
  logits and an ``N×G`` forced mask (either None), at least one group per row; None when neither
  is given (every group kept).
- ``at_least_one(keep, logits) -> Tensor``: the "at least one group" step alone, for a mask taken
  elsewhere (training's straight-through decisions): the likeliest group by ``logits``, else group 0.
- ``run_block_one(logit, threshold_logit, forced) -> bool`` and
  ``keep_groups_one(logits, threshold_logit, forced) -> tuple[bool, ...] | None``: the batch-1
  forms on Python numbers (a list of ``G`` logits, a tuple of ``G`` forced bools), equal to the
  tensor forms on one row.

The native whole-network engine (``_native_net.cpp``, its ``block()`` function) cannot import this
module: it implements the same rule in C++ and is held to it by ``tests/engine_tests/test_parity.py``,
which runs every path on identical inputs and forcings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["at_least_one", "gate_scale", "gate_scales", "keep_groups", "keep_groups_one", "run_block",
           "run_block_one", "threshold_logit"]


def threshold_logit(p: float) -> float:
    """The logit of keep threshold ``p`` (a probability in (0, 1)): decisions compare logits against it."""
    return math.log(p / (1.0 - p))


def gate_scale(z: float) -> float:
    """``2·sigmoid(z)`` of one gate output, without overflow for large ``|z|``: a kept block's or group's scale."""
    if z >= 0:
        return 2.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return 2.0 * e / (1.0 + e)


def gate_scales(z: torch.Tensor) -> torch.Tensor:
    """``2·sigmoid(z)`` elementwise: the scales of a gate's scale outputs ``z``, in (0, 2)."""
    return 2.0 * torch.sigmoid(z)


def _above(logits: torch.Tensor, threshold_logit: float) -> torch.Tensor:
    # Widened to double: comparing a float32 tensor with a Python float narrows the float instead.
    return logits.to(torch.float64) > threshold_logit


def run_block(logits: torch.Tensor | None, threshold_logit: float,
              forced: torch.Tensor | None) -> torch.Tensor | None:
    """Which samples run the block's residual branch (``N`` bool), or None where every sample runs.

    Args:
        logits: the layer gate's ``N`` keep logits, or None where no gate was evaluated.
        threshold_logit: :func:`threshold_logit` of the layer threshold.
        forced: ``N`` forced run decisions (any dtype, nonzero runs) or None; they override the gate.
    """
    if forced is not None:
        return forced.to(torch.bool)
    if logits is not None:
        return _above(logits, threshold_logit)
    return None


def at_least_one(keep: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
    """``keep`` (``N×G`` bool) with one group added to each row that keeps none: the likeliest by
    ``logits`` (``N×G``; the first on ties), or group 0 without logits."""
    empty = ~keep.any(1)
    if not bool(empty.any()):
        return keep
    if logits is not None:
        top = logits.argmax(1)
    else:
        top = torch.zeros(keep.shape[0], dtype=torch.long, device=keep.device)
    return keep | (F.one_hot(top, keep.shape[1]).to(torch.bool) & empty[:, None])


def keep_groups(logits: torch.Tensor | None, threshold_logit: float,
                forced: torch.Tensor | None) -> torch.Tensor | None:
    """The channel groups each running sample keeps (``N×G`` bool, at least one per row), or None
    where nothing decides (every group kept).

    Args:
        logits: the channel gate's ``N×G`` keep logits, or None where no gate was evaluated.
        threshold_logit: :func:`threshold_logit` of the channel threshold.
        forced: an ``N×G`` forced mask (any dtype, nonzero keeps) or None; it overrides the gate,
            and a row that keeps nothing keeps group 0.
    """
    if forced is not None:
        return at_least_one(forced.to(torch.bool), None)
    if logits is not None:
        return at_least_one(_above(logits, threshold_logit), logits)
    return None


def run_block_one(logit: float | None, threshold_logit: float, forced: bool | None) -> bool:
    """:func:`run_block` for one sample on Python numbers: the forced decision, else ``logit >
    threshold_logit``, else True (no gate evaluated)."""
    if forced is not None:
        return bool(forced)
    if logit is not None:
        return logit > threshold_logit
    return True


def keep_groups_one(logits: list[float] | None, threshold_logit: float,
                    forced: tuple[bool, ...] | None) -> tuple[bool, ...] | None:
    """:func:`keep_groups` for one sample on Python numbers: ``G`` kept flags (at least one), or
    None where nothing decides (every group kept)."""
    if forced is not None:
        keep = tuple(bool(k) for k in forced)
        return keep if any(keep) else (True,) + keep[1:]
    if logits is None:
        return None
    keep = tuple(z > threshold_logit for z in logits)
    if any(keep):
        return keep
    top = max(range(len(logits)), key=logits.__getitem__)  # the first of equal maxima
    return tuple(k == top for k in range(len(logits)))

"""Predicted latency from execution traces: the FLOPs walk with table lookups as the cost model."""

from __future__ import annotations

import torch
from torch import nn

from ..cost import ArchSpec, BlockSpec, GateSpec, describe, walk
from ._keys import block_key, gate_key
from ._table import LatencyTable, LatencyTableError

__all__ = ["LatencyModel", "sample_latency_ms", "expected_latency_ms", "batch_latency_ms"]


class LatencyModel:
    """:class:`lcnas.cost.CostModel` over a latency table for one model at one batch size.

    ``residual`` interpolates linearly between the measured kept-channel counts, so the
    expected latency of fractional (expected) channel counts is differentiable.
    """

    def __init__(self, table: LatencyTable, *, model: str, pooling: str, batch: int = 1) -> None:
        table.check_for(model, batch)
        self.table, self.model, self.pooling, self.batch = table, model, pooling, batch
        self.scale, self.offset_ms = table.calibration_for(model, batch)
        self._curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def calibrated(self, raw_ms):
        """The table's end-to-end correction applied to a sum of entries (a float or a tensor)."""
        return raw_ms * self.scale + self.offset_ms

    def _ms(self, unit: str, shape: str = "", kept: int = 0) -> float:
        return self.table.latency_ms(self.model, unit, shape, kept, self.batch)

    def stem(self, arch: ArchSpec) -> float:
        return self._ms("frame") + self._ms("stem")

    def head(self, arch: ArchSpec) -> float:
        return self._ms("head")

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        is_layer = gate is block.layer_gate
        pools = is_layer or block.layer_gate is None  # the layer gate pools for both
        unit = "layer_gate" if is_layer else "channel_gate"
        key = gate_key(block, gate, self.pooling, pools=pools)
        if (self.model, unit, key, 0, self.batch) not in self.table._index:
            key = self._nearest_heads(unit, key)
        return self._ms(unit, key)

    def _nearest_heads(self, unit: str, key: str) -> str:
        """The measured gate that differs only in its number of outputs, closest to ``key``'s.

        A gate's time is pooling + a tiny MLP; its output count (channel groups × 2 with scaling)
        barely matters, so the tables measure one group size and scaling setting."""
        head, _, rest = key.partition(" o")
        heads, _, tail = rest.partition(" ")
        same = [k[2] for k in self.table._index if k[0] == self.model and k[1] == unit and k[4] == self.batch
                and k[2].partition(" o")[0] == head and k[2].partition(" o")[2].partition(" ")[2] == tail]
        if not same:
            return key  # no relative either: the lookup names what is missing
        return min(same, key=lambda k: abs(int(k.partition(" o")[2].partition(" ")[0]) - int(heads)))

    def shortcut(self, block: BlockSpec) -> float:
        return self._ms("block_skip", block_key(block))

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        key = block_key(block)
        curve = self._curves.get(key)
        if curve is None:
            options = self.table.kept_options(self.model, key, self.batch)
            if not options:
                raise LatencyTableError(f"latency table {self.table.source!r} has no block_run entries for {self.model!r} block "
                                        f"{key!r} at batch {self.batch}")
            xs = torch.tensor([0.0] + [float(k) for k in options])
            ys = torch.tensor([0.0] + [self._ms("block_run", key, k) - self.shortcut(block) for k in options])
            curve = self._curves[key] = (xs, ys)
        xs, ys = curve
        xs, ys = xs.to(kept.device), ys.to(kept.device)
        k = kept.clamp(0, float(xs[-1]))
        hi = torch.searchsorted(xs, k.detach()).clamp(1, len(xs) - 1)
        lo = hi - 1
        t = (k - xs[lo]) / (xs[hi] - xs[lo])
        return ys[lo] + t * (ys[hi] - ys[lo])


def _latency_model(model: nn.Module, table: LatencyTable, batch: int) -> LatencyModel:
    spec = getattr(model, "lcnas_spec", {})
    pooling = model.gate_config.pooling if getattr(model, "gate_config", None) else "avg"
    return LatencyModel(table, model=spec.get("name", "?"), pooling=pooling, batch=batch)


def sample_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, arch: ArchSpec | None = None,
                      speed: float = 1.0) -> torch.Tensor:
    """Predicted batch-1 latency (ms) of each sample of the last (or given) trace; ``speed`` rescales
    the table to the machine's current speed (:func:`speed_factor`)."""
    trace = trace if trace is not None else model.last_trace
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, 1)
    return speed * cost.calibrated(walk(arch, cost, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated))


def expected_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, arch: ArchSpec | None = None) -> torch.Tensor:
    """Differentiable expected batch-1 latency (ms) per sample from gate probabilities (training traces):
    Σ gate probability × table entry, usable as a loss term that targets milliseconds."""
    trace = trace if trace is not None else model.last_trace
    if trace.run_prob is None:
        raise ValueError("expected latency needs a training-mode trace (gate probabilities)")
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, 1)
    return cost.calibrated(walk(arch, cost, trace.run_prob, trace.kept_expected))


def batch_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, batch: int, arch: ArchSpec | None = None,
                     speed: float = 1.0) -> float:
    """Predicted latency (ms) of running the trace's samples as one batch of ``batch``.

    Per block: gates on the whole batch; the running fraction f at the mean kept channels of the
    running samples (f × block_run); the skip path; and, when 0 < f < 1, the gather/scatter cost.
    """
    trace = trace if trace is not None else model.last_trace
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, batch)
    total = cost.stem(arch) + cost.head(arch)
    for b in arch.blocks:
        run = trace.block_run[:, b.index].float()
        f = float(run.mean())
        if trace.gates_evaluated and b.layer_gate is not None:
            total += cost.gate(b, b.layer_gate)
        if trace.gates_evaluated and b.channel_gate is not None and f > 0:
            total += cost.gate(b, b.channel_gate)
        total += cost.shortcut(b)
        if f > 0:
            kept = trace.channels_kept[:, b.index][trace.block_run[:, b.index]].float().mean()
            total += f * float(cost.residual(b, kept.reshape(1))[0])
            if f < 1:
                total += cost._ms("block_scatter", block_key(b))
    return speed * cost.calibrated(total)

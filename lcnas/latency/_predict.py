"""Predicted latency from execution traces: the FLOPs walk with table lookups as the cost model."""

from __future__ import annotations

import torch
from torch import nn

from ..cost import ArchSpec, BlockSpec, GateSpec, describe, walk, walk_batch
from ._keys import block_key, gate_key
from ._table import LatencyTable, LatencyTableError

__all__ = ["LatencyModel", "batch_latency_ms", "expected_latency_ms", "sample_latency_ms"]


class LatencyModel:
    """:class:`lcnas.cost.CostModel` and :class:`lcnas.cost.BatchCostModel` over a latency table
    for one model at one batch size.

    ``residual`` interpolates linearly between the measured kept-channel counts, so the
    expected latency of fractional (expected) channel counts is differentiable.
    """

    def __init__(self, table: LatencyTable, *, model: str, pooling: str, batch: int = 1) -> None:
        table.check_for(model, batch)
        self.table, self.model, self.pooling, self.batch = table, model, pooling, batch
        self.scale, self.gate_scale, self.offset_ms = table.calibration_for(model, batch)
        self._curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._single: LatencyModel | None = None

    def calibrated(self, raw_ms, gates_ms=0.0):
        """The table's end-to-end correction applied to a sum of entries, ``gates_ms`` of it gate
        entries (floats or tensors): gates and compute each get their own scale."""
        return (raw_ms - gates_ms) * self.scale + gates_ms * self.gate_scale + self.offset_ms

    def parts_ms(self, arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, *,
                 gates_evaluated: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample (sum of table entries, the gates' part of it), uncalibrated: the architecture
        walk over the table, and its gate part walked separately for the gate scale."""
        raw = walk(arch, self, block_run, kept, gates_evaluated=gates_evaluated)
        gates = walk(arch, _GatesOnly(self), block_run, kept, gates_evaluated=gates_evaluated)
        return raw, gates

    def latency_ms(self, arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, *, gates_evaluated: bool = True) -> torch.Tensor:
        """Calibrated per-sample latency (differentiable in ``block_run`` and ``kept``)."""
        return self.calibrated(*self.parts_ms(arch, block_run, kept, gates_evaluated=gates_evaluated))

    def _ms(self, unit: str, shape: str = "", kept: int = 0) -> float:
        return self.table.latency_ms(self.model, unit, shape, kept, self.batch)

    def stem(self, arch: ArchSpec) -> float:
        """Table ms of the per-call frame overhead plus the stem (uncalibrated)."""
        return self._ms("frame") + self._ms("stem")

    def head(self, arch: ArchSpec) -> float:
        """Table ms of the head (uncalibrated)."""
        return self._ms("head")

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """Table ms of one gate (uncalibrated), pooling included when this gate pools.

        A gate whose exact output count was not measured takes the measured gate of the same
        input shape with the closest output count.

        Raises:
            LatencyTableError: the table has no entry for a gate of this input shape.
        """
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
        """Table ms of the block's skip path (its shortcut alone; uncalibrated)."""
        return self._ms("block_skip", block_key(block))

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        """Per-sample table ms of the residual branch at ``kept`` inner channels (uncalibrated).

        The ``block_run`` entries minus the skip path, interpolated linearly in ``kept`` (from 0 ms
        at 0 channels), so it is differentiable in ``kept``.

        Raises:
            LatencyTableError: the table has no ``block_run`` entries for this block and batch.
        """
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

    def scatter(self, block: BlockSpec, samples: int, batch: int) -> float:
        """Table ms of gathering and scattering ``samples`` of ``batch`` samples (uncalibrated): the
        ``block_scatter`` entry, which moves half a batch, scaled to ``samples``."""
        return self._ms("block_scatter", block_key(block)) * samples / (batch / 2)

    def residual_at(self, block: BlockSpec, kept: float, samples: int, batch: int) -> float:
        """Table ms of one residual pass over ``samples`` of ``batch`` samples at ``kept``
        channels (uncalibrated).

        A conv on a few samples costs more than its share of the batch entry, so where the
        table has batch-1 entries too this interpolates between the batch-1 and batch-``batch``
        entries; without them it takes ``samples / batch`` of the batch entry.
        """
        k = torch.tensor([kept])
        at_batch = float(self.residual(block, k)[0])
        single = self._batch_one()
        if single is None or batch <= 1:
            return samples / batch * at_batch
        at_one = float(single.residual(block, k)[0])
        return at_one + (samples - 1) / (batch - 1) * (at_batch - at_one)

    def _batch_one(self) -> LatencyModel | None:
        """This model's batch-1 entries, or None at batch 1 or where the table has none."""
        if self.batch == 1 or 1 not in self.table.batches(self.model):
            return None
        if self._single is None:
            self._single = LatencyModel(self.table, model=self.model, pooling=self.pooling, batch=1)
        return self._single


class _GatesOnly:
    """The gate entries of a :class:`LatencyModel`, every other unit free: the walk's gate part."""

    def __init__(self, inner: LatencyModel) -> None:
        self.inner = inner

    def stem(self, arch: ArchSpec) -> float:
        """Free: only gates count."""
        return 0.0

    def head(self, arch: ArchSpec) -> float:
        """Free: only gates count."""
        return 0.0

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """The inner model's gate entry."""
        return self.inner.gate(block, gate)

    def shortcut(self, block: BlockSpec) -> float:
        """Free: only gates count."""
        return 0.0

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        """Free: only gates count."""
        return torch.zeros_like(kept)


def _latency_model(model: nn.Module, table: LatencyTable, batch: int) -> LatencyModel:
    spec = getattr(model, "lcnas_spec", {})
    gate_config = getattr(model, "gate_config", None)
    pooling = gate_config.pooling if gate_config else "avg"
    return LatencyModel(table, model=spec.get("name", "?"), pooling=pooling, batch=batch)


def sample_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, arch: ArchSpec | None = None,
                      speed: float = 1.0) -> torch.Tensor:
    """Predicted batch-1 latency (ms) of each sample of the last (or given) trace; ``speed`` rescales
    the table to the machine's current speed (:func:`speed_factor`)."""
    trace = trace if trace is not None else model.last_trace
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, 1)
    return speed * cost.latency_ms(arch, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated)


def expected_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, arch: ArchSpec | None = None) -> torch.Tensor:
    """Differentiable expected batch-1 latency (ms) per sample from gate probabilities (training traces):
    Σ gate probability × table entry, usable as a loss term that targets milliseconds."""
    trace = trace if trace is not None else model.last_trace
    if trace.run_prob is None:
        raise ValueError("expected latency needs a training-mode trace (gate probabilities)")
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, 1)
    return cost.latency_ms(arch, trace.run_prob, trace.kept_expected)


def batch_latency_ms(model: nn.Module, table: LatencyTable, trace=None, *, batch: int, arch: ArchSpec | None = None,
                     speed: float = 1.0) -> float:
    """Predicted latency (ms) of running the trace's samples as one batch of ``batch``.

    :func:`lcnas.cost.walk_batch` decides what the batch executes (gates on the whole batch, the
    skip path, the gather/scatter of a partly running block, and the residual convs: with the
    trace's group masks, the engine's union-or-grouping rule replayed; without, the running
    samples at their mean kept channels); the table prices each unit. A conv over ``c`` of the
    batch's samples interpolates between the batch-1 and batch-``batch`` entries (a conv on a few
    samples costs more than its share of the batch), or takes ``c / batch`` of the entry without
    batch 1 (:meth:`LatencyModel.residual_at`).
    """
    trace = trace if trace is not None else model.last_trace
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, batch)
    return speed * cost.calibrated(*batch_parts_ms(cost, arch, trace))


def batch_parts_ms(cost: LatencyModel, arch: ArchSpec, trace) -> tuple[float, float]:
    """(sum of table entries, the gates' part of it) for the trace's samples run as one batch of
    ``cost.batch``, uncalibrated: :func:`lcnas.cost.walk_batch` with ``cost`` as its cost model."""
    parts = walk_batch(arch, cost, trace.block_run, trace.channels_kept, trace.group_masks,
                       gates_evaluated=trace.gates_evaluated)
    return parts.total, parts.gates

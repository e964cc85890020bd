"""Predicted latency from execution traces: the FLOPs walk with table lookups as the cost model."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from ..cost import SET_CACHE_MIB, ArchSpec, BlockSpec, GateSpec, conv_flops, describe, kept_width, walk, walk_batch
from ._keys import block_key, gate_key
from ._table import Calibration, LatencyTable, LatencyTableError

__all__ = ["LatencyModel", "Parts", "apply_calibration", "batch_latency_ms", "expected_latency_ms", "gathered_sets", "relative_latency",
           "sample_latency_ms", "static_latency_ms"]

_MIB = float(2**20)


class Parts(NamedTuple):
    """An execution priced by the table, before calibration (floats, or per-sample tensors)."""

    raw_ms: Any  # sum of the table entries that run
    gates_ms: Any  # the gate entries' part of ``raw_ms``
    weights_mib: Any  # float32 weight MiB the residual branches that run read (the spill term's input)
    sets: Any = 0.0  # distinct channel sets a per-image batch gathers
    regather_mib: Any = 0.0  # their gathered MiB where they outgrow the engine's cache (gathered again every call)


class LatencyModel:
    """:class:`lcnas.cost.CostModel` and :class:`lcnas.cost.BatchCostModel` over a latency table
    for one model at one batch size.

    ``residual`` interpolates linearly between the measured kept-channel counts, so the
    expected latency of fractional (expected) channel counts is differentiable.
    """

    def __init__(self, table: LatencyTable, *, model: str, pooling: str, batch: int = 1) -> None:
        table.check_for(model, batch)
        self.table, self.model, self.pooling, self.batch = table, model, pooling, batch
        # The native engine runs each image of a batch on its own path: no grouping, but each
        # distinct channel set is gathered into compact weights (cached up to the engine's limit).
        self.per_image = batch > 1 and "one image per thread" in str(table.measurement.get("engine", {}).get(str(batch), ""))
        # each image's batch-1 entries summed, where the calibration was fitted that way (or there is none)
        self.calibration = table.calibration_for(model, batch)
        self.per_image_sums = self.per_image and (self.calibration.executions == 0 or self.calibration.per_image_sums)
        self._curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._single: LatencyModel | None = None

    def calibrated(self, parts: Parts):
        """The table's end-to-end correction applied to an execution's :class:`Parts` (floats or
        tensors): compute and gates each scaled, the offset, and the spill of weight bytes past
        what stays cached."""
        return apply_calibration(self.calibration, parts)

    def parts_ms(self, arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, *, gates_evaluated: bool = True) -> Parts:
        """Per sample :class:`Parts`, uncalibrated: the architecture walk over the table, and its
        gate part and weight bytes walked separately."""
        return Parts(walk(arch, self, block_run, kept, gates_evaluated=gates_evaluated),
                     walk(arch, _GatesOnly(self), block_run, kept, gates_evaluated=gates_evaluated),
                     walk(arch, _WEIGHTS, block_run, kept, gates_evaluated=gates_evaluated))

    def latency_ms(self, arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, *, gates_evaluated: bool = True) -> torch.Tensor:
        """Calibrated per-sample latency (differentiable in ``block_run`` and ``kept``)."""
        return self.calibrated(self.parts_ms(arch, block_run, kept, gates_evaluated=gates_evaluated))

    def static_ms(self, arch: ArchSpec) -> float:
        """Calibrated latency of the static network: every block at full width, no gates. The
        denominator of relative predictions (:func:`relative_latency`)."""
        if self.batch == 1:
            return float(self.calibrated(self.static_parts(arch))[0])
        ones, widths = _all_on(arch)
        run, kept = ones.expand(self.batch, -1).bool(), widths.expand(self.batch, -1)
        return float(self.calibrated(_batch_parts(self, arch, run, kept, None, gates_evaluated=False)))

    def static_parts(self, arch: ArchSpec) -> Parts:
        """:class:`Parts` of the static network at batch 1 (one sample), uncalibrated."""
        ones, widths = _all_on(arch)
        return self.parts_ms(arch, ones, widths, gates_evaluated=False)

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


def _all_on(arch: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(block_run, kept channels) of one sample running every block at full width."""
    return torch.ones(1, len(arch.blocks)), torch.tensor([[float(b.width) for b in arch.blocks]])


def apply_calibration(c: Calibration, parts: Parts):
    """``c`` applied to an execution's :class:`Parts` (floats or per-sample tensors): compute and
    gates each scaled, the offset, the spill of weight bytes past what stays cached, and on a
    per-image batch its channel sets and their regathering."""
    spill = parts.weights_mib - c.spill_free_mib
    spill = spill.clamp(min=0.0) if isinstance(spill, torch.Tensor) else max(0.0, spill)
    return ((parts.raw_ms - parts.gates_ms) * c.scale + parts.gates_ms * c.gates + c.offset_ms + c.spill_ms_per_mib * spill
            + c.set_ms * parts.sets + c.regather_ms_per_mib * parts.regather_mib)


class _WeightMiB:
    """Cost model for :func:`lcnas.cost.walk`: the float32 weight MiB of the residual branches
    that run (at their kept width; gates, stem and head are a few KiB and stay cached)."""

    def stem(self, arch: ArchSpec) -> float:
        """Not counted."""
        return 0.0

    def head(self, arch: ArchSpec) -> float:
        """Not counted."""
        return 0.0

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """Not counted."""
        return 0.0

    def shortcut(self, block: BlockSpec) -> float:
        """Not counted: a 1×1 shortcut is small beside the 3×3 convs."""
        return 0.0

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        """MiB of the residual convs' weights at ``kept`` inner channels: a conv's multiply-adds
        at one output pixel."""
        if block.kind == "basic":
            params = conv_flops(kept, block.in_channels + block.out_channels, 3, 1) / 2
        else:
            params = (conv_flops(block.in_channels, kept, 1, 1) + conv_flops(kept, kept, 3, 1) + conv_flops(kept, block.out_channels, 1, 1)) / 2
        return params * 4 / _MIB


_WEIGHTS = _WeightMiB()


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


def static_latency_ms(model: nn.Module, table: LatencyTable, *, batch: int = 1, arch: ArchSpec | None = None, speed: float = 1.0) -> float:
    """Predicted latency (ms) of ``model``'s static network on the table: every block at full
    width, gates not run; at ``batch`` (one call)."""
    arch = arch or describe(model)
    return speed * _latency_model(model, table, batch).static_ms(arch)


def relative_latency(model: nn.Module, table: LatencyTable, trace=None, *, arch: ArchSpec | None = None) -> torch.Tensor:
    """Predicted batch-1 latency of each sample of the last (or given) trace as a fraction of the
    static network's (:func:`static_latency_ms`).

    A shared host's speed drifts by tens of percent between hours; a ratio of two executions of the
    same model drifts with it and cancels it. Rank and compare executions by this; turn it into
    milliseconds on this machine now with a probe (:func:`lcnas.latency.speed_factor`, or time the
    static network once) when an absolute figure is needed.
    """
    trace = trace if trace is not None else model.last_trace
    arch = arch or describe(model, trace.input_size)
    cost = _latency_model(model, table, 1)
    return cost.latency_ms(arch, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated) / cost.static_ms(arch)


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
    return speed * cost.calibrated(batch_parts_ms(cost, arch, trace))


def batch_parts_ms(cost: LatencyModel, arch: ArchSpec, trace) -> Parts:
    """:class:`Parts` of the trace's samples run as one batch of ``cost.batch``, uncalibrated:
    :func:`lcnas.cost.walk_batch` with ``cost`` as its cost model; the weight MiB are the mean
    over the batch's images (each image runs its own path)."""
    return _batch_parts(cost, arch, trace.block_run, trace.channels_kept, trace.group_masks, gates_evaluated=trace.gates_evaluated)


def _batch_parts(cost: LatencyModel, arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, group_masks, *,
                 gates_evaluated: bool) -> Parts:
    single = cost._batch_one() if cost.per_image_sums else None
    if single is not None:
        # Each image runs its own batch-1 path (one image per thread): the batch-1 entries per
        # image, summed; the distinct channel sets on top.
        raw = float(walk(arch, single, block_run, kept, gates_evaluated=gates_evaluated).sum())
        gates = float(walk(arch, _GatesOnly(single), block_run, kept, gates_evaluated=gates_evaluated).sum())
    else:  # the per-image engine groups nothing: its group masks are not the grouped path's
        parts = walk_batch(arch, cost, block_run, kept, None if cost.per_image else group_masks, gates_evaluated=gates_evaluated)
        raw, gates = parts.total, parts.gates
    sets, mib = gathered_sets(arch, block_run, kept, group_masks) if cost.per_image else (0, 0.0)
    weights = walk(arch, _WEIGHTS, block_run, kept, gates_evaluated=gates_evaluated)
    return Parts(raw, gates, float(weights.mean()), float(sets), mib if mib > SET_CACHE_MIB else 0.0)


def gathered_sets(arch: ArchSpec, block_run: torch.Tensor, kept: torch.Tensor, group_masks) -> tuple[int, float]:
    """(distinct channel sets, their gathered float32 weight MiB) of a batch whose images each run
    their own path: per block, the distinct kept-group sets of the images that run it, less the
    full set (it runs the block's own weights). A set's compact weights, counted as the engine's
    cache counts them: both convs and conv1's bias at the engine's conv1 width
    (:func:`lcnas.cost.kept_width`), and conv1 once more in the narrow kernel's layout where that
    width is 12 or less. Without ``group_masks`` every running image that keeps fewer than all
    channels counts as a set of its own (the most there can be)."""
    sets, floats = 0, 0.0
    for b in arch.blocks:
        ran = block_run[:, b.index].bool()
        if b.group_size <= 0 or not bool(ran.any()):
            continue
        masks = None if group_masks is None else group_masks[b.index]
        if masks is not None:
            rows = torch.unique(masks[ran], dim=0)
            counts = [int(r.sum()) * b.group_size for r in rows]
        else:
            counts = [int(k) for k in kept[ran, b.index].tolist()]
        partial = [k for k in counts if k < b.width]
        sets += len(partial)
        for k in partial:
            kp = kept_width(k)
            floats += 9.0 * (b.in_channels + b.out_channels) * kp + kp + (9.0 * b.in_channels * kp if kp <= 12 else 0.0)
    return sets, floats * 4 / _MIB

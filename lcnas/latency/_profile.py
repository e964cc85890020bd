"""The table generator: measures every unit the dynamic model can execute, through the engine itself.

For each batch size: the stem, the head, the per-forward frame, and per distinct block shape the
skip path, the residual branch at every kept-channel count (multiples of the smallest group size),
the gates of each requested gate shape, and (batches) the gather/scatter of a half-running batch.
Blocks run through the model's engine (``model.engine``, an :class:`lcnas.engine.Engine`) with forced
decisions, so the table times exactly the code that inference runs.

Where batch 1 runs as one native call (the whole-network engine), a residual branch is timed inside
that call: the whole forward pass with only that block running, minus the pass with none. A block
driven alone from Python would also pay the interpreter's per-call cost, which the native pass
never pays and which is as large as a narrow block's whole work.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from .._env import environment_metadata
from ..cost import describe
from ..errors import ConfigError
from ..models import ForcedDecisions, GateConfig, create_model, native_status
from ._keys import block_key, gate_key
from ._table import Calibration, LatencyEntry, LatencyTable
from ._timing import Timing, measure, measure_difference, measure_interleaved, measure_paired

__all__ = ["CalibrationFit", "profile_model", "device_metadata", "random_decisions", "random_plans", "calibrate", "recalibrate",
           "fit_calibration", "fit_relative"]

CALIBRATION_SEED = 20261124  # the generator's own executions; validation draws others
# Untimed calls of a path before each of its timed calls in the calibration's executions, as
# validation times an execution (a stream of images through one model).
WARM_CALLS = 3
# How far a calibration's gate scale is expected to lie from its compute scale, as a fraction
# (the prior of :func:`fit_calibration`).
GATE_SCALE_PRIOR = 0.2

_CL = torch.channels_last


def device_metadata(device: torch.device, threads: int, argv: list[str] | None) -> dict[str, Any]:
    """A latency table's ``device`` section: kind, CPU model or GPU name, threads, versions, date and
    the command ``argv`` that made it."""
    env = environment_metadata(argv)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else env["cpu_model"]
    return {"kind": device.type, "name": name, "threads": threads, "torch": env["torch"], "dtype": "float32",
            "cpu_count": env["cpu_count"], "platform": env["platform"], "python": env["python"],
            "lcnas_version": env["lcnas_version"], "date_utc": env["date_utc"], "command": env["command"]}


def _check_counts(**counts: int) -> None:
    """One clear error for a count below 1 (a batch size, repeats, ...), before anything is measured."""
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


@torch.no_grad()
def profile_model(
    model_name: str,
    *,
    batches: tuple[int, ...] = (1,),
    group_size: int = 4,
    hiddens: tuple[int, ...] = (16,),
    poolings: tuple[str, ...] = ("avg",),
    scaling: bool = True,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 30,
    progress: bool | None = None,
    argv: list[str] | None = None,
    calibration_executions: int = 96,
    sweeps: int = 3,
) -> LatencyTable:
    """Measure a latency table for ``model_name`` (all gate shapes in ``hiddens`` × ``poolings``),
    then fit its end-to-end calibration on ``calibration_executions`` random executions per batch size.

    Every unit is measured in ``sweeps`` complete sweeps over the units, one after another, and
    each entry is the median of its sweeps: a shared host has slow stretches of a few seconds
    (the layer gates of ResNet-20 read three times their cost in one), and a stretch that lands
    on one sweep moves no entry.

    Raises:
        ConfigError: a batch size, ``repeats``, ``group_size`` or ``threads`` below 1, a negative
            ``warmup`` or ``calibration_executions``, or ``device="cuda"`` without a CUDA GPU.
    """
    _check_counts(**{"every batch size": min(batches, default=0)}, repeats=repeats, group_size=group_size, sweeps=sweeps,
                  threads=threads if threads is not None else 1)
    if warmup < 0 or calibration_executions < 0:
        raise ConfigError(f"warmup and calibration_executions must be >= 0, got {warmup} and {calibration_executions}")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA GPU is available; profile with --device cpu, or on a machine with a GPU")
    torch.manual_seed(0)
    model: Any = create_model(model_name, gating="lc", gate_config=GateConfig(group_size=group_size)).to(dev).eval()
    arch = describe(model)
    ex = model.engine
    groups = {b.index: b.width // group_size for b in arch.blocks}
    entries: list[LatencyEntry] = []

    def add(unit: str, shape: str, kept: int, batch: int, t: Timing) -> None:
        entries.append(LatencyEntry(model_name, unit, shape, kept, batch, t.latency_ms_median, t.latency_ms_p95, t.latency_ms_std, t.count))

    def timed(fn) -> Timing:
        return measure(fn, warmup=warmup, repeats=repeats, device=dev)

    def diff(fn, base, rounds: int = 2) -> Timing:  # a gate: tens of µs on top of a block's hundreds, paired per round
        return measure_difference(fn, base, warmup=warmup, repeats=rounds * repeats, device=dev)

    shapes: dict[str, Any] = {}  # one representative block per distinct shape
    for b in arch.blocks:
        shapes.setdefault(block_key(b), b)
    work = sweeps * len(batches) * (3 + sum(1 + groups[b.index] + 2 * len(hiddens) * len(poolings) + 1 for b in shapes.values()))
    bar = tqdm(total=work, desc=f"profile {model_name}", disable=progress is False if progress is not None else None, file=sys.stderr)
    blocks = model.blocks()
    engines: dict[str, str] = {}  # batch → the hard-execution path the table's units were timed on
    configs = [GateConfig(hidden=h, pooling=p, group_size=group_size, scaling=scaling) for h in hiddens for p in poolings]
    made: dict[GateConfig, tuple[Any, Any]] = {}

    def gate_models(cfg: GateConfig) -> tuple[Any, Any]:
        """(LC-gated, channel-gated) models with gates of ``cfg``, made once."""
        if cfg not in made:
            made[cfg] = (create_model(model_name, gating="lc", gate_config=cfg).to(dev).eval(),
                         create_model(model_name, gating="channel", gate_config=cfg).to(dev).eval())
        return made[cfg]
    # the gate shapes the table measures: recorded in it, and what the calibration model is built with
    gate_shapes = {"gate_hiddens": list(hiddens), "gate_poolings": list(poolings), "gate_scaling": scaling}
    # The calibration's executions are timed once after every sweep: its passes lie as far apart
    # as the sweeps, and a slow stretch of the host lands on one of them.
    cal_model = None
    if calibration_executions >= 2:  # gates of a shape the table measures
        cal_model = _calibration_model(model_name, {**gate_shapes, "group_size": group_size}).to(dev).eval()

    def cal_executions(b: int) -> int:
        return calibration_executions if b == 1 else max(2, calibration_executions // 3)

    def cal_rounds(b: int) -> int:  # the rounds of one pass: all passes together time what one long pass did
        return max(3, (repeats // 2 if b == 1 else repeats // 6) // sweeps)
    cal_passes: dict[int, list[list[float]]] = {b: [] for b in batches}

    def measure_batch(batch: int) -> None:
        """Every unit at ``batch`` once, appended to this sweep's ``entries``."""
        x0 = torch.rand(batch, *arch.input_size, device=dev)
        _settle(lambda: model(x0), seconds=2.0)
        engines[str(batch)] = _engine(ex, batch)
        stem = timed(lambda: ex.stem(x0))
        add("stem", "", 0, batch, stem)
        last = torch.rand(batch, arch.head_features, *_final_hw(arch), device=dev).contiguous(memory_format=_CL)
        head = timed(lambda: model.forward_head(last))
        add("head", "", 0, batch, head)
        bar.update(2)
        skip_ms = {}
        nb = len(arch.blocks)
        in_network = engines[str(batch)] == "native whole network"
        none_run = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))

        def forward_with(m: Any, forced: ForcedDecisions, xin=x0):
            with m.forced(forced):
                return m(xin)

        def forward(forced: ForcedDecisions):
            return forward_with(model, forced)
        identity_skip: Any = None  # an identity block's skip driven from Python: what a padded skip is timed against
        gate_times: dict[tuple[GateConfig, str, str], tuple[str, Timing]] = {}
        for key, b in shapes.items():
            block = blocks[b.index]
            x = torch.rand(batch, b.in_channels, *b.in_hw, device=dev).contiguous(memory_format=_CL)

            def run_block(forced: ForcedDecisions, xin=x, i=b.index, blk=block):
                with model.forced(forced):
                    return ex.block(i, blk, xin)

            off = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))
            if in_network:  # a skipped identity block is no work in the native pass; a padded one pads
                if b.shortcut == "identity":
                    t = _point(0.0, repeats)
                    if identity_skip is None:
                        identity_skip = partial(run_block, off, x, b.index, block)
                else:
                    t = diff(lambda: run_block(off), identity_skip if identity_skip is not None else _nothing)
            else:
                t = timed(lambda: run_block(off))
            add("block_skip", key, 0, batch, t)
            skip_ms[key] = t.latency_ms_median
            bar.update(1)
            for n_groups in range(1, groups[b.index] + 1):
                keep = [None] * nb
                keep[b.index] = torch.arange(groups[b.index]) < n_groups
                on = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool), channel_keep=tuple(keep))
                if in_network:
                    alone = ForcedDecisions(block_run=torch.arange(nb) == b.index, channel_keep=tuple(keep))
                    residual = diff(lambda f=alone: forward(f), lambda: forward(none_run))
                    t = replace(residual, latency_ms_median=residual.latency_ms_median + skip_ms[key])
                else:
                    t = timed(lambda: run_block(on))
                add("block_run", key, n_groups * group_size, batch, t)
                bar.update(1)
            # Gates are timed through the executor as differences (gated minus ungated execution of the
            # same block): that counts everything a gate costs at inference (pooling, MLP, decision,
            # reading its scales, scaling the kept channels), not just the MLP call.
            keep_all = [None] * nb
            keep_all[b.index] = torch.ones(groups[b.index], dtype=torch.bool)
            all_on = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool), channel_keep=tuple(keep_all))
            gated_off = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool), evaluate_gates=True)
            gated_on = replace(all_on, evaluate_gates=True)
            chan_on = ForcedDecisions(channel_keep=tuple(keep_all), evaluate_gates=True)
            for cfg in configs:
                lc, ch = gate_models(cfg)
                gspec = describe(lc).blocks[b.index]
                by_model = {id(lc): lc.blocks()[b.index], id(ch): ch.blocks()[b.index]}

                def via(m: Any, forced: ForcedDecisions, i=b.index, xin=x, blks=by_model):
                    blk = blks[id(m)]
                    with m.forced(forced):
                        return m.engine.block(i, blk, xin)

                layer = diff(lambda: via(lc, gated_off), lambda: run_block(off))
                chan_after_layer = diff(lambda: via(lc, gated_on), lambda: run_block(all_on))
                chan_after_layer = replace(chan_after_layer,
                                           latency_ms_median=max(0.0, chan_after_layer.latency_ms_median - layer.latency_ms_median),
                                           latency_ms_p95=max(0.0, chan_after_layer.latency_ms_p95 - layer.latency_ms_median))
                chan_alone = diff(lambda: via(ch, chan_on), lambda: run_block(all_on))
                gate_times[cfg, "layer_gate", key] = (gate_key(gspec, gspec.layer_gate, cfg.pooling, pools=True), layer)
                gate_times[cfg, "channel_gate", key] = (gate_key(gspec, gspec.channel_gate, cfg.pooling, pools=False), chan_after_layer)
                gate_times[cfg, "channel_gate_alone", key] = (gate_key(gspec, gspec.channel_gate, cfg.pooling, pools=True), chan_alone)
                bar.update(2)
            if batch > 1:  # half the batch runs: gather, run at full width, scatter back
                half = torch.arange(batch) < batch // 2
                run = torch.ones(batch, nb, dtype=torch.bool)
                run[:, b.index] = half
                part = ForcedDecisions(block_run=run)
                full = ForcedDecisions(block_run=torch.ones(batch, nb, dtype=torch.bool))
                clone = timed(lambda: x.clone()).latency_ms_median
                t_part = timed(lambda: run_block(part, x.clone())).latency_ms_median - clone
                t_full = timed(lambda: run_block(full)).latency_ms_median
                scatter = max(0.0, t_part - 0.5 * (t_full - skip_ms[key]) - skip_ms[key])
                add("block_scatter", key, 0, batch, _point(scatter, repeats))
                bar.update(1)
        for (_cfg, unit, _), (gkey, t) in _gates_in_network(gate_times, gate_models, arch, nb, forward_with, in_network, diff).items():
            add("channel_gate" if unit == "channel_gate_alone" else unit, gkey, 0, batch, t)
        # The frame: a whole forward with every block skipped, minus its parts. Inside one native
        # call, stem and head cost less than driven alone from Python: where their Python-driven
        # times exceed the empty pass, they are scaled to fill it, so the parts sum to what ran.
        # The empty pass timed between full ones, as a stream of images runs it: repeated alone it
        # finds the interpreter's and the stem's state in the caches and runs ~3 µs (a fifth) faster.
        every_run = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool))
        passes = (none_run, every_run)
        whole = measure_interleaved(2, lambda i: forward(passes[i]), warmup=warmup, repeats=repeats, device=dev)[0].latency_ms_median
        skips = sum(skip_ms[block_key(b)] for b in arch.blocks)
        frame = whole - stem.latency_ms_median - head.latency_ms_median - skips
        if frame < 0 and stem.latency_ms_median + head.latency_ms_median > 0:
            shrink = max(0.0, whole - skips) / (stem.latency_ms_median + head.latency_ms_median)
            for unit, t in (("stem", stem), ("head", head)):
                entries.remove(next(e for e in entries if e.unit == unit and e.batch == batch))
                add(unit, "", 0, batch, _point(t.latency_ms_median * shrink, t.count))
            frame = 0.0
        add("frame", "", 0, batch, _point(max(0.0, frame), repeats))
        bar.update(1)
    by_sweep: list[list[LatencyEntry]] = []
    for _sweep in range(sweeps):
        entries = []  # what add() appends to: this sweep's
        by_sweep.append(entries)
        for batch in batches:
            measure_batch(batch)
        if cal_model is not None:
            for size in batches:
                cal_passes[size].append(calibration_pass(cal_model, batch=size, executions=cal_executions(size), repeats=cal_rounds(size),
                                                         device=dev))
    entries = _median_entries(by_sweep)
    bar.close()
    measurement = {"batch_sizes": list(batches), "warmup": warmup, "repeats": repeats, "sweeps": sweeps, "group_size": group_size,
                   **gate_shapes,
                   "timer": "cuda events" if dev.type == "cuda" else "time.perf_counter",
                   # which convolutions batch 1 ran on: a table is only valid for the same engine
                   "batch1_convs": native_status() if dev.type == "cpu" else "pytorch (cuda)",
                   "engine": engines,
                   "rules": "medians of repeats after warm-up, then each entry's median over the sweeps; fixed threads; "
                            "inputs channels-last float32; "
                            "frame, block_scatter and the gates are differences of measured medians (clamped at 0); "
                            "a gate is its block executed with the gate minus without; on the whole-network engine "
                            "a residual branch is the forward pass with only its block running minus the pass with none"}
    table = LatencyTable(device=device_metadata(dev, torch.get_num_threads(), argv), measurement=measurement, entries=tuple(entries))
    if cal_model is not None:
        cal = tuple(calibrate(cal_model, table, batch=b, executions=cal_executions(b), repeats=cal_rounds(b), device=dev,
                              passes=cal_passes[b]) for b in batches)
        table = replace(table, calibration=cal, measurement={**measurement, "calibration_executions": calibration_executions})
    return table


def _median_entries(by_sweep: list[list[LatencyEntry]]) -> list[LatencyEntry]:
    """Each entry's median over the sweeps that measured it (median, p95 and spread each; the
    counts added), in the first sweep's order."""
    groups: dict[tuple, list[LatencyEntry]] = {}
    for sweep in by_sweep:
        for e in sweep:
            groups.setdefault(e.key, []).append(e)
    return [replace(g[0], latency_ms_median=statistics.median(e.latency_ms_median for e in g),
                    latency_ms_p95=statistics.median(e.latency_ms_p95 for e in g),
                    latency_ms_std=statistics.median(e.latency_ms_std for e in g), count=sum(e.count for e in g))
            for g in groups.values()]


def _gates_in_network(gate_times: dict, gate_models, arch, nb: int, forward_with, in_network: bool, diff) -> dict:
    """The gate entries: each gate timed with its block alone (``gate_times``: per gate config,
    family and block shape, the gate's key and timing). On the whole-network engine each family's
    entries are then scaled so that their sum over the network's blocks equals what that family
    costs inside one native pass, measured as a difference of whole forward passes: the layer gates
    (every block skipped, gates run or not), the channel gates after them (every block running), the
    channel-only model's gates (every block running). Timed alone, from Python, a gate of a
    microsecond or two is mostly noise and cache state; the sum inside the pass is what runs."""
    if not in_network:
        return gate_times
    out = dict(gate_times)
    # made once: the engine caches a forcing's C arrays by the object, a fresh one per call costs tens of µs
    none_run = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))
    # Every block runs half its channel groups, fixed by force (evaluated gates would choose the
    # channels otherwise). Part of a channel gate's cost grows with the channels it scales (about
    # 0.4 µs per block at one group, 1 µs at full width: ResNet-32, 1 thread); half is the middle.
    all_run = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool),
                              channel_keep=tuple(torch.arange(b.width // b.group_size) < max(1, b.width // b.group_size // 2) for b in arch.blocks))
    none_gated, all_gated = replace(none_run, evaluate_gates=True), replace(all_run, evaluate_gates=True)
    for cfg in dict.fromkeys(k[0] for k in gate_times):
        lc, ch = gate_models(cfg)
        layer = diff(lambda: forward_with(lc, none_gated), lambda: forward_with(lc, none_run), 4).latency_ms_median
        both = diff(lambda: forward_with(lc, all_gated), lambda: forward_with(lc, all_run), 4).latency_ms_median
        alone = diff(lambda: forward_with(ch, all_gated), lambda: forward_with(ch, all_run), 4).latency_ms_median
        for family, total in (("layer_gate", layer), ("channel_gate", max(0.0, both - layer)), ("channel_gate_alone", alone)):
            alone_sum = sum(gate_times[cfg, family, block_key(b)][1].latency_ms_median for b in arch.blocks)
            if alone_sum <= 0:
                continue
            for b_key in dict.fromkeys(block_key(b) for b in arch.blocks):
                g_key, t = gate_times[cfg, family, b_key]
                out[cfg, family, b_key] = (g_key, _point(t.latency_ms_median * total / alone_sum, t.count))
    return out


@torch.no_grad()
def recalibrate(table: LatencyTable, model_name: str, *, batches: tuple[int, ...], executions: int = 96, threads: int | None = None,
                device: str = "cpu", repeats: int = 15) -> LatencyTable:
    """``table`` with ``model_name``'s calibration at ``batches`` fitted anew on this machine now,
    entries untouched: for a machine whose state moved since the table was made. (Each execution
    is timed after untimed calls of its own path: :func:`measure_paired`.)"""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    model = _calibration_model(model_name, table.measurement).to(dev).eval()
    fresh = {(model_name, b): calibrate(model, replace(table, calibration=()), batch=b,
                                        executions=executions if b == 1 else max(2, executions // 3),
                                        repeats=repeats if b == 1 else max(3, repeats // 3), device=dev) for b in batches}
    kept = tuple(c for c in table.calibration if (c.model, c.batch) not in fresh)
    when = {**table.measurement.get("recalibrated_utc", {}), model_name: environment_metadata(None)["date_utc"]}
    return replace(table, calibration=kept + tuple(fresh.values()), measurement={**table.measurement, "recalibrated_utc": when})


def random_decisions(model, n: int, gen: torch.Generator, *, shared: bool = False, by_stage: bool = False) -> ForcedDecisions:
    """``n`` random executions from nearly empty to full: per sample a random block-run probability
    and a random channel-keep probability, then independent draws per block and channel group
    (blocks and channels the model has no gate for are left on). ``shared``: one pair of
    probabilities for all ``n`` samples, so a batch of them ranges from nearly empty to full
    (per-sample probabilities average out to half a network in every large batch). ``by_stage``:
    a pair per stage, so that executions of the same cost differ in where they spend it (an
    execution reading the wide, late blocks' weights against one running the early blocks)."""
    blocks = model.blocks()
    stage_of = _stages(model)
    rows = 1 if shared else n
    cols = (max(stage_of) + 1) if by_stage else 1
    index = torch.tensor(stage_of) if by_stage else torch.zeros(len(blocks), dtype=torch.long)
    p_run = torch.rand(rows, cols, generator=gen)[:, index]
    run = torch.rand(n, len(blocks), generator=gen) < p_run
    p_keep = (torch.rand(rows, cols, generator=gen) * 0.9 + 0.1)[:, index]
    keep = tuple(None if b.channel_gate is None else torch.rand(n, b.channel_gate.outputs, generator=gen) < p_keep[:, i : i + 1]
                 for i, b in enumerate(blocks))
    # Only what the model's gates can decide varies: a block without a layer gate always runs.
    run |= torch.tensor([b.layer_gate is None for b in blocks])
    return ForcedDecisions(block_run=run, channel_keep=keep)


def random_plans(model, executions: int, batch: int, gen: torch.Generator) -> list[ForcedDecisions]:
    """``executions`` random executions of a batch of ``batch`` (probabilities shared by the batch),
    half of them also running the gates (decisions still forced), as a trained model does: what
    the calibration fits and the probe times. They cycle through four families, so that the fit sees
    every way of spending the same cost: one probability for the whole network, one per stage,
    whole blocks skipped at full width, and every block running with channel groups dropped. The
    first is the static network itself (every block at full width, no gates): the denominator of
    every relative prediction, and at larger batches the one execution that gathers no channel set."""
    plans = [ForcedDecisions(block_run=torch.ones(batch, len(model.blocks()), dtype=torch.bool))][:executions]
    for i in range(executions - len(plans)):
        family = i // 2 % 4
        f = random_decisions(model, batch, gen, shared=True, by_stage=family == 1)
        if family == 2:
            f = replace(f, channel_keep=None)
        elif family == 3:
            f = replace(f, block_run=torch.ones(batch, len(model.blocks()), dtype=torch.bool))
        plans.append(replace(f, evaluate_gates=bool(i % 2)))
    return plans


def _stages(model) -> list[int]:
    """Each block's stage index (0-based)."""
    return [b.stage - 1 for b in describe(model).blocks]


@torch.no_grad()
def calibrate(model, table: LatencyTable, *, batch: int, executions: int, repeats: int, device: torch.device,
              seed: int = CALIBRATION_SEED, passes: list[list[float]] | None = None):
    """The calibration (:func:`fit_calibration`) from the table's sums to measured end-to-end
    latency over random executions (:func:`random_plans`).

    Executions are timed over ``repeats`` rounds, each call after untimed calls of its own path and
    as a ratio to the static network timed in the same round (:func:`measure_paired`), so a drift
    of the machine during calibration bends no execution's figure. ``passes``: timings already
    taken by :func:`calibration_pass` (same executions, seed and batch) at moments apart, used
    instead, each execution's median ratio over them (:func:`_combined`). The fit minimises the squared
    *relative* error, the quantity validation judges (±10 %), so cheap executions weigh as much as
    expensive ones.
    """
    from ._predict import _latency_model, batch_parts_ms

    name = model.lcnas_spec["name"]
    arch = describe(model)
    cost = _latency_model(model, table, batch)
    x, plans = _calibration_plans(model, batch, executions, seed)
    x = x.to(device)
    parts: list[tuple[float, float, float, float, float]] = []
    for forced in plans:
        with model.forced(forced):
            model(x)  # the trace the prediction reads
        trace = model.last_trace
        if batch == 1:
            p = cost.parts_ms(arch, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated)
            parts.append((float(p.raw_ms[0]), float(p.gates_ms[0]), float(p.weights_mib[0]), 0.0, 0.0))
        else:
            q = batch_parts_ms(cost, arch, trace)
            parts.append((float(q.raw_ms), float(q.gates_ms), float(q.weights_mib), float(q.sets), float(q.regather_mib)))
    if passes:
        measured = _combined(passes)
    else:
        measured = calibration_pass(model, batch=batch, executions=executions, repeats=repeats, device=device, seed=seed)
    raw, gates, weights, sets, regather = (list(v) for v in zip(*parts, strict=True))
    fit = fit_calibration(raw, gates, measured, weights, sets, regather)
    cal = fit.as_calibration(name, batch, executions, per_image_sums=cost.per_image_sums and 1 in table.batches(name))
    from ._predict import Parts, apply_calibration

    predicted = [apply_calibration(cal, Parts(*p)) for p in parts]
    mape = statistics.fmean(abs(f / m - 1) for f, m in zip(predicted, measured, strict=True))
    return replace(cal, fit_mape=mape)


def _calibration_plans(model, batch: int, executions: int, seed: int) -> tuple[torch.Tensor, list[ForcedDecisions]]:
    """The calibration's input and executions: the same for the same model, batch, count and seed."""
    gen = torch.Generator().manual_seed(seed + batch)
    x = torch.rand(batch, *describe(model).input_size, generator=gen)
    return x, random_plans(model, executions, batch, gen)


@torch.no_grad()
def calibration_pass(model, *, batch: int, executions: int, repeats: int, device: torch.device | str,
                     seed: int = CALIBRATION_SEED) -> list[float]:
    """One timing of the calibration's executions (:func:`calibrate`), ms on a common scale: each
    execution's median ratio to the static network over ``repeats`` rounds times the static
    network's median (:func:`_paired_ms`). The first execution is the static network itself."""
    dev = torch.device(device)
    x, plans = _calibration_plans(model, batch, executions, seed)
    # Larger batches take a few untimed calls' worth of time on their own: one warms the path.
    return _paired_ms(model, x.to(dev), plans, describe(model), rounds=repeats, device=dev, warm=WARM_CALLS if batch == 1 else 1)


def _combined(passes: list[list[float]]) -> list[float]:
    """Timings of the same executions from several :func:`calibration_pass` runs as one: each
    execution's median over the passes of its ratio to that pass's first (static) execution, times
    the median static time. A pass taken in a slow stretch of the host moves no execution."""
    static = statistics.median(p[0] for p in passes)
    return [statistics.median(p[i] / p[0] for p in passes) * static for i in range(len(passes[0]))]


def _paired_ms(model, x: torch.Tensor, plans: list[ForcedDecisions], arch, *, rounds: int, device: torch.device, warm: int = 3) -> list[float]:
    """Each execution's steady-state ms on a common scale: its median ratio to the static network
    timed beside it (:func:`measure_paired`) times the static network's median time. A drift of
    the machine during calibration then bends no execution's figure, and each is timed after
    untimed calls of its own path, as a repeated execution runs."""
    static = ForcedDecisions(block_run=torch.ones(x.shape[0], len(arch.blocks), dtype=torch.bool))

    def run_static():
        with model.forced(static):
            model(x)
    ms, ratios = measure_paired(len(plans), lambda i: model(x), run_static, context=lambda i: model.forced(plans[i]), rounds=rounds,
                                warm=warm, device=device)
    level = statistics.median(m / r for m, r in zip(ms, ratios, strict=True))
    return [r * level for r in ratios]


class CalibrationFit(NamedTuple):
    """A calibration's coefficients (:class:`lcnas.latency.Calibration` holds them in a table)."""

    scale: float
    gate_scale: float
    offset_ms: float
    spill_ms_per_mib: float = 0.0
    spill_free_mib: float = 0.0
    set_ms: float = 0.0
    regather_ms_per_mib: float = 0.0

    def as_calibration(self, model: str, batch: int, executions: int, *, fit_mape: float = 0.0,
                       per_image_sums: bool = False) -> Calibration:
        """These coefficients as ``model``'s :class:`lcnas.latency.Calibration` at ``batch``, fitted on ``executions``."""
        return Calibration(model=model, batch=batch, scale=self.scale, offset_ms=self.offset_ms, executions=executions,
                           fit_mape=fit_mape, gate_scale=self.gate_scale, spill_ms_per_mib=self.spill_ms_per_mib,
                           spill_free_mib=self.spill_free_mib, set_ms=self.set_ms, regather_ms_per_mib=self.regather_ms_per_mib,
                           per_image_sums=per_image_sums)


def fit_calibration(raw: list[float], gates: list[float], measured: list[float], weights_mib: list[float] | None = None,
                    sets: list[float] | None = None, regather_mib: list[float] | None = None) -> CalibrationFit:
    """Coefficients minimising Σ ((scale·(raw−gates) + gate_scale·gates + offset
    + spill·max(0, weights_mib − free) + set_ms·sets + regather·regather_mib) / measured − 1)².

    ``sets`` and ``regather_mib``: the distinct channel sets each execution gathers and their MiB
    where they outgrow the engine's cache (a batch whose images run their own paths); each is
    fitted where it varies and kept only where the fit gives it a positive cost.

    Gates get a scale of their own because they behave unlike compute inside a whole forward (a
    few small calls each: faster than timed alone), drawn toward the compute scale by a prior
    (gates are a few percent of an execution: noise alone would otherwise move their scale by tens
    of percent) whose spread is :data:`GATE_SCALE_PRIOR` and whose weight is the plain fit's
    residual noise over that spread, so exact data still fit exactly. The spill (ms per MiB of
    weights an execution reads beyond ``free`` MiB) is fitted for every threshold on a grid over
    the executions' weight MiB, the best kept; it stays 0 without ``weights_mib``, with fewer than 8 executions, or where
    it does not come out positive. Falls back to one line (:func:`fit_relative`, gate_scale =
    scale) when the gates do not vary independently of the rest or a scale comes out non-positive."""
    r = torch.tensor(raw, dtype=torch.float64)
    g = torch.tensor(gates, dtype=torch.float64)
    m = torch.tensor(measured, dtype=torch.float64)
    scale, offset = fit_relative(raw, measured)
    line = CalibrationFit(scale, scale, offset)
    gates_vary = len(raw) >= 4 and float(g.std()) > 1e-9 * max(float(r.abs().mean()), 1e-12)
    columns = [(r - g) / m, g / m, 1 / m] if gates_vary else [r / m, 1 / m]

    # The gates are a few percent of an execution: a percent of timing noise moves their own
    # scale by tens of percent. Their entries were already scaled to what the gates cost inside the
    # pass, so a priori their scale is the compute scale within GATE_SCALE_PRIOR: a prior row with
    # the fit's own noise (its residual without the prior) over that spread. Exact data still fit
    # exactly; noisy data move the gate scale only as far as they say more than the noise.

    def solve(cols: list[torch.Tensor], extra: torch.Tensor | None) -> tuple[float, list[float]] | None:
        a = torch.stack(cols + ([extra / m] if extra is not None else []), 1)
        y = torch.ones_like(m)
        sol = torch.linalg.lstsq(a, y.unsqueeze(1)).solution.squeeze(1)
        if gates_vary:  # prior · (gate_scale − scale) = 0
            prior = float(((a @ sol) - y).pow(2).mean().sqrt()) / GATE_SCALE_PRIOR
            row = torch.zeros(1, a.shape[1], dtype=a.dtype)
            row[0, 0], row[0, 1] = -prior, prior
            a, y = torch.cat([a, row]), torch.cat([y, y.new_zeros(1)])
            sol = torch.linalg.lstsq(a, y.unsqueeze(1)).solution.squeeze(1)
        resid = float(((a @ sol) - y).pow(2).sum())
        coef = [float(v) for v in sol]
        scales_ok = coef[0] > 0 and (coef[1] > 0 if gates_vary else True)
        positive_extras = coef[len(columns):]  # the set cost and the spill, where fitted
        if not scales_ok or any(not c > 0 for c in positive_extras):
            return None
        return resid, coef

    def fit(cols: list[torch.Tensor]) -> tuple[tuple[float, list[float]] | None, float | None]:
        best, best_free = solve(cols, None), None
        if weights_mib is not None and len(raw) >= 8:
            w = torch.tensor(weights_mib, dtype=torch.float64)
            for free in torch.linspace(0.0, float(w.max()), 25)[:-1].tolist():
                found = solve(cols, (w - free).clamp(min=0.0))
                if found is not None and (best is None or found[0] < best[0]):
                    best, best_free = found, free
        return best, best_free

    extras = {name: torch.tensor(v, dtype=torch.float64) for name, v in (("sets", sets), ("regather", regather_mib))
              if v is not None and len(raw) >= 8 and float(torch.tensor(v, dtype=torch.float64).std()) > 0}
    best: tuple[float, list[float]] | None = None
    best_free: float | None = None
    chosen: tuple[str, ...] = ()
    for names in (tuple(extras), *((n,) for n in extras), ()):  # every extra, each alone, none
        best, best_free = fit(columns + [extras[n] / m for n in names])
        if best is not None:
            chosen = names
            break
    if best is None:
        return line
    coef = best[1]
    spill = coef[-1] if best_free is not None else 0.0
    priced: dict[str, float] = dict(zip(chosen, coef[len(columns) : len(columns) + len(chosen)], strict=True))
    scale, gate_scale, offset = (coef[0], coef[1], coef[2]) if gates_vary else (coef[0], coef[0], coef[1])
    return CalibrationFit(scale, gate_scale, offset, spill, best_free or 0.0, priced.get("sets", 0.0), priced.get("regather", 0.0))


def fit_relative(raw: list[float], measured: list[float]) -> tuple[float, float]:
    """(scale, offset) minimising Σ ((scale·raw + offset) / measured − 1)²; a pure ratio when the
    points do not pin a line (one point, no spread, or a non-positive slope)."""
    r = torch.tensor(raw, dtype=torch.float64)
    m = torch.tensor(measured, dtype=torch.float64)
    ratio = float((r / m).sum() / ((r / m) ** 2).sum())  # best pure scale for relative error
    if len(raw) < 2 or float(r.std()) <= 1e-12 * float(r.abs().mean()):
        return ratio, 0.0
    a = torch.stack([r / m, 1 / m], 1)  # (scale·r + offset)/m ≈ 1
    sol = torch.linalg.lstsq(a, torch.ones_like(m).unsqueeze(1)).solution.squeeze(1)
    scale, offset = float(sol[0]), float(sol[1])
    if not scale > 0:
        return ratio, 0.0
    return scale, offset


def _calibration_model(model_name: str, measurement: dict[str, Any]):
    """An LC model whose gates have a shape the table measured (hidden 16 and avg pooling when
    measured, else the first measured ones), for the calibration's end-to-end executions."""
    hiddens = list(measurement.get("gate_hiddens", [16]))
    poolings = list(measurement.get("gate_poolings", ["avg"]))
    cfg = GateConfig(hidden=16 if 16 in hiddens else hiddens[0], pooling="avg" if "avg" in poolings else poolings[0],
                     group_size=int(measurement.get("group_size", 4)), scaling=bool(measurement.get("gate_scaling", True)))
    return create_model(model_name, gating="lc", gate_config=cfg)


def _engine(ex, batch: int) -> str:
    """Which path the engine's last forward pass (at ``batch``) took."""
    if ex.native_mflops is not None:
        return "native whole network" + (" (one image per thread)" if batch > 1 else "")
    if batch == 1 and ex.ran_native_convs:
        return "native convs, blocks driven from Python"
    return "pytorch convs" + (", samples grouped by path" if batch > 1 else "")


def _settle(fn, *, seconds: float) -> None:
    """Run ``fn`` for ``seconds`` before timing anything: a process's first second or two of a new
    workload runs slower (clock ramp, allocator and kernel caches)."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()


def _nothing() -> None:
    """The empty call: what a difference is taken against where there is no baseline."""


def _point(ms: float, count: int) -> Timing:
    """An entry derived as a difference of medians: no spread of its own."""
    return Timing(ms, ms, 0.0, count)


def _final_hw(arch) -> tuple[int, int]:
    return arch.blocks[-1].out_hw


@torch.no_grad()
def speed_factor(model, table: LatencyTable, *, batch: int = 1, executions: int = 12, warmup: int = 3, repeats: int = 15,
                 device: torch.device | str = "cpu", seed: int = CALIBRATION_SEED + 7) -> float:
    """Measured ÷ predicted latency over ``executions`` random executions of ``model``, now.

    A shared host, frequency scaling or a busy neighbour makes the whole machine faster or slower
    than when the table was made, by up to tens of percent within an hour; relative unit costs
    stay put. Pass the factor as ``speed=`` to the predictors to follow the machine as it is. The
    probe runs the same kind of executions the calibration fitted (random decisions, gates
    evaluated in half of them), interleaved, under a second at batch 1; it is the median ratio,
    so a stray slow call does not move it.
    """
    from ._predict import batch_latency_ms, sample_latency_ms

    if getattr(model, "gating", "none") == "none":
        raise ValueError("speed_factor needs a gated model (create_model(..., gating='lc'), or a gated checkpoint)")
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed + batch)
    x = torch.rand(batch, *describe(model).input_size, generator=gen).to(device)
    plans = random_plans(model, executions, batch, gen)
    try:
        predicted = []
        for forced in plans:
            with model.forced(forced):
                model(x)
                predicted.append(float(sample_latency_ms(model, table)[0]) if batch == 1 else batch_latency_ms(model, table, batch=batch))
        measured = measure_interleaved(len(plans), lambda i: model(x), context=lambda i: model.forced(plans[i]),
                                       warmup=warmup, repeats=repeats, device=device)
    finally:
        model.train(was_training)
    return statistics.median(m.latency_ms_median / p for m, p in zip(measured, predicted, strict=True))

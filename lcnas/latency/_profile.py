"""The table generator: measures every unit the dynamic model can execute, through the engine itself.

For each batch size: the stem, the head, the per-forward frame, and per distinct block shape the
skip path, the residual branch at every kept-channel count (multiples of the smallest group size),
the gates of each requested gate shape, and (batches) the gather/scatter of a half-running batch.
Blocks run through the model's engine (``model.engine``, an :class:`lcnas.engine.Engine`) with forced
decisions, so the table
times exactly the code that inference runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch
from tqdm.auto import tqdm

from .._env import environment_metadata
from ..cost import describe
from ..models import ForcedDecisions, GateConfig, create_model, native_status
from ._keys import block_key, gate_key
from ._table import LatencyEntry, LatencyTable
from ._timing import Timing, measure, measure_difference, measure_interleaved

__all__ = ["profile_model", "device_metadata", "random_decisions", "random_plans", "calibrate", "recalibrate", "fit_calibration", "fit_relative"]

CALIBRATION_SEED = 20261124  # the generator's own executions; validation draws others

_CL = torch.channels_last


def device_metadata(device: torch.device, threads: int, argv: list[str] | None) -> dict[str, Any]:
    """A latency table's ``device`` section: kind, CPU model or GPU name, threads, versions, date and
    the command ``argv`` that made it."""
    env = environment_metadata(argv)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else env["cpu_model"]
    return {"kind": device.type, "name": name, "threads": threads, "torch": env["torch"], "dtype": "float32",
            "cpu_count": env["cpu_count"], "platform": env["platform"], "python": env["python"],
            "lcnas_version": env["lcnas_version"], "date_utc": env["date_utc"], "command": env["command"]}


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
    calibration_executions: int = 48,
) -> LatencyTable:
    """Measure a latency table for ``model_name`` (all gate shapes in ``hiddens`` × ``poolings``),
    then fit its end-to-end calibration on ``calibration_executions`` random executions per batch size."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available")
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

    def diff(fn, base) -> Timing:  # a gate: tens of µs on top of a block's hundreds, paired per round
        return measure_difference(fn, base, warmup=warmup, repeats=2 * repeats, device=dev)

    shapes: dict[str, Any] = {}  # one representative block per distinct shape
    for b in arch.blocks:
        shapes.setdefault(block_key(b), b)
    work = len(batches) * (3 + sum(1 + groups[b.index] + 2 * len(hiddens) * len(poolings) + 1 for b in shapes.values()))
    bar = tqdm(total=work, desc=f"profile {model_name}", disable=progress is False if progress is not None else None, file=sys.stderr)
    blocks = model.blocks()
    engines: dict[str, str] = {}  # batch → the hard-execution path the table's units were timed on
    for batch in batches:
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
        for key, b in shapes.items():
            block = blocks[b.index]
            x = torch.rand(batch, b.in_channels, *b.in_hw, device=dev).contiguous(memory_format=_CL)
            nb = len(arch.blocks)

            def run_block(forced: ForcedDecisions, xin=x, i=b.index, blk=block):
                with model.forced(forced):
                    return ex.block(i, blk, xin)

            off = ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool))
            t = timed(lambda: run_block(off))
            add("block_skip", key, 0, batch, t)
            skip_ms[key] = t.latency_ms_median
            bar.update(1)
            for n_groups in range(1, groups[b.index] + 1):
                keep = [None] * nb
                keep[b.index] = torch.arange(groups[b.index]) < n_groups
                on = ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool), channel_keep=tuple(keep))
                add("block_run", key, n_groups * group_size, batch, timed(lambda: run_block(on)))
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
            for hidden in hiddens:
                for pooling in poolings:
                    cfg = GateConfig(hidden=hidden, pooling=pooling, group_size=group_size, scaling=scaling)
                    lc: Any = create_model(model_name, gating="lc", gate_config=cfg).to(dev).eval()
                    ch: Any = create_model(model_name, gating="channel", gate_config=cfg).to(dev).eval()
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
                    add("layer_gate", gate_key(gspec, gspec.layer_gate, pooling, pools=True), 0, batch, layer)
                    add("channel_gate", gate_key(gspec, gspec.channel_gate, pooling, pools=False), 0, batch, chan_after_layer)
                    add("channel_gate", gate_key(gspec, gspec.channel_gate, pooling, pools=True), 0, batch, chan_alone)
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
        # The frame: a whole forward with every block skipped, minus its parts.
        all_off = ForcedDecisions(block_run=torch.zeros(len(arch.blocks), dtype=torch.bool))

        def forward_off():
            with model.forced(all_off):
                model(x0)
        whole = timed(forward_off).latency_ms_median
        frame = max(0.0, whole - stem.latency_ms_median - head.latency_ms_median - sum(skip_ms[block_key(b)] for b in arch.blocks))
        add("frame", "", 0, batch, _point(frame, repeats))
        bar.update(1)
    bar.close()
    measurement = {"batch_sizes": list(batches), "warmup": warmup, "repeats": repeats, "group_size": group_size,
                   "gate_hiddens": list(hiddens), "gate_poolings": list(poolings), "gate_scaling": scaling,
                   "timer": "cuda events" if dev.type == "cuda" else "time.perf_counter",
                   # which convolutions batch 1 ran on: a table is only valid for the same engine
                   "batch1_convs": native_status() if dev.type == "cpu" else "pytorch (cuda)",
                   "engine": engines,
                   "rules": "medians of repeats after warm-up; fixed threads; inputs channels-last float32; "
                            "frame, block_scatter and the gates are differences of measured medians (clamped at 0); "
                            "a gate is its block executed with the gate minus without"}
    table = LatencyTable(device=device_metadata(dev, torch.get_num_threads(), argv), measurement=measurement, entries=tuple(entries))
    if calibration_executions >= 2:
        model = _calibration_model(model_name, measurement).to(dev).eval()  # gates of a shape the table measured
        cal = tuple(calibrate(model, table, batch=b, executions=calibration_executions if b == 1 else max(2, calibration_executions // 3),
                              warmup=2, repeats=max(3, repeats // 2 if b == 1 else repeats // 6), device=dev) for b in batches)
        table = replace(table, calibration=cal, measurement={**measurement, "calibration_executions": calibration_executions})
    return table


@torch.no_grad()
def recalibrate(table: LatencyTable, model_name: str, *, batches: tuple[int, ...], executions: int = 48, threads: int | None = None,
                device: str = "cpu", warmup: int = 2, repeats: int = 15) -> LatencyTable:
    """``table`` with ``model_name``'s calibration at ``batches`` fitted anew on this machine now,
    entries untouched: for a machine whose state moved since the table was made. (The timing
    warms up on the calibration's own executions: :func:`measure_interleaved`.)"""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    model = _calibration_model(model_name, table.measurement).to(dev).eval()
    fresh = {(model_name, b): calibrate(model, replace(table, calibration=()), batch=b,
                                        executions=executions if b == 1 else max(2, executions // 3), warmup=warmup,
                                        repeats=repeats if b == 1 else max(3, repeats // 3), device=dev) for b in batches}
    kept = tuple(c for c in table.calibration if (c.model, c.batch) not in fresh)
    when = {**table.measurement.get("recalibrated_utc", {}), model_name: environment_metadata(None)["date_utc"]}
    return replace(table, calibration=kept + tuple(fresh.values()), measurement={**table.measurement, "recalibrated_utc": when})


def random_decisions(model, n: int, gen: torch.Generator, *, shared: bool = False) -> ForcedDecisions:
    """``n`` random executions from nearly empty to full: per sample a random block-run probability
    and a random channel-keep probability, then independent draws per block and channel group
    (blocks and channels the model has no gate for are left on). ``shared``: one pair of
    probabilities for all ``n`` samples, so a batch of them ranges from nearly empty to full
    (per-sample probabilities average out to half a network in every large batch)."""
    blocks = model.blocks()
    rows = 1 if shared else n
    p_run = torch.rand(rows, 1, generator=gen)
    run = torch.rand(n, len(blocks), generator=gen) < p_run
    p_keep = torch.rand(rows, 1, generator=gen) * 0.9 + 0.1
    keep = tuple(None if b.channel_gate is None else torch.rand(n, b.channel_gate.outputs, generator=gen) < p_keep for b in blocks)
    # Only what the model's gates can decide varies: a block without a layer gate always runs.
    run |= torch.tensor([b.layer_gate is None for b in blocks])
    return ForcedDecisions(block_run=run, channel_keep=keep)


def random_plans(model, executions: int, batch: int, gen: torch.Generator) -> list[ForcedDecisions]:
    """``executions`` random executions of a batch of ``batch`` (probabilities shared by the batch),
    half of them also running the gates (decisions still forced), as a trained model does: what
    the calibration fits, the probe times and validation holds out."""
    return [replace(random_decisions(model, batch, gen, shared=True), evaluate_gates=bool(i % 2)) for i in range(executions)]


@torch.no_grad()
def calibrate(model, table: LatencyTable, *, batch: int, executions: int, warmup: int, repeats: int, device: torch.device,
              seed: int = CALIBRATION_SEED):
    """The calibration (:func:`fit_calibration`) from the table's sums to measured end-to-end
    latency over random executions (:func:`random_plans`).

    Executions are timed interleaved, one call each per round over ``repeats`` rounds (after an
    untimed call that warms that path), so a drift of the machine during calibration hits every
    execution alike instead of bending the fit. The fit minimises the squared *relative* error,
    the quantity validation judges (±10 %), so cheap executions weigh as much as expensive ones.
    """
    from ._predict import _latency_model, batch_parts_ms
    from ._table import Calibration

    gen = torch.Generator().manual_seed(seed + batch)
    name = model.lcnas_spec["name"]
    arch = describe(model)
    cost = _latency_model(model, table, batch)
    x = torch.rand(batch, *arch.input_size, generator=gen).to(device)
    plans = random_plans(model, executions, batch, gen)
    raw, gates = [], []
    for forced in plans:
        with model.forced(forced):
            model(x)  # the trace the prediction reads
        trace = model.last_trace
        if batch == 1:
            r, g = (float(v[0]) for v in cost.parts_ms(arch, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated))
        else:
            r, g = batch_parts_ms(cost, arch, trace)
        raw.append(r)
        gates.append(g)
    measured = [t.latency_ms_median for t in measure_interleaved(len(plans), lambda i: model(x), context=lambda i: model.forced(plans[i]),
                                                                 warmup=warmup, repeats=repeats, device=device)]
    scale, gate_scale, offset = fit_calibration(raw, gates, measured)
    fit = [(r - g) * scale + g * gate_scale + offset for r, g in zip(raw, gates, strict=True)]
    mape = statistics.fmean(abs(f / m - 1) for f, m in zip(fit, measured, strict=True))
    return Calibration(model=name, batch=batch, scale=scale, offset_ms=offset, executions=executions, fit_mape=mape, gate_scale=gate_scale)


def fit_calibration(raw: list[float], gates: list[float], measured: list[float]) -> tuple[float, float, float]:
    """(scale, gate_scale, offset) minimising Σ ((scale·(raw−gates) + gate_scale·gates + offset) / measured − 1)².

    Gates get a scale of their own because they behave unlike compute inside a whole forward (a
    few small calls each: faster than timed alone, where compute is slower). Falls back to one
    line (:func:`fit_relative`, gate_scale = scale) when the gates do not vary independently of
    the rest or a scale comes out non-positive."""
    r = torch.tensor(raw, dtype=torch.float64)
    g = torch.tensor(gates, dtype=torch.float64)
    m = torch.tensor(measured, dtype=torch.float64)
    scale, offset = fit_relative(raw, measured)
    if len(raw) < 4 or float(g.std()) <= 1e-9 * max(float(r.abs().mean()), 1e-12):
        return scale, scale, offset
    a = torch.stack([(r - g) / m, g / m, 1 / m], 1)
    sol = torch.linalg.lstsq(a, torch.ones_like(m).unsqueeze(1)).solution.squeeze(1)
    s_c, s_g, off = (float(v) for v in sol)
    if not (s_c > 0 and s_g > 0):
        return scale, scale, offset
    return s_c, s_g, off


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

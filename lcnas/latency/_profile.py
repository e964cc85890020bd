"""The table generator: measures every unit the dynamic model can execute, through the engine itself.

For each batch size: the stem, the head, the per-forward frame, and per distinct block shape the
skip path, the residual branch at every kept-channel count (multiples of the smallest group size),
the gates of each requested gate shape, and (batches) the gather/scatter of a half-running batch.
Blocks run through :class:`lcnas.models._hard.HardExecutor` with forced decisions, so the table
times exactly the code that inference runs.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import torch
from tqdm.auto import tqdm

from .._env import environment_metadata
from ..cost import describe
from ..models import ForcedDecisions, GateConfig, create_model
from ..models._hard import _run_gate, gate_one, pool
from ._keys import block_key, gate_key
from ._table import LatencyEntry, LatencyTable
from ._timing import Timing, measure

__all__ = ["profile_model", "device_metadata", "random_decisions", "calibrate"]

CALIBRATION_SEED = 20261124  # the generator's own executions; validation draws others

_CL = torch.channels_last


def device_metadata(device: torch.device, threads: int, argv: list[str] | None) -> dict[str, Any]:
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
    calibration_executions: int = 24,
) -> LatencyTable:
    """Measure a latency table for ``model_name`` (all gate shapes in ``hiddens`` × ``poolings``),
    then fit its end-to-end calibration on ``calibration_executions`` random executions per batch size."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but no CUDA GPU is available")
    torch.manual_seed(0)
    model = create_model(model_name, gating="lc", gate_config=GateConfig(group_size=group_size)).to(dev).eval()
    arch = describe(model)
    ex = model._hard
    groups = {b.index: b.width // group_size for b in arch.blocks}
    entries: list[LatencyEntry] = []

    def add(unit: str, shape: str, kept: int, batch: int, t: Timing) -> None:
        entries.append(LatencyEntry(model_name, unit, shape, kept, batch, t.latency_ms_median, t.latency_ms_p95, t.latency_ms_std, t.count))

    def timed(fn) -> Timing:
        return measure(fn, warmup=warmup, repeats=repeats, device=dev)

    shapes = {}  # one representative block per distinct shape
    for b in arch.blocks:
        shapes.setdefault(block_key(b), b)
    work = len(batches) * (3 + sum(1 + groups[b.index] + 2 * len(hiddens) * len(poolings) + 1 for b in shapes.values()))
    bar = tqdm(total=work, desc=f"profile {model_name}", disable=progress is False if progress is not None else None, file=sys.stderr)
    blocks = model.blocks()
    for batch in batches:
        x0 = torch.rand(batch, *arch.input_size, device=dev)
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
            for hidden in hiddens:
                for pooling in poolings:
                    cfg = GateConfig(hidden=hidden, pooling=pooling, group_size=group_size, scaling=scaling)
                    gated = create_model(model_name, gating="lc", gate_config=cfg).to(dev).eval()
                    g_block = gated.blocks()[b.index]
                    gspec = describe(gated).blocks[b.index]
                    lg = gated._hard._pack(b.index, g_block)["layer_gate"]
                    cg = gated._hard._pack(b.index, g_block)["channel_gate"]
                    decide = gate_one if batch == 1 else (lambda packed, v: _run_gate(packed, v)[:, 0] > 0)
                    add("layer_gate", gate_key(gspec, gspec.layer_gate, pooling, pools=True), 0, batch,
                        timed(lambda: decide(lg, pool(pooling, x))))
                    v = pool(pooling, x)
                    add("channel_gate", gate_key(gspec, gspec.channel_gate, pooling, pools=False), 0, batch, timed(lambda: decide(cg, v)))
                    add("channel_gate", gate_key(gspec, gspec.channel_gate, pooling, pools=True), 0, batch,
                        timed(lambda: decide(cg, pool(pooling, x))))
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
                add("block_scatter", key, 0, batch, Timing(scatter, scatter, 0.0, repeats))
                bar.update(1)
        # The frame: a whole forward with every block skipped, minus its parts.
        all_off = ForcedDecisions(block_run=torch.zeros(len(arch.blocks), dtype=torch.bool))

        def forward_off():
            with model.forced(all_off):
                model(x0)
        whole = timed(forward_off).latency_ms_median
        frame = max(0.0, whole - stem.latency_ms_median - head.latency_ms_median - sum(skip_ms[block_key(b)] for b in arch.blocks))
        add("frame", "", 0, batch, Timing(frame, frame, 0.0, repeats))
        bar.update(1)
    bar.close()
    measurement = {"batch_sizes": list(batches), "warmup": warmup, "repeats": repeats, "group_size": group_size,
                   "gate_hiddens": list(hiddens), "gate_poolings": list(poolings), "gate_scaling": scaling,
                   "timer": "cuda events" if dev.type == "cuda" else "time.perf_counter",
                   "rules": "medians of repeats after warm-up; fixed threads; inputs channels-last float32; "
                            "frame and block_scatter are differences of measured medians (clamped at 0)"}
    table = LatencyTable(device=device_metadata(dev, torch.get_num_threads(), argv), measurement=measurement, entries=tuple(entries))
    if calibration_executions >= 2:
        cal = tuple(calibrate(model, table, batch=b, executions=calibration_executions if b == 1 else max(2, calibration_executions // 3),
                              warmup=max(1, warmup // 3), repeats=max(3, repeats // 3), device=dev) for b in batches)
        table = replace(table, calibration=cal, measurement={**measurement, "calibration_executions": calibration_executions})
    return table


def random_decisions(model, n: int, gen: torch.Generator) -> ForcedDecisions:
    """``n`` random executions from nearly empty to full: per sample a random block-run probability
    and a random channel-keep probability, then independent draws per block and channel group."""
    blocks = model.blocks()
    p_run = torch.rand(n, 1, generator=gen)
    run = torch.rand(n, len(blocks), generator=gen) < p_run
    p_keep = torch.rand(n, 1, generator=gen) * 0.9 + 0.1
    keep = tuple(torch.rand(n, b.channel_gate.outputs, generator=gen) < p_keep for b in blocks)
    return ForcedDecisions(block_run=run, channel_keep=keep)


@torch.no_grad()
def calibrate(model, table: LatencyTable, *, batch: int, executions: int, warmup: int, repeats: int, device: torch.device,
              seed: int = CALIBRATION_SEED):
    """Least-squares line from the table's sum to measured end-to-end latency of random executions."""
    from ._predict import batch_latency_ms, sample_latency_ms
    from ._table import Calibration

    gen = torch.Generator().manual_seed(seed + batch)
    name = model.lcnas_spec["name"]
    x = torch.rand(batch, *describe(model).input_size, generator=gen).to(device)
    raw, measured = [], []
    for _ in range(executions):
        forced = random_decisions(model, batch, gen)
        with model.forced(forced):
            measured.append(measure(lambda: model(x), warmup=warmup, repeats=repeats, device=device).latency_ms_median)
            raw.append(float(sample_latency_ms(model, table)[0]) if batch == 1 else batch_latency_ms(model, table, batch=batch))
    r, m = torch.tensor(raw, dtype=torch.float64), torch.tensor(measured, dtype=torch.float64)
    var = float(((r - r.mean()) ** 2).sum())
    scale = float(((r - r.mean()) * (m - m.mean())).sum()) / var if var > 0 else float(m.mean() / r.mean())
    if not scale > 0:  # degenerate spread: a pure ratio
        scale = float(m.mean() / r.mean())
    offset = float(m.mean() - scale * r.mean()) if var > 0 else 0.0
    fit = r * scale + offset
    mape = float(((fit - m).abs() / m).mean())
    return Calibration(model=name, batch=batch, scale=scale, offset_ms=offset, executions=executions, fit_mape=mape)


def _final_hw(arch) -> tuple[int, int]:
    return arch.blocks[-1].out_hw


@torch.no_grad()
def speed_factor(model, table: LatencyTable, *, batch: int = 1, warmup: int = 10, repeats: int = 50,
                 device: torch.device | str = "cpu") -> float:
    """Measured ÷ predicted latency of ``model`` with every block and channel on (gates bypassed), now.

    A shared host, frequency scaling or a busy neighbour makes the whole machine faster or slower
    than when the table was made, by tens of percent; block-to-block ratios stay put. Pass the
    factor as ``speed=`` to the predictors to follow the machine as it is (a one-second probe of
    the static network; no dynamic execution is measured for it).
    """
    from ._predict import batch_latency_ms, sample_latency_ms

    if getattr(model, "gating", "none") == "none":
        raise ValueError("speed_factor needs a gated model (create_model(..., gating='lc'), or a gated checkpoint)")
    was_training = model.training
    model.eval()
    x = torch.rand(batch, *describe(model).input_size).to(device)
    all_on = ForcedDecisions(block_run=torch.ones(len(model.blocks()), dtype=torch.bool))
    try:
        with model.forced(all_on):
            measured = measure(lambda: model(x), warmup=warmup, repeats=repeats, device=device).latency_ms_median
            predicted = float(sample_latency_ms(model, table)[0]) if batch == 1 else batch_latency_ms(model, table, batch=batch)
    finally:
        model.train(was_training)
    return measured / predicted

from __future__ import annotations

import json

import pytest
import torch

import lcnas
from lcnas.cost import describe
from lcnas.errors import ConfigError
from lcnas.latency import LatencyTable, LatencyTableError, expected_latency_ms, profile_model, sample_latency_ms
from lcnas.latency._keys import block_key, gate_key
from lcnas.models import ForcedDecisions, GateConfig


@pytest.fixture(scope="module")
def tiny_table() -> LatencyTable:
    # The generator end to end on ResNet-20, few repeats: a real table in seconds.
    return profile_model("resnet20", batches=(1, 8), repeats=2, warmup=1, hiddens=(16,), progress=False)


def test_generator_covers_every_unit(tiny_table):
    units = {e.unit for e in tiny_table.entries}
    assert units == {"frame", "stem", "head", "block_run", "block_skip", "layer_gate", "channel_gate", "block_scatter"}
    arch = describe(lcnas.create_model("resnet20", gating="lc"))
    for b in arch.blocks:  # every kept-channel count, every batch
        assert tiny_table.kept_options("resnet20", block_key(b), 1) == list(range(4, b.width + 1, 4))
    assert tiny_table.batches("resnet20") == [1, 8]
    assert tiny_table.device["kind"] == "cpu" and tiny_table.device["threads"] >= 1
    assert all(e.latency_ms_median >= 0 for e in tiny_table.entries)


def test_table_records_the_engine_it_timed(tiny_table):
    from lcnas.engine import native

    expected = ("native whole network", "native whole network (one image per thread)") if native() is not None \
        else ("pytorch convs", "pytorch convs, samples grouped by path")
    assert (tiny_table.measurement["engine"]["1"], tiny_table.measurement["engine"]["8"]) == expected


def test_round_trip_through_json(tiny_table, tmp_path):
    path = tiny_table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(path)
    assert loaded.entries == tiny_table.entries and loaded.device == tiny_table.device
    assert json.loads(path.read_text())["schema_version"] == 1


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("device"), "missing field 'device'"),
    (lambda d: d["entries"][0].pop("batch"), r"entries\[0\] is missing field 'batch'"),
    (lambda d: d["entries"][0].update(latency_us_median=d["entries"][0].pop("latency_ms_median")), "milliseconds"),
    (lambda d: d.update(schema="nn-meter"), "not an lcnas latency table"),
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d["entries"][0].update(unit="conv"), "unit 'conv'"),
    (lambda d: d.update(entries=5), "'entries' must be a JSON list, got int"),
    (lambda d: d.update(device=["AMD"]), "'device' must be a JSON object, got list"),
    (lambda d: d.update(calibration=[7]), r"calibration\[0\] is not an object"),
])
def test_bad_tables_give_clear_errors(tiny_table, tmp_path, mutate, match):
    data = tiny_table.to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=match) as err:
        LatencyTable.load(path)
    assert "bad.json" in str(err.value)


def test_malformed_json_and_missing_file(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(LatencyTableError, match="not valid JSON"):
        LatencyTable.load(tmp_path / "m.json")
    with pytest.raises(LatencyTableError, match="not found"):
        LatencyTable.load(tmp_path / "none.json")


def test_table_for_another_model_or_batch(tiny_table):
    model = lcnas.create_model("resnet32", gating="lc").eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(LatencyTableError, match="covers resnet20, not 'resnet32'"):
        sample_latency_ms(model, tiny_table)
    with pytest.raises(LatencyTableError, match="batch sizes"):
        tiny_table.check_for("resnet20", 64)


def test_table_from_another_device_warns(tiny_table):
    other = LatencyTable(device={**tiny_table.device, "name": "Some Other CPU"}, measurement=tiny_table.measurement, entries=tiny_table.entries)
    with pytest.warns(UserWarning, match="Some Other CPU"):
        other.check_for("resnet20", 1)


def _fake_table(model) -> LatencyTable:
    """Every unit 1 ms except block_run = 1 + kept/16 ms, gates 0.5 ms, frame 0.25 ms."""
    arch = describe(model)
    rows = [("frame", "", 0, 0.25), ("stem", "", 0, 2.0), ("head", "", 0, 1.0)]
    for b in arch.blocks:
        rows.append(("block_skip", block_key(b), 0, 1.0))
        rows += [("block_run", block_key(b), k, 1.0 + k / 16) for k in range(4, b.width + 1, 4)]
        rows.append(("layer_gate", gate_key(b, b.layer_gate, "avg", pools=True), 0, 0.5))
        rows.append(("channel_gate", gate_key(b, b.channel_gate, "avg", pools=False), 0, 0.5))
    entries = [{"model": "resnet20", "unit": u, "shape": s, "kept_channels": k, "batch": 1, "latency_ms_median": v,
                "latency_ms_p95": v, "latency_ms_std": 0.0, "count": 1} for u, s, k, v in rows]
    from lcnas._env import cpu_model

    return LatencyTable.from_dict({"schema": "lcnas-latency-table", "schema_version": 1,
                                   "device": {"kind": "cpu", "name": cpu_model(), "threads": 1, "torch": "x", "dtype": "float32"},
                                   "measurement": {}, "entries": entries})


def test_predictor_equals_the_hand_sum_on_a_fake_table():
    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    run = torch.tensor([True, False, True, True, False, True, False, True, True])
    keep = tuple(torch.tensor([True, False] * (b.channel_gate.outputs // 2)) for b in model.blocks())
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=run, channel_keep=keep, evaluate_gates=True)):
        model(torch.rand(1, 3, 32, 32))
    widths = [b.conv1.out_channels for b in model.blocks()]
    expected = 0.25 + 2.0 + 1.0
    for r, w in zip(run.tolist(), widths, strict=True):
        expected += 0.5  # layer gate
        expected += (0.5 + 1.0 + (w // 2) / 16) if r else 1.0  # channel gate + run at half width, or skip
    assert float(sample_latency_ms(model, table)[0]) == pytest.approx(expected)


def test_differentiable_expected_latency_has_the_right_gradient_sign():
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(init_logit=0.0)).train()
    table = _fake_table(model)
    model(torch.rand(4, 3, 32, 32))
    expected_latency_ms(model, table).mean().backward()
    # raising a keep logit raises expected latency: positive gradient on the keep-logit biases
    block = model.blocks()[3]
    assert block.layer_gate.mlp[-1].bias.grad[0] > 0
    assert (block.channel_gate.mlp[-1].bias.grad[: block.channel_gate.outputs] > 0).all()


def test_calibration_scales_and_offsets_the_sum():
    from dataclasses import replace

    from lcnas.latency import Calibration

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    raw = float(sample_latency_ms(model, table)[0])
    calibrated = replace(table, calibration=(Calibration("resnet20", 1, 2.0, 0.5, 10, 0.03),))
    assert float(sample_latency_ms(model, calibrated)[0]) == pytest.approx(2.0 * raw + 0.5)
    # another model's or batch's calibration does not apply
    other = replace(table, calibration=(Calibration("resnet20", 8, 2.0, 0.5, 10, 0.03),))
    assert float(sample_latency_ms(model, other)[0]) == pytest.approx(raw)


def test_spill_adds_its_rate_per_mib_of_weights_past_the_free_part():
    from dataclasses import replace

    from lcnas.latency import Calibration

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    arch = describe(model)
    # a basic block reads 9 × (in + out) × kept float32 weights
    mib = [9 * (b.in_channels + b.out_channels) * b.width * 4 / 2**20 for b in arch.blocks]
    spill = replace(table, calibration=(Calibration("resnet20", 1, 1.0, 0.0, 10, 0.0, spill_ms_per_mib=3.0, spill_free_mib=0.5),))
    for run in ([True] * 9, [True, False] * 4 + [True], [False] * 8 + [True], [False] * 9):
        with torch.no_grad(), model.forced(ForcedDecisions(block_run=torch.tensor(run))):
            model(torch.rand(1, 3, 32, 32))
        read = sum(m for m, r in zip(mib, run, strict=True) if r)
        assert float(sample_latency_ms(model, spill)[0]) == pytest.approx(float(sample_latency_ms(model, table)[0]) + 3.0 * max(0.0, read - 0.5))
    assert spill.calibration[0].to_dict()["spill_free_mib"] == 0.5
    data = spill.to_dict()
    data["calibration"][0]["spill_ms_per_mib"] = -1.0
    with pytest.raises(LatencyTableError, match="spill_ms_per_mib"):
        LatencyTable.from_dict(data)


def test_relative_latency_is_the_prediction_over_the_static_networks():
    from lcnas.latency import relative_latency, static_latency_ms

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    nb = len(model.blocks())
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=torch.ones(nb, dtype=torch.bool))):
        model(torch.rand(1, 3, 32, 32))
    assert float(relative_latency(model, table)[0]) == pytest.approx(1.0)  # the static network itself
    static = static_latency_ms(model, table)
    assert static == pytest.approx(float(sample_latency_ms(model, table)[0]))
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=torch.zeros(nb, dtype=torch.bool), evaluate_gates=True)):
        model(torch.rand(1, 3, 32, 32))
    assert float(relative_latency(model, table)[0]) == pytest.approx(float(sample_latency_ms(model, table)[0]) / static)
    assert float(relative_latency(model, table)[0]) < 1.0


def test_generator_fits_a_calibration_that_survives_the_file(tiny_table, tmp_path):
    fits = {(c.model, c.batch): c for c in tiny_table.calibration}
    assert set(fits) == {("resnet20", 1), ("resnet20", 8)}
    assert all(c.scale > 0 and c.executions >= 2 and c.fit_mape >= 0 for c in fits.values())
    back = LatencyTable.load(tiny_table.save(tmp_path / "t.json"))
    assert back.calibration_for("resnet20", 1) == tiny_table.calibration_for("resnet20", 1)
    data = json.loads((tmp_path / "t.json").read_text())
    data["calibration"][0].pop("scale")
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=r"calibration\[0\] is malformed"):
        LatencyTable.load(tmp_path / "bad.json")


def test_gates_of_another_output_count_use_the_nearest_measured_one(tiny_table):
    # The table measured gates with group size 4 and scaling; a model without scaling has half the outputs.
    model = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(scaling=False)).eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert float(sample_latency_ms(model, tiny_table)[0]) > 0
    missing = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(hidden=7)).eval()
    with torch.no_grad():
        missing(torch.rand(1, 3, 32, 32))
    with pytest.raises(LatencyTableError, match="h7"):  # no gate of that width at all: named, not guessed
        sample_latency_ms(missing, tiny_table)


def test_speed_factor_rescales_predictions_to_the_machine_now(monkeypatch):
    import lcnas.latency._profile as prof
    from lcnas.latency import Timing, speed_factor

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    seen = []

    def fake_interleaved(n, call, *, context, **kw):
        # the machine runs every probe execution in 1.5 × what the table predicts for it
        out = []
        for i in range(n):
            with context(i), torch.no_grad():
                call(i)
                ms = 1.5 * float(sample_latency_ms(model, table)[0])
            seen.append(model.last_trace.gates_evaluated)
            out.append(Timing(ms, ms, 0.0, 1))
        return out

    monkeypatch.setattr(prof, "measure_interleaved", fake_interleaved)
    factor = speed_factor(model, table, executions=6)
    assert factor == pytest.approx(1.5)
    assert any(seen) and not all(seen)  # the probe covers executions with and without gates
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))  # the gates decide
    assert float(sample_latency_ms(model, table, speed=factor)[0]) == pytest.approx(1.5 * float(sample_latency_ms(model, table)[0]))
    with pytest.raises(ValueError, match="gated model"):
        speed_factor(lcnas.create_model("resnet20"), table)


def test_random_decisions_only_vary_what_the_gates_decide():
    from lcnas.latency import random_decisions

    gen = torch.Generator().manual_seed(0)
    layer = lcnas.create_model("resnet20", gating="layer")
    f = random_decisions(layer, 32, gen)
    assert all(k is None for k in f.channel_keep) and not bool(f.block_run.all())
    channel = lcnas.create_model("resnet20", gating="channel")
    f = random_decisions(channel, 32, gen)
    assert bool(f.block_run.all()) and all(k is not None for k in f.channel_keep)


def _fake_batch_table(model, batch: int) -> LatencyTable:
    """_fake_table at batch 1 plus the same units at ``batch`` costing 10× (block_scatter 2 ms)."""
    one = _fake_table(model)
    rows = [e.to_dict() for e in one.entries]
    for e in one.entries:
        rows.append({**e.to_dict(), "batch": batch, "latency_ms_median": 10 * e.latency_ms_median, "latency_ms_p95": 10 * e.latency_ms_median})
    rows += [{"model": "resnet20", "unit": "block_scatter", "shape": block_key(b), "kept_channels": 0, "batch": batch,
              "latency_ms_median": 2.0, "latency_ms_p95": 2.0, "latency_ms_std": 0.0, "count": 1} for b in describe(model).blocks]
    return LatencyTable(device=one.device, measurement={}, entries=tuple(LatencyTable.from_dict(
        {"schema": "lcnas-latency-table", "schema_version": 1, "device": one.device, "measurement": {}, "entries": rows}).entries))


def test_batch_predictor_replays_the_executors_union_or_grouping_rule(monkeypatch):
    from lcnas.cost import grouping_is_cheaper
    from lcnas.engine import EngineOptions
    from lcnas.latency import batch_latency_ms

    model = lcnas.create_model("resnet20", gating="lc").eval()
    model.engine.options = EngineOptions(batch_native=False)  # the grouped (oneDNN) batch engine records group masks
    n = 8
    table = _fake_batch_table(model, n)
    arch = describe(model)
    # Half the batch runs every block; of those, two channel sets: the first half of the groups
    # or the first group only.
    run = torch.zeros(n, len(arch.blocks), dtype=torch.bool)
    run[: n // 2] = True
    keep = _half_or_first_group(model, n)
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=run, channel_keep=tuple(keep))):
        model(torch.rand(n, 3, 32, 32))
    trace = model.last_trace
    assert trace.group_masks is not None and bool((trace.group_masks[0] == (keep[0] & run[:, :1])).all())

    def residual(k, c):  # run entry minus skip entry, interpolated between batch 1 and batch n
        one, big = k / 16, 10 * (k / 16)
        return one + (c - 1) / (n - 1) * (big - one)

    expected = 10 * (2.0 + 1.0)  # stem + head (frame is 0.25 × 10 too)
    expected += 10 * 0.25
    for b in arch.blocks:
        expected += 10 * 1.0  # shortcut
        expected += 2.0 * (n // 2) / (n / 2)  # gather/scatter of the running half
        ran = keep[b.index][: n // 2]
        sets, inverse = torch.unique(ran, dim=0, return_inverse=True)
        per_channel = 2.0 * 9 * (b.in_channels + b.out_channels) * b.out_hw[0] * b.out_hw[1] / 1e6
        if grouping_is_cheaper(per_channel, 4, ran, sets, inverse):
            expected += sum(residual(float(s.sum()) * 4, int((inverse == i).sum())) for i, s in enumerate(sets))
            expected += 2.0
        else:
            expected += residual(float(ran.any(0).sum()) * 4, n // 2)
    assert batch_latency_ms(model, table, batch=n) == pytest.approx(expected)


def test_two_scale_calibration_applies_to_gates_and_compute_and_loads_without_gate_scale(tiny_table, tmp_path):
    from dataclasses import replace

    from lcnas.latency import Calibration

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = _fake_table(model)
    run = torch.ones(len(model.blocks()), dtype=torch.bool)
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=run, evaluate_gates=True)):
        model(torch.rand(1, 3, 32, 32))
    plain = float(sample_latency_ms(model, table)[0])
    gates_ms = 0.5 * 2 * len(model.blocks())  # fake table: every gate 0.5 ms, two per running block
    two = replace(table, calibration=(Calibration("resnet20", 1, 2.0, 0.5, 10, 0.03, gate_scale=0.5),))
    assert float(sample_latency_ms(model, two)[0]) == pytest.approx(2.0 * (plain - gates_ms) + 0.5 * gates_ms + 0.5)
    data = two.to_dict()
    assert data["calibration"][0]["gate_scale"] == 0.5
    del data["calibration"][0]["gate_scale"]  # a table from before: gates take the compute scale
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = LatencyTable.load(tmp_path / "old.json").calibration_for("resnet20", 1)
    assert (old.scale, old.gates, old.offset_ms, old.spill_ms_per_mib) == (2.0, 2.0, 0.5, 0.0)
    data["calibration"][0]["gate_scale"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="gate_scale must be > 0"):
        LatencyTable.load(tmp_path / "bad.json")


def test_profile_calibrate_only_refits_the_calibration_and_keeps_the_entries(tiny_table, tmp_path, capsys):
    from lcnas.cli import main

    path = tiny_table.save(tmp_path / "t.json")
    assert main(["profile", "--model", "resnet20", "--out", str(path), "--calibrate-only", "--calibration-executions", "4",
                 "--threads", "1", "--format", "json"]) == 0
    after = LatencyTable.load(path)
    assert [e.to_dict() for e in after.entries] == [e.to_dict() for e in tiny_table.entries]
    (cal,) = [c for c in after.calibration if c.model == "resnet20" and c.batch == 1]
    assert cal.executions == 4 and cal.scale > 0 and cal.gate_scale is not None
    assert main(["profile", "--model", "resnet20", "--out", str(tmp_path / "none.json"), "--calibrate-only"]) == 2
    assert main(["profile", "--model", "resnet20", "--batch", "64", "--out", str(path), "--calibrate-only"]) == 2


def test_auto_picks_the_shipped_table_of_this_cpu_and_names_the_fix_elsewhere(monkeypatch):
    from lcnas import _env
    from lcnas.latency import resolve_table, shipped_tables

    shipped = {name: LatencyTable.load(name).device for name in shipped_tables()}
    name, device = next((n, d) for n, d in shipped.items() if d["threads"] == 1)
    monkeypatch.setattr(_env, "cpu_model", lambda: device["name"])
    assert resolve_table("auto") == name
    assert LatencyTable.load("auto").device["name"] == device["name"]
    assert resolve_table("cpu-amd-epyc-2t.json") == "cpu-amd-epyc-2t.json"  # any other name passes through
    monkeypatch.setattr(_env, "cpu_model", lambda: "Some Other CPU 9000")
    with pytest.raises(LatencyTableError, match=r"Some Other CPU 9000.*lcnas profile"):
        resolve_table("auto")


def test_search_cli_with_auto_on_an_unknown_cpu_is_one_clear_error(monkeypatch, tmp_path, capsys):
    from lcnas import _env
    from lcnas.cli import main

    monkeypatch.setattr(_env, "cpu_model", lambda: "Some Other CPU 9000")
    assert main(["search", "--lut", "auto", "--trials", "1", "--out", str(tmp_path / "s")]) != 0
    err = capsys.readouterr().err
    assert "Some Other CPU 9000" in err and "lcnas profile" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # nothing started


def _half_or_first_group(model, n: int) -> list[torch.Tensor]:
    """Per block, the groups ``n`` images keep: even images the first half, odd ones the first group."""
    keep = []
    for b in model.blocks():
        k = torch.zeros(n, b.channel_gate.outputs, dtype=torch.bool)
        k[0::2, : k.shape[1] // 2] = True
        k[1::2, 0] = True
        keep.append(k)
    return keep


def _two_set_batch(model, n: int):
    """A forcing of ``n`` images: every image runs every block and keeps :func:`_half_or_first_group`'s
    groups, except image 0, which keeps all of them."""
    keep = _half_or_first_group(model, n)
    for k in keep:
        k[0] = True
    return ForcedDecisions(block_run=torch.ones(n, len(keep), dtype=torch.bool), channel_keep=tuple(keep)), keep


def test_the_native_batch_trace_records_each_images_channel_groups():
    from lcnas.engine import native

    if native() is None:
        pytest.skip("no C++ compiler: the native engine does not run")
    model = lcnas.create_model("resnet20", gating="lc").eval()
    n = 6
    forced, keep = _two_set_batch(model, n)
    run = forced.block_run.clone()
    run[1, 3] = False  # image 1 skips block 3: no groups there
    with torch.no_grad(), model.forced(ForcedDecisions(block_run=run, channel_keep=forced.channel_keep)):
        model(torch.rand(n, 3, 32, 32))
    trace = model.last_trace
    assert model.engine.native_mflops is not None  # the whole batch ran in one native call
    for i, k in enumerate(keep):
        expected = k & run[:, i : i + 1]
        assert torch.equal(trace.group_masks[i], expected), i
        assert torch.equal(trace.channels_kept[:, i], expected.sum(1) * 4)


def test_per_image_batches_count_each_distinct_channel_set_once(monkeypatch):
    from dataclasses import replace

    from lcnas.cost import kept_width
    from lcnas.latency import Calibration, batch_latency_ms, gathered_sets

    model = lcnas.create_model("resnet20", gating="lc").eval()
    n = 8
    arch = describe(model)
    forced, keep = _two_set_batch(model, n)
    with torch.no_grad(), model.forced(forced):
        model(torch.rand(n, 3, 32, 32))
    trace = model.last_trace
    sets, mib = gathered_sets(arch, trace.block_run, trace.channels_kept, trace.group_masks)
    assert sets == 2 * len(arch.blocks)  # image 0 keeps every group: it runs the block's own weights
    def floats(b, k):  # both convs and conv1's bias at the engine's width; conv1 again in the narrow layout up to 12
        kp = kept_width(k)
        return 9 * (b.in_channels + b.out_channels) * kp + kp + (9 * b.in_channels * kp if kp <= 12 else 0)

    floats = sum(floats(b, b.width // 2) + floats(b, 4) for b in arch.blocks)
    assert mib == pytest.approx(floats * 4 / 2**20)
    # without masks every image keeping fewer than all channels counts as its own set
    assert gathered_sets(arch, trace.block_run, trace.channels_kept, None)[0] == (n - 1) * len(arch.blocks)
    # a table profiled on the per-image engine prices them: set_ms per set, and their MiB once they
    # outgrow the engine's cache of gathered weights
    table = _fake_batch_table(model, n)
    per_image = replace(table, measurement={"engine": {str(n): "native whole network (one image per thread)"}})
    base = batch_latency_ms(model, replace(per_image, calibration=(Calibration("resnet20", n, 1.0, 0.0, 10, 0.0),)), batch=n)
    priced = replace(per_image, calibration=(Calibration("resnet20", n, 1.0, 0.0, 10, 0.0, set_ms=0.25, regather_ms_per_mib=5.0),))
    assert batch_latency_ms(model, priced, batch=n) == pytest.approx(base + 0.25 * sets)  # they fit in the cache
    monkeypatch.setattr("lcnas.latency._predict.SET_CACHE_MIB", mib / 2)
    assert batch_latency_ms(model, priced, batch=n) == pytest.approx(base + 0.25 * sets + 5.0 * mib)  # every one gathered again
    # the grouped batch path gathers nothing: no set terms there
    grouped = batch_latency_ms(model, replace(table, calibration=priced.calibration), batch=n)
    assert grouped == pytest.approx(batch_latency_ms(model, replace(table, calibration=(Calibration("resnet20", n, 1.0, 0.0, 10, 0.0),)),
                                                     batch=n))
    data = priced.to_dict()
    assert (LatencyTable.from_dict(data).calibration[0].set_ms, LatencyTable.from_dict(data).calibration[0].regather_ms_per_mib) == (0.25, 5.0)
    data["calibration"][0]["set_ms"] = -1.0
    with pytest.raises(LatencyTableError, match="set_ms"):
        LatencyTable.from_dict(data)


def test_only_calibrations_fitted_on_per_image_sums_predict_batches_that_way():
    from dataclasses import replace

    from lcnas.latency import Calibration, LatencyModel

    model = lcnas.create_model("resnet20", gating="lc").eval()
    table = replace(_fake_batch_table(model, 8), measurement={"engine": {"8": "native whole network (one image per thread)"}})

    def sums(*calibration):
        return LatencyModel(replace(table, calibration=calibration), model="resnet20", pooling="avg", batch=8).per_image_sums

    assert sums()  # uncalibrated: the per-image engine's own model
    assert not sums(Calibration("resnet20", 8, 1.0, 0.0, 10, 0.0))  # a table fitted on the batch's own entries keeps them
    assert sums(Calibration("resnet20", 8, 1.0, 0.0, 10, 0.0, per_image_sums=True))
    grouped = replace(table, measurement={})
    assert not LatencyModel(grouped, model="resnet20", pooling="avg", batch=8).per_image_sums


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"batches": (1, 0)}, "every batch size must be >= 1, got 0"),
    ({"repeats": 0}, "repeats must be >= 1"),
    ({"group_size": 0}, "group_size must be >= 1"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"warmup": -1}, "must be >= 0"),
    ({"sweeps": 0}, "sweeps must be >= 1"),
])
def test_the_generator_refuses_bad_counts_before_measuring(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        profile_model("resnet20", progress=False, **kwargs)


def test_the_generator_measures_without_autograd(monkeypatch):
    import lcnas.latency._profile as prof

    seen = []
    real = prof.create_model
    monkeypatch.setattr(prof, "create_model", lambda *a, **k: (seen.append(torch.is_grad_enabled()), real(*a, **k))[1])
    profile_model("resnet8", repeats=1, warmup=0, hiddens=(16,), calibration_executions=0, progress=False)
    assert seen and not any(seen)


def test_merging_a_batch_1_profile_keeps_what_the_table_says_of_other_batches(tiny_table):
    # Re-profiling batch 1 into a table of batches 1 and 8 must not drop batch 8's engine: the
    # predictor reads it to sum each image's batch-1 entries on the one-image-per-thread engine.
    again = LatencyTable(device=tiny_table.device, entries=tuple(e for e in tiny_table.entries if e.batch == 1),
                         measurement={**tiny_table.measurement, "batch_sizes": [1], "engine": {"1": tiny_table.measurement["engine"]["1"]},
                                      "recalibrated_utc": {"resnet20": "later"}})
    merged = tiny_table.merged(again)
    assert merged.measurement["engine"] == tiny_table.measurement["engine"]
    assert merged.measurement["batch_sizes"] == [1, 8]
    assert merged.measurement["recalibrated_utc"]["resnet20"] == "later"
    assert merged.batches("resnet20") == [1, 8]
    # a fresh profile's own calibration was not "recalibrated": its model's old stamp goes
    stamped = LatencyTable(device=tiny_table.device, entries=tiny_table.entries, calibration=tiny_table.calibration,
                           measurement={**tiny_table.measurement, "recalibrated_utc": {"resnet20": "then", "resnet32": "then"}})
    assert stamped.merged(tiny_table).measurement["recalibrated_utc"] == {"resnet32": "then"}


def test_each_entry_is_the_median_of_its_sweeps_and_calibration_passes_combine_by_ratio():
    from lcnas.latency import LatencyEntry
    from lcnas.latency._profile import _combined, _median_entries

    def entry(unit: str, ms: float) -> LatencyEntry:
        return LatencyEntry("resnet20", unit, "", 0, 1, ms, ms * 1.1, 0.1 * ms, 30)

    # the second sweep landed on a slow stretch of the host for the stem
    sweeps = [[entry("stem", 0.010), entry("head", 0.020)], [entry("stem", 0.030), entry("head", 0.021)],
              [entry("stem", 0.011), entry("head", 0.019)]]
    merged = _median_entries(sweeps)
    assert [e.unit for e in merged] == ["stem", "head"]
    assert [e.latency_ms_median for e in merged] == pytest.approx([0.011, 0.020])
    assert merged[0].count == 90
    # a calibration pass taken while the whole host ran 1.5x slower moves no execution's figure:
    # each execution is its median ratio to the pass's first (static) execution, times the median static
    passes = [[1.0, 0.5, 0.2], [1.5, 0.75, 0.3], [1.0, 0.5, 0.2]]
    assert _combined(passes) == pytest.approx([1.0, 0.5, 0.2])

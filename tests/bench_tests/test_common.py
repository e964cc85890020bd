"""benchmarks/_common.py: lcnas's timing rules in seconds, and the result writer."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("_common")
    finally:
        sys.path.remove(str(BENCH))


def test_timing_helpers_go_through_lcnas_latency(common, monkeypatch):
    import lcnas.latency._timing as timing

    clock = {"now": 0.0}
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))  # that module's clock only

    def cost(seconds):
        def fn():
            clock["now"] += seconds
        return fn

    assert common.median_time_s(cost(0.002), 5) == pytest.approx(0.002)
    a, b = common.paired_median_times_s(cost(0.001), cost(0.004), 6, chunk=2)
    assert (a, b) == (pytest.approx(0.001), pytest.approx(0.004))
    assert common.ratio_median([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0
    with pytest.raises(ValueError):  # rounds of two runs must pair up
        common.ratio_median([1.0], [1.0, 2.0])


def test_write_json_writes_indented_json_with_a_newline_and_no_temp_file(common, tmp_path):
    out = common.write_json(tmp_path / "sub" / "result.json", {"benchmark": "x", "rows": [1, 2]})
    assert out.read_text() == json.dumps({"benchmark": "x", "rows": [1, 2]}, indent=2) + "\n"
    assert [p.name for p in out.parent.iterdir()] == ["result.json"]

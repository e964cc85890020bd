"""Per-device latency lookup tables: format, generator (profiler) and predictor; the timing rules they
and lcnas's report and benchmarks share."""

from __future__ import annotations

from ._predict import LatencyModel, batch_latency_ms, expected_latency_ms, sample_latency_ms
from ._profile import calibrate, fit_calibration, fit_relative, profile_model, random_decisions, random_plans, recalibrate, speed_factor
from ._table import AUTO, Calibration, LatencyEntry, LatencyTable, LatencyTableError, resolve_table, shipped_tables
from ._timing import (
    RoundTimes,
    Timing,
    call_ms,
    latency_ratio,
    measure,
    measure_alternating,
    measure_difference,
    measure_interleaved,
    measure_rounds,
    round_ratios,
    summarize,
)

__all__ = ["AUTO", "Calibration", "LatencyEntry", "LatencyModel", "LatencyTable", "LatencyTableError", "RoundTimes", "Timing", "batch_latency_ms",
           "calibrate", "call_ms", "expected_latency_ms", "fit_calibration", "fit_relative", "latency_ratio", "measure", "measure_alternating",
           "measure_difference", "measure_interleaved", "measure_rounds", "profile_model", "random_decisions", "random_plans", "recalibrate",
           "resolve_table", "round_ratios", "sample_latency_ms", "shipped_tables", "speed_factor", "summarize"]

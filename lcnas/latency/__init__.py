"""Per-device latency lookup tables: format, generator (profiler) and predictor; the timing rules they
and lcnas's report and benchmarks share."""

from __future__ import annotations

from ._predict import (
    LatencyModel,
    Parts,
    apply_calibration,
    batch_latency_ms,
    expected_latency_ms,
    gathered_sets,
    relative_latency,
    sample_latency_ms,
    static_latency_ms,
)
from ._profile import (
    CalibrationFit,
    calibrate,
    fit_calibration,
    fit_relative,
    profile_model,
    random_decisions,
    random_plans,
    recalibrate,
    speed_factor,
)
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
    measure_paired,
    measure_rounds,
    round_ratios,
    summarize,
)

__all__ = ["AUTO", "Calibration", "CalibrationFit", "LatencyEntry", "LatencyModel", "LatencyTable", "LatencyTableError", "Parts",
           "RoundTimes", "Timing", "apply_calibration", "batch_latency_ms", "calibrate", "call_ms", "expected_latency_ms",
           "fit_calibration", "fit_relative", "gathered_sets", "latency_ratio", "measure", "measure_alternating", "measure_difference",
           "measure_interleaved", "measure_paired", "measure_rounds", "profile_model", "random_decisions", "random_plans", "recalibrate",
           "relative_latency", "resolve_table", "round_ratios", "sample_latency_ms", "shipped_tables", "speed_factor", "static_latency_ms",
           "summarize"]

"""Reports of trained dynamic models: Markdown + PNG plots (``lcnas report``)."""

from __future__ import annotations

from ._front import FrontStanding, front_accuracy_at, front_standing, static_front
from ._report import Bs1Timing, ModelStats, build_report, interleaved_bs1_ms, latency_ratio, model_stats, round_ratios, static_engine

__all__ = ["Bs1Timing", "FrontStanding", "front_accuracy_at", "front_standing", "static_front", "ModelStats", "build_report", "interleaved_bs1_ms", "latency_ratio", "model_stats", "round_ratios", "static_engine"]

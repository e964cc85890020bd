"""Reports of trained dynamic models: Markdown + PNG plots (``lcnas report``)."""

from __future__ import annotations

from ._front import FrontStanding, front_accuracy_at, front_standing, static_front
from ._report import ModelStats, build_report, interleaved_bs1_ms, model_stats, shipped_static, static_engine

__all__ = ["FrontStanding", "front_accuracy_at", "front_standing", "static_front", "ModelStats", "build_report", "interleaved_bs1_ms",
           "model_stats", "shipped_static", "static_engine"]

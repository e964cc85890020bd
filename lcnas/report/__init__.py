"""Reports of trained dynamic models: Markdown + PNG plots (``lcnas report``)."""

from __future__ import annotations

from ._report import ModelStats, build_report, interleaved_bs1_ms, model_stats

__all__ = ["ModelStats", "build_report", "interleaved_bs1_ms", "model_stats"]

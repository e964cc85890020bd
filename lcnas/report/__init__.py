"""Reports of trained dynamic models: Markdown + PNG plots (``lcnas report``)."""

from __future__ import annotations

from ._report import ModelStats, build_report, model_stats

__all__ = ["ModelStats", "build_report", "model_stats"]

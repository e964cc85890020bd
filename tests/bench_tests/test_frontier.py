"""benchmarks/frontier.py's arithmetic: the static front, its interpolation and the cascades."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def frontier():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("frontier")
    finally:
        sys.path.remove(str(BENCH))


def test_front_keeps_points_faster_than_every_more_accurate_one(frontier):
    pts = [(1.0, 91.0), (1.5, 90.0), (2.0, 92.0), (0.5, 85.0), (3.0, 91.5)]
    assert frontier._front(pts) == [(0.5, 85.0), (1.0, 91.0), (2.0, 92.0)]


def test_interpolation_is_linear_and_undefined_below_the_fastest_point(frontier):
    front = [(1.0, 90.0), (2.0, 92.0)]
    assert frontier._interpolate(front, 1.5) == pytest.approx(91.0)
    assert frontier._interpolate(front, 5.0) == 92.0
    assert frontier._interpolate(front, 0.5) is None


def test_cascade_accuracy_and_expected_latency(frontier):
    # fast model: right on images 0-5, confident on 0-7; slow model: right on every image
    conf = np.array([0.9] * 8 + [0.2] * 2)
    fast = {"name": "fast", "confidence": conf, "correct": np.array([True] * 6 + [False] * 4)}
    slow = {"name": "slow", "confidence": np.ones(10), "correct": np.ones(10, bool)}
    points = frontier._cascades([fast, slow], {"fast": 1.0, "slow": 3.0}, steps=4)
    # a threshold between 0.2 and 0.9 sends the two unsure images on: 80 % right, 1 + 0.2 * 3 ms
    assert any(p["accuracy"] == pytest.approx(80.0) and p["latency_ms"] == pytest.approx(1.6) for p in points)
    # the envelope never holds a point that another beats on both axes
    for p in points:
        assert not any(q["latency_ms"] <= p["latency_ms"] and q["accuracy"] > p["accuracy"] for q in points)

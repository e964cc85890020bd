"""The static front: where a dynamic model stands against the static networks a user already has.

One rule for the report and the frontier benchmark: the front is the upper-left envelope of the
static networks' (latency, accuracy) points, read between points by linear interpolation; a model
faster than every static network lies outside the front's range rather than above or below it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FrontStanding", "front_accuracy_at", "front_standing", "static_front"]


def static_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The envelope of ``(latency, accuracy)`` points: each kept point is faster than every more
    accurate one (a static network that is both slower and less accurate than another is dropped)."""
    front: list[tuple[float, float]] = []
    best = float("-inf")
    for latency, accuracy in sorted(points):
        if accuracy > best:
            front.append((latency, accuracy))
            best = accuracy
    return front


def front_accuracy_at(front: list[tuple[float, float]], latency: float) -> float | None:
    """Accuracy of ``front`` at ``latency``: linear between its points, its best accuracy past its
    slowest point, ``None`` below its fastest point (no static network is that fast)."""
    if not front or latency < front[0][0]:
        return None
    for (l0, a0), (l1, a1) in zip(front, front[1:], strict=False):  # consecutive pairs
        if l0 <= latency <= l1:
            return a0 + (a1 - a0) * (latency - l0) / (l1 - l0) if l1 > l0 else max(a0, a1)
    return front[-1][1]


@dataclass(frozen=True)
class FrontStanding:
    """A model's place against a static front at its own latency.

    ``margin_pt`` is its accuracy minus the front's there (``None`` when it is faster than every
    static network); ``dominated_by`` names the static networks both faster and more accurate.
    """

    latency_ms: float
    accuracy: float
    front_accuracy: float | None
    margin_pt: float | None
    dominated_by: tuple[str, ...]

    def sentence(self) -> str:
        """One line for a report's last lines."""
        if self.margin_pt is None:
            where = "faster than every static network (below the static front's latency range)"
        else:
            where = (f"{abs(self.margin_pt):.2f} points {'above' if self.margin_pt >= 0 else 'below'} the static front "
                     f"at its latency ({self.front_accuracy:.2f} % there)")
        dominated = f"; dominated by {', '.join(self.dominated_by)}" if self.dominated_by else "; dominated by no static network"
        return f"{self.accuracy:.2f} % at {self.latency_ms:.3f} ms: {where}{dominated}."


def front_standing(latency_ms: float, accuracy: float, static: dict[str, tuple[float, float]]) -> FrontStanding:
    """Where a model at ``latency_ms`` with ``accuracy`` (%) stands against ``static``, a map of
    static network name → (latency_ms, accuracy) measured the same way."""
    front = static_front(list(static.values()))
    at = front_accuracy_at(front, latency_ms)
    dominated = tuple(sorted(n for n, (lat, acc) in static.items() if lat <= latency_ms and acc > accuracy))
    return FrontStanding(latency_ms=latency_ms, accuracy=accuracy, front_accuracy=at,
                         margin_pt=None if at is None else accuracy - at, dominated_by=dominated)

"""How many calls fell in the busiest window: the measure every rate test asserts on."""

from __future__ import annotations

from collections.abc import Iterable


def max_in_window(times: Iterable[float], window: float) -> int:
    """Most calls in any half-open window [t, t + window) starting at a call."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window - 1e-9:
            j += 1
        best = max(best, j - i)
    return best

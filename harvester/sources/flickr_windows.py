"""The time-window planner: walk upload time in windows holding about `target` photos each.

Flickr repeats photos past roughly the 1,500th result of one search and stops at 4,000,
so a query is cut into upload-time windows [start, end) (unix seconds, end exclusive).
The next window is sized from the density just observed: shrink when a window holds
far too many, widen when it holds too few, widen fast across empty stretches. Pure
functions of their arguments, so reruns plan the same windows and dedupe keys match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY = 86_400
INITIAL_WINDOW_S = 30 * DAY
MIN_WINDOW_S = 1
# Never page a search holding more than this: Flickr's duplicates begin "after the
# 1500th or so" result, so a bigger window is shrunk before any page is read.
PAGING_CEILING = 1_500
# A window is "far above" the target (and shrunk unread) beyond this multiple of it.
SHRINK_ABOVE = 2.0
# Aim a little under the target when shrinking, so the estimate's noise rarely needs a
# second shrink.
SHRINK_SAFETY = 0.9
MAX_GROWTH = 4.0
EMPTY_GROWTH = 8.0
MAX_NARROWING = 8.0


@dataclass(frozen=True)
class Window:
    """Upload times [start, end) in unix seconds."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def last_second(self) -> int:
        """The inclusive upper bound Flickr's max_upload_date expects."""
        return self.end - 1


def first_window(start: int, limit: int, size: int = INITIAL_WINDOW_S) -> Window:
    """The window a query starts with; no density is known yet."""
    if limit <= start:
        raise ValueError("the upload range is empty")
    return Window(start, min(limit, start + max(MIN_WINDOW_S, size)))


def too_many(total: int, target: int) -> bool:
    """True when a window must not be paged: it holds far more than the target."""
    return total > PAGING_CEILING or total > SHRINK_ABOVE * target


def shrink(window: Window, total: int, target: int) -> Window | None:
    """A smaller window at the same start expected to hold about `target`; None if 1 s."""
    if window.size <= MIN_WINDOW_S:
        return None
    estimate = window.size * target / max(total, 1) * SHRINK_SAFETY
    size = min(window.size - 1, max(MIN_WINDOW_S, math.floor(estimate)))
    return Window(window.start, window.start + size)


def next_window(window: Window, found: int, target: int, limit: int) -> Window | None:
    """The window after a completed one, sized from its density; None at the range's end."""
    if window.end >= limit:
        return None
    if found <= 0:
        size = window.size * EMPTY_GROWTH
    else:
        ideal = window.size * target / found
        size = min(window.size * MAX_GROWTH, max(window.size / MAX_NARROWING, ideal))
    size_s = max(MIN_WINDOW_S, math.floor(size))
    return Window(window.end, min(limit, window.end + size_s))


def split(window: Window) -> tuple[Window, Window] | None:
    """Two halves of a window, for reading one where duplicates showed up; None if 1 s."""
    if window.size < 2:
        return None
    middle = window.start + window.size // 2
    return Window(window.start, middle), Window(middle, window.end)

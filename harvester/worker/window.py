"""How many images to keep in flight: enough that no worker waits, no more (Little's law).

The workers can take `workers / process_s` images a second. Each image spends
`outside_s` out of their hands (fetched, checked for duplicate bytes, written), so that
rate needs `rate x outside_s` images out there at once, plus what the workers hold.
Both times are measured as images go by, so the window follows the CDN's latency and
the machine's speed instead of a constant; `ceiling` bounds memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SMOOTHING = 0.1  # weight of the newest measurement: a few dozen images settle it
HEADROOM = 2.0  # latency varies; a window sized for the mean would idle on the slow half


@dataclass
class Window:
    workers: int
    held_per_worker: int
    ceiling: int
    process_s: float | None = None
    outside_s: float | None = None

    @property
    def floor(self) -> int:
        """The workers' own share plus one being fetched for each: never fewer."""
        return min(self.ceiling, self.workers * (self.held_per_worker + 1))

    @property
    def limit(self) -> int:
        if self.process_s is None or self.outside_s is None:
            return max(self.floor, min(self.ceiling, 32))  # until measured: the old default
        rate = self.workers / max(self.process_s, 1e-4)
        out_there = math.ceil(HEADROOM * rate * self.outside_s)
        return max(self.floor, min(self.ceiling, self.workers * self.held_per_worker + out_there))

    def measured(self, *, process_s: float, outside_s: float) -> None:
        """One image: its CPU time in a worker, and its time in flight outside the workers."""
        self.process_s = _smoothed(self.process_s, process_s)
        self.outside_s = _smoothed(self.outside_s, max(0.0, outside_s))


def _smoothed(old: float | None, new: float) -> float:
    return new if old is None else old + SMOOTHING * (new - old)

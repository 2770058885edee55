"""The emulator's clock: wall time, optionally running faster, plus an offset tests advance.

Signed URLs carry wall-clock expiry times (like the real CDNs), so the clock is
wall time; `advance` lets a test expire them without sleeping, and `speed` lets a
test live through minutes of outage in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class EmulatorClock:
    """Seconds since the epoch, movable forward by the admin endpoint."""

    def __init__(self, source: Callable[[], float] = time.time, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("the clock speed must be positive")
        self._source = source
        self._origin = source()
        self._speed = speed
        self._offset = 0.0

    def now(self) -> float:
        return self._origin + (self._source() - self._origin) * self._speed + self._offset

    def advance(self, seconds: float) -> float:
        self._offset += seconds
        return self.now()

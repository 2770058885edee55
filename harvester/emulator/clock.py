"""The emulator's clock: wall time plus an offset that tests can advance.

Signed URLs carry wall-clock expiry times (like the real CDNs), so the clock is
wall time; `advance` lets a test expire them without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class EmulatorClock:
    """Seconds since the epoch, movable forward by the admin endpoint."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0

    def now(self) -> float:
        return self._source() + self._offset

    def advance(self, seconds: float) -> float:
        self._offset += seconds
        return self.now()

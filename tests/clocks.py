"""The fake monotonic clock tests drive limiters and back-offs with (no real waiting)."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or a test advances it)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds

"""The fake monotonic clocks tests drive limiters and back-offs with (no real waiting), and the
busiest-window count rate tests assert on."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Sequence


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


class SimClock:
    """Time that moves only when every task is asleep: many concurrent sleepers, exactly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._asleep: dict[asyncio.Task[object] | None, asyncio.Future[None]] = {}

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        task = asyncio.current_task()
        self._asleep[task] = future
        try:
            await future
        finally:
            if self._asleep.get(task) is future:
                del self._asleep[task]

    async def run_until(self, end: float, *, watch: Sequence[asyncio.Task[object]] = ()) -> None:
        """Wake sleepers in time order until ``end``. Time stands still while a task in
        ``watch`` is awake (real I/O in flight: a database or HTTP call) until it sleeps
        on this clock again or ends, so real work takes no simulated time."""
        while True:
            await self._settle(watch)
            if not self._sleepers or self._sleepers[0][0] > end:
                self.now = end
                return
            at, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not future.done():
                for task, slept in list(self._asleep.items()):
                    if slept is future:
                        del self._asleep[task]
                future.set_result(None)

    async def _settle(self, watch: Sequence[asyncio.Task[object]]) -> None:
        while True:
            for _ in range(50):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if all(task.done() or task in self._asleep for task in watch):
                return
            await asyncio.sleep(0.001)  # real I/O in flight: poll until it is done


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

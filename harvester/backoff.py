"""Exponential back-off with jitter: the one policy every retry in harvester waits by.

Attempt n waits `initial * 2**(n-1)`, capped at `maximum`, times a random factor drawn
from `spread` (then capped again), so the retries of one outage do not arrive together.
A spread of (1, 1) is plain doubling; (0.5, 1) is "equal jitter", half fixed, half random.
The object is also a tenacity `wait`, for retry loops tenacity runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from tenacity import RetryCallState

_RANDOM = random.Random()


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    maximum_s: float
    spread: tuple[float, float] = (1.0, 1.0)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (counted from 1)."""
        doublings = min(max(0, attempt - 1), 64)  # 2.0 ** 1024 would overflow: a long outage
        ceiling = min(self.maximum_s, self.initial_s * 2.0**doublings)
        low, high = self.spread
        if low == high:
            return min(self.maximum_s, ceiling * low)
        return min(self.maximum_s, ceiling * (rng or _RANDOM).uniform(low, high))

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits after attempts 1, 2, 3, ... for loops that retry until told to stop."""
        attempt = 0
        while True:
            attempt += 1
            yield self.delay(attempt, rng)

    def __call__(self, state: RetryCallState) -> float:
        return self.delay(state.attempt_number)


EQUAL_JITTER = (0.5, 1.0)

"""The one back-off: doubling from the initial wait, capped, spread by jitter."""

from __future__ import annotations

import itertools
import random

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from harvester.backoff import EQUAL_JITTER, Backoff


def test_without_jitter_waits_double_up_to_the_cap() -> None:
    waits = list(itertools.islice(Backoff(1.0, 30.0).delays(), 7))
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_equal_jitter_keeps_half_of_each_wait_fixed() -> None:
    backoff = Backoff(0.5, 8.0, EQUAL_JITTER)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling


def test_jitter_above_one_never_passes_the_cap() -> None:
    backoff = Backoff(10.0, 100.0, (0.75, 1.25))
    rng = random.Random(3)
    assert all(backoff.delay(n, rng) <= 100.0 for n in range(1, 5000))  # hours of outage
    assert 7.5 <= backoff.delay(1, rng) <= 12.5


async def test_it_is_a_tenacity_wait() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0
    retrying = AsyncRetrying(
        wait=Backoff(1.0, 3.0),
        stop=stop_after_attempt(4),
        retry=retry_if_exception_type(OSError),
        sleep=sleep,
    )
    async for attempt in retrying:
        with attempt:
            calls += 1
            if calls < 4:
                raise OSError("not yet")
    assert slept == [1.0, 2.0, 3.0]

"""The circuit breaker on a fake clock: minutes of outage, no sleeping."""

from __future__ import annotations

import asyncio

import pytest
from clocks import FakeClock

from harvester.http import CircuitBreaker, NotFoundError, ServiceUnavailableError
from harvester.http.errors import TransientHttpError

DOWN = ServiceUnavailableError("HTTP 503", url="u", status=503)


def _breaker(clock: FakeClock, **options: float) -> CircuitBreaker:
    return CircuitBreaker(
        "flickr", probe_after_s=5, max_probe_interval_s=40, clock=clock, **options
    )  # type: ignore[arg-type]


async def test_three_outage_answers_in_a_row_open_it_and_a_success_between_them_does_not() -> None:
    clock = FakeClock(1000.0)
    breaker = _breaker(clock)
    for error in (DOWN, DOWN, None, DOWN, DOWN):
        breaker.record(error, probe=False)
    assert not breaker.is_open
    breaker.record(DOWN, probe=False)
    assert breaker.is_open and breaker.holding and breaker.opened == 1


async def test_timeouts_and_rate_limits_are_not_outages() -> None:
    breaker = _breaker(FakeClock(1000.0))
    for _ in range(5):
        breaker.record(TransientHttpError("timed out", url="u"), probe=False)
    assert not breaker.is_open


async def test_while_open_callers_wait_and_one_probe_at_a_time_goes_in_arrival_order() -> None:
    clock = FakeClock(1000.0)
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record(DOWN, probe=False)
    opened_at = clock.now
    order: list[tuple[int, float, bool]] = []

    async def caller(n: int) -> None:
        while True:
            probe = await breaker.admit()
            order.append((n, clock.now, probe))
            # The service is down for 60 s: a probe before that fails.
            breaker.record(DOWN if clock.now - opened_at < 60 else None, probe=probe)
            if clock.now - opened_at >= 60:
                return

    await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(4))), 5)
    probes = [(n, t) for n, t, probe in order if probe]
    # Probes come at 5, then 10, 20, 40 s apart (doubling), one caller at a time, in turn.
    gaps = [b - a for (_, a), (_, b) in zip([(None, opened_at), *probes], probes, strict=False)]
    assert gaps[:4] == [5, 10, 20, 40]
    assert [n for n, _ in probes[:4]] == [0, 1, 2, 3]
    assert not breaker.is_open
    assert len(order) == len(probes) + 3  # after the good probe, the three others went at once


async def test_any_answer_that_is_not_an_outage_closes_it() -> None:
    clock = FakeClock(1000.0)
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record(DOWN, probe=False)
    probe = await breaker.admit()
    assert probe and clock.now == pytest.approx(1005)
    breaker.record(NotFoundError("HTTP 404", url="u", status=404), probe=probe)
    assert not breaker.is_open and not await breaker.admit()


async def test_past_the_longest_pause_callers_are_let_through_to_fail_as_usual() -> None:
    clock = FakeClock(1000.0)
    breaker = _breaker(clock, max_pause_s=100)
    for _ in range(3):
        breaker.record(DOWN, probe=False)
    admitted = 0
    while breaker.holding:
        probe = await breaker.admit()
        admitted += 1
        breaker.record(DOWN, probe=probe)
    assert clock.now - 1000 >= 100 and admitted <= 5
    assert not await breaker.admit()  # no waiting any more: the caller's attempts count


async def test_a_cancelled_probe_hands_the_probe_on() -> None:
    clock = FakeClock(1000.0)
    breaker = _breaker(clock)
    for _ in range(3):
        breaker.record(DOWN, probe=False)
    probe = await breaker.admit()
    breaker.record(asyncio.CancelledError(), probe=probe)
    assert breaker.is_open
    assert await asyncio.wait_for(breaker.admit(), 1)  # the next caller probes

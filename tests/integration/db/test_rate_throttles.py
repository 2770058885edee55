"""A 429 one holder of a key gets slows every holder down, through the database's
`rate_throttles`: on the simulated clock, with a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from clocks import SimClock
from sqlalchemy.ext.asyncio import AsyncEngine
from tcp_proxy import in_front_of

from harvester.db.migrate import upgrade
from harvester.db.rate_shares import DatabaseRateShares
from harvester.db.session import create_engine
from harvester.http.shared import SharedRate

EPOCH = datetime(2026, 12, 1, tzinfo=UTC)
RATE, LEASE = 10.0, 6.0  # a renewal every 2 s


def store_on(engine: AsyncEngine, clock: SimClock) -> DatabaseRateShares:
    """The store with its wall clock tied to the simulated one."""
    return DatabaseRateShares(engine, LEASE, clock=lambda: EPOCH + timedelta(seconds=clock.now))


class Holders:
    """Two holders of one key (two daemons), each calling as fast as its slice allows."""

    def __init__(self, a: SharedRate, b: SharedRate, clock: SimClock) -> None:
        self.clock = clock
        self.a, self.b = a, b
        self.times: dict[str, list[float]] = {"a": [], "b": []}
        self.tasks: list[asyncio.Task[object]] = []

    @classmethod
    def sharing(cls, shares: DatabaseRateShares, clock: SimClock) -> Holders:
        a = SharedRate("flickr:k", RATE, 1, shares, holder="a", clock=clock)
        b = SharedRate("flickr:k", RATE, 1, shares, holder="b", clock=clock)
        return cls(a, b, clock)

    def start(self) -> None:
        for name, limiter in (("a", self.a), ("b", self.b)):
            self.tasks.append(asyncio.create_task(self._call(limiter, self.times[name])))

    async def _call(self, limiter: SharedRate, times: list[float]) -> None:
        while True:
            await limiter.acquire()
            times.append(self.clock.now)

    async def run_until(self, end: float) -> None:
        await self.clock.run_until(end, watch=self.tasks)

    def calls(self, name: str, start: float, end: float) -> int:
        return len([t for t in self.times[name] if start < t < end])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def holders(engine: AsyncEngine) -> AsyncIterator[Holders]:
    clock = SimClock()
    pair = Holders.sharing(store_on(engine, clock), clock)
    pair.start()
    await pair.run_until(clock.now + 20.0)  # settled: half the key each
    assert pair.a.slice_rate == pair.b.slice_rate == RATE / 2
    yield pair
    await pair.stop()


async def test_a_429_with_a_short_retry_after_pauses_and_halves_every_holder(
    holders: Holders,
) -> None:
    hit = holders.clock.now
    holders.a.throttled(5.0)  # a's 429, Retry-After: 5 (short enough to wait inline)
    await holders.run_until(hit + 12.0)
    # b heard of it at its next renewal (2 s at most) and sat out the rest of the pause
    assert holders.calls("a", hit, hit + 5.0) == 0
    assert holders.calls("b", hit + LEASE / 3, hit + 5.0) == 0
    # and both resumed at half their slice: 2.5 calls a second (no successes to recover on)
    for name in "ab":
        assert 6 <= holders.calls(name, hit + 5.0, hit + 8.0) <= 8, name


async def test_a_429_with_no_or_a_long_retry_after_halves_every_holder_and_pauses_none(
    holders: Holders,
) -> None:
    hit = holders.clock.now
    holders.a.throttled(None)  # a Retry-After too long to wait inline reaches us as None
    await holders.run_until(hit + LEASE / 3 + 0.01)
    assert holders.b.current_rate == pytest.approx(RATE / 4, rel=0.05)
    resumed = holders.clock.now
    await holders.run_until(resumed + 4.0)
    for name in "ab":  # never stalled: about 2.5 calls a second each, not 5
        assert 9 <= holders.calls(name, resumed, resumed + 4.0) <= 11, name


async def test_429s_in_one_renewal_interval_are_one_overload_not_two_cuts(
    holders: Holders,
) -> None:
    hit = holders.clock.now
    holders.a.throttled(None)
    await holders.run_until(hit + 0.5)
    holders.b.throttled(None)  # b's own 429 from the same overload, before it heard of a's
    await holders.run_until(hit + LEASE)
    for limiter in (holders.a, holders.b):
        assert limiter.current_rate == pytest.approx(RATE / 4)  # one halving each, not two


async def test_a_database_out_of_reach_keeps_the_local_reaction_and_tells_the_rest_after(
    postgres_url: str,
) -> None:
    clock = SimClock()
    proxy, proxied = await in_front_of(postgres_url)
    cut_off, direct = create_engine(proxied), create_engine(postgres_url)
    try:
        await upgrade(direct)
        a = SharedRate("flickr:k", RATE, 1, store_on(cut_off, clock), holder="a", clock=clock)
        b = SharedRate("flickr:k", RATE, 1, store_on(direct, clock), holder="b", clock=clock)
        pair = Holders(a, b, clock)
        pair.start()
        await pair.run_until(clock.now + 20.0)
        proxy.cut()  # a's database is out of reach: every renewal fails at once
        hit = clock.now
        a.throttled(2.0)
        await pair.run_until(hit + 4.0)
        assert pair.calls("a", hit, hit + 2.0) == 0  # the local pause held
        assert 4 <= pair.calls("a", hit + 2.0, hit + 4.0) <= 6  # then half the slice
        assert 9 <= pair.calls("b", hit + 2.0, hit + 4.0) <= 11  # b has not heard yet
        proxy.restore()
        back = clock.now
        await pair.run_until(back + 4.0)  # a reports at once, b hears within a renewal
        assert b.current_rate < RATE / 2 * 0.6
        await pair.stop()
    finally:
        await cut_off.dispose()
        await direct.dispose()
        await proxy.close()

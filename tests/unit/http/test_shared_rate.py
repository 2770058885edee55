"""Slices of one shared limit, driven by a simulated clock: many holders, one limit."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from clocks import SimClock, max_in_window

from harvester.http.limiter import HostSlots, TokenBucket
from harvester.http.shared import (
    SharedRate,
    SharedRates,
    SharesUnavailable,
    Slice,
    SplitShares,
    Throttle,
    grant,
)


class FakeShares:
    """The store's rule (``grant``) over a dict, with leases on the simulated clock."""

    def __init__(self, clock: SimClock, lease_s: float) -> None:
        self.clock = clock
        self.lease_s = lease_s
        self.slices: dict[tuple[str, str], tuple[float, float]] = {}
        self.down = False

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        if self.down:
            raise SharesUnavailable("store down")
        now = self.clock.now
        live = {k: v for k, v in self.slices.items() if v[1] > now}
        self.slices = live
        others = [rate for (k, h), (rate, _) in live.items() if k == key and h != holder]
        rate = grant(total_rate, others)
        self.slices[(key, holder)] = (rate, now + self.lease_s)
        return Slice(rate, self.lease_s)

    async def give_back(self, key: str, holder: str) -> None:
        self.slices.pop((key, holder), None)

    def held(self, key: str) -> dict[str, float]:
        return {
            h: r for (k, h), (r, exp) in self.slices.items() if k == key and exp > self.clock.now
        }


async def _call_forever(limiter: SharedRate, clock: SimClock, times: list[float]) -> None:
    while True:
        await limiter.acquire()
        times.append(clock.now)


def test_a_slice_is_an_equal_share_never_more_than_the_others_leave() -> None:
    assert grant(12.0, []) == 12.0
    assert grant(12.0, [6.0]) == 6.0
    assert grant(12.0, [12.0]) == 0.0  # a newcomer waits for the others to shrink
    assert grant(12.0, [6.0, 0.0]) == 4.0
    assert grant(12.0, [4.0, 4.0, 4.0]) == 0.0
    assert grant(12.0, [3.0, 4.0, 4.0]) == 1.0


async def test_three_holders_of_one_key_together_stay_under_its_limit() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=30.0)
    holders = [
        SharedRate("flickr:k", 10.0, 5, shares, holder=f"h{i}", clock=clock) for i in range(3)
    ]
    times: list[list[float]] = [[] for _ in holders]
    tasks = [
        asyncio.create_task(_call_forever(h, clock, t)) for h, t in zip(holders, times, strict=True)
    ]
    start = clock.now
    await clock.run_until(start + 600)
    for task in tasks:
        task.cancel()
    everyone = [t for per in times for t in per]
    # The whole run, and any window in it, holds the limit plus at most the key's burst
    # and one call per holder (each slice carries at least one call of burst).
    assert len(everyone) <= 10.0 * 600 + 5 + 3
    for window in (1.0, 10.0, 60.0):
        assert max_in_window(everyone, window) <= 10.0 * window + 5 + 3
    assert len(everyone) >= 10.0 * 600 * 0.95  # and the limit is used, not wasted
    # Once settled (a lease), each holder gets a third.
    for per in times:
        settled = [t for t in per if t >= start + 60]
        assert len(settled) == pytest.approx(10.0 / 3 * 540, rel=0.02)


async def test_holders_joining_one_by_one_never_exceed_the_limit() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=9.0)
    everyone: list[float] = []
    tasks = []
    for i in range(4):
        holder = SharedRate("k", 8.0, 1, shares, holder=f"h{i}", clock=clock)
        tasks.append(asyncio.create_task(_call_forever(holder, clock, everyone)))
        await clock.run_until(clock.now + 7.0)
        assert sum(shares.held("k").values()) <= 8.0 + 1e-9
    await clock.run_until(clock.now + 30.0)
    for task in tasks:
        task.cancel()
    assert max_in_window(everyone, 5.0) <= 8.0 * 5 + 1 + 4
    assert shares.held("k") == pytest.approx(dict.fromkeys(["h0", "h1", "h2", "h3"], 2.0))


async def test_a_dead_holders_share_comes_back_within_a_lease() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=12.0)
    survivor = SharedRate("k", 6.0, 1, shares, holder="alive", clock=clock)
    doomed = SharedRate("k", 6.0, 1, shares, holder="dead", clock=clock)
    alive_times: list[float] = []
    alive = asyncio.create_task(_call_forever(survivor, clock, alive_times))
    dying = asyncio.create_task(_call_forever(doomed, clock, []))
    await clock.run_until(clock.now + 30.0)
    assert survivor.slice_rate == pytest.approx(3.0)
    dying.cancel()  # killed: no give_back, its row stays until its lease ends
    died_at = clock.now
    await clock.run_until(died_at + 12.0 + 4.0 + 1.0)  # a lease, then one renewal
    assert survivor.slice_rate == pytest.approx(6.0)
    late = [t for t in alive_times if t >= clock.now - 1.0]
    assert len(late) >= 5
    alive.cancel()


async def test_closing_gives_the_slice_back_at_once() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=30.0)
    rates = SharedRates(shares, clock=clock)
    limiter = rates.limiter("k", 4.0, 1)
    assert rates.limiter("k", 4.0, 1) is limiter  # one limiter per key in a process
    task = asyncio.create_task(limiter.acquire())
    await clock.run_until(clock.now + 1.0)
    await task
    assert len(shares.held("k")) == 1
    await rates.close()
    assert shares.held("k") == {}


async def test_a_store_outage_keeps_the_slice_until_its_lease_ends_then_admits_nothing() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=10.0)
    limiter = SharedRate("k", 5.0, 1, shares, holder="h", clock=clock)
    times: list[float] = []
    task = asyncio.create_task(_call_forever(limiter, clock, times))
    await clock.run_until(clock.now + 2.0)
    shares.down = True
    down_at = clock.now
    await clock.run_until(down_at + 60.0)
    assert times[-1] < down_at + 10.0  # nothing once the last grant's lease is over
    assert len([t for t in times if t > down_at]) >= 5 * 4  # but the slice held until then
    shares.down = False
    await clock.run_until(clock.now + 3.0)
    assert times[-1] > down_at + 60.0
    task.cancel()


async def test_a_429_halves_the_holders_slice_and_it_recovers_additively() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=30.0)
    limiter = SharedRate("k", 8.0, 1, shares, holder="h", clock=clock)
    task = asyncio.create_task(limiter.acquire())
    await clock.run_until(clock.now + 1.0)
    await task
    limiter.throttled()
    assert limiter.current_rate == pytest.approx(4.0)
    await clock.run_until(clock.now + 20.0)  # additive recovery, within the slice's lease
    limiter.succeeded()
    assert limiter.current_rate == pytest.approx(4.0 + 8.0 / 60 * 20)  # a 60th of it a second


async def test_a_new_slice_keeps_an_aimd_cut_in_proportion() -> None:
    clock = SimClock()
    bucket = TokenBucket(8.0, 4, clock=clock)
    bucket.throttled()
    bucket.set_ceiling(4.0, 2)
    assert bucket.configured_rate == 4.0
    assert bucket.current_rate == pytest.approx(2.0)


async def test_host_slots_rate_limit_each_host_separately() -> None:
    clock = SimClock()
    made: list[str] = []

    def rate_for(host: str) -> TokenBucket:
        made.append(host)
        return TokenBucket(2.0, 1, clock=clock, tokens=0.0)

    slots = HostSlots(4, rate_for=rate_for)
    times: dict[str, list[float]] = {"a": [], "b": []}

    async def fetch(host: str) -> None:
        async with slots.slot(host):
            times[host].append(clock.now)

    tasks = [asyncio.create_task(fetch(h)) for h in "aaaabbbb"]
    await clock.run_until(clock.now + 10.0)
    await asyncio.gather(*tasks)
    assert made == ["a", "b"]
    for host in "ab":
        gaps = [b - a for a, b in itertools.pairwise(times[host])]
        assert gaps == pytest.approx([0.5] * 3)
    assert slots.rate("A") is slots.rate("a")


async def test_the_workers_of_a_daemon_split_one_slice_leased_under_the_daemons_name() -> None:
    store = FakeShares(SimClock(), lease_s=30.0)
    split = SplitShares(store, 2, holder="daemon")
    first = await split.take("host:cdn", "worker-1", 100.0)
    second = await split.take("host:cdn", "worker-2", 100.0)
    # Equal from the start: as holders of their own, the second would get nothing until the
    # first renewed, a third of a lease later.
    assert (first.rate, second.rate) == (50.0, 50.0)
    assert store.held("host:cdn") == {"daemon": 100.0}
    await split.give_back("host:cdn", "worker-1")  # a worker's part lapses with the daemon's
    assert store.held("host:cdn") == {"daemon": 100.0}
    await split.close()
    assert store.held("host:cdn") == {}


class GatedShares(FakeShares):
    """A store whose renewals wait at a gate the test opens, counted."""

    def __init__(self, clock: SimClock, lease_s: float) -> None:
        super().__init__(clock, lease_s)
        self.gate = asyncio.Event()
        self.gate.set()
        self.takes = 0

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        self.takes += 1
        await self.gate.wait()
        return await super().take(key, holder, total_rate, throttle)


async def _settle() -> None:
    """Let every task that can run, run (none sleeps on a clock here)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_notices_during_a_renewal_make_one_more_renewal_after_it_not_one_each() -> None:
    clock = SimClock()
    shares = GatedShares(clock, lease_s=3600.0)
    limiter = SharedRate("k", 8.0, 1, shares, holder="h", clock=clock)
    limiter.refresh()  # no slice yet: nothing to renew (its first acquire asks)
    first = asyncio.create_task(limiter.acquire())
    await clock.run_until(clock.now + 1.0, watch=[first])
    await first
    assert shares.takes == 1
    shares.gate.clear()
    limiter.refresh()
    await asyncio.sleep(0)  # the renewal has asked and waits at the gate
    assert shares.takes == 2
    for _ in range(20):  # notices heard while it is in flight: it may have read before them
        limiter.refresh()
    shares.gate.set()
    refreshing = limiter._refreshing
    assert refreshing is not None
    await refreshing  # the renewal in flight, then the one more
    assert shares.takes == 3
    await limiter.close()
    limiter.refresh()  # given back: a late notice takes no new slice
    assert limiter._refreshing is None and shares.held("k") == {}


async def test_workers_renewing_together_share_one_renewal_of_the_daemons_slice() -> None:
    store = GatedShares(SimClock(), lease_s=30.0)
    split = SplitShares(store, 4, holder="daemon")
    store.gate.clear()
    together = [asyncio.create_task(split.take("k", f"w{i}", 100.0)) for i in range(4)]
    await _settle()
    assert store.takes == 1
    split.refresh("k")  # a notice: the renewal under way may have read the store before it
    late = asyncio.create_task(split.take("k", "w5", 100.0))
    reporting = asyncio.create_task(split.take("k", "w6", 100.0, Throttle()))
    await _settle()
    assert store.takes == 3  # the late one did not join; a 429 to report asks on its own
    store.gate.set()
    granted = await asyncio.gather(*together, late, reporting)
    assert {g.rate for g in granted} == {25.0}
    await split.close()


async def test_a_notice_does_not_revive_a_slice_its_idle_holder_let_lapse() -> None:
    clock = SimClock()
    shares = FakeShares(clock, lease_s=30.0)
    idle = SharedRate("k", 8.0, 1, shares, holder="idle", clock=clock)
    first = asyncio.create_task(idle.acquire())
    await clock.run_until(clock.now + 1.0, watch=[first])
    await first
    await clock.run_until(clock.now + 60.0)  # no call since: its slice lapsed, here and there
    busy = SharedRate("k", 8.0, 1, shares, holder="busy", clock=clock)
    calling = asyncio.create_task(_call_forever(busy, clock, []))
    await clock.run_until(clock.now + 1.0)
    assert shares.held("k") == {"busy": 8.0}
    idle.refresh()  # the key was cut elsewhere: only holders in force need to hear now
    await _settle()
    assert idle._refreshing is None
    assert shares.held("k") == {"busy": 8.0}
    await clock.run_until(clock.now + 20.0)  # past busy's next renewal
    assert busy.slice_rate == 8.0  # not an equal share with a holder that makes no calls
    calling.cancel()
    await asyncio.gather(calling, return_exceptions=True)
    await busy.close()

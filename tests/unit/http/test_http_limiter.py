"""Token bucket and host slots, driven by a fake clock: hours of traffic, no sleeping."""

from __future__ import annotations

import asyncio
import itertools

import clocks
import pytest
from clocks import max_in_window

from harvester.http.limiter import HostSlots, TokenBucket


class FakeClock(clocks.FakeClock):
    """Started at 1000 s, so no test relies on time beginning at zero."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)


async def _acquire_times(bucket: TokenBucket, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await bucket.acquire()
        times.append(clock.now)
    return times


async def test_burst_is_admitted_at_once_then_calls_are_paced_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 5, clock=clock)
    times = await _acquire_times(bucket, clock, 7)
    assert times[:5] == [1000.0] * 5
    assert times[5] == pytest.approx(1000.5)
    assert times[6] == pytest.approx(1001.0)


async def test_flickr_rate_of_3600_an_hour_holds_over_a_long_run() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3600 / 3600, 10, clock=clock)
    times = await _acquire_times(bucket, clock, 7200)
    elapsed = times[-1] - times[0]
    assert elapsed == pytest.approx((7200 - 10) / 1.0, rel=1e-6)
    for window in (1.0, 10.0, 60.0, 3600.0):
        assert max_in_window(times, window) <= 10 + window * 1.0


async def test_concurrent_callers_share_one_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 3, clock=clock)
    times: list[float] = []

    async def caller() -> None:
        await bucket.acquire()
        times.append(clock.now)

    await asyncio.gather(*(caller() for _ in range(50)))
    times.sort()
    assert times[-1] - times[0] == pytest.approx((50 - 3) / 10.0)
    assert max_in_window(times, 1.0) <= 3 + 10


async def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 4, clock=clock)
    await _acquire_times(bucket, clock, 4)
    clock.advance(3600)
    times = await _acquire_times(bucket, clock, 6)
    assert times[:4] == [times[0]] * 4
    assert times[4] == pytest.approx(times[0] + 1.0)


async def test_throttle_halves_the_rate_once_per_cooldown() -> None:
    clock = FakeClock()
    bucket = TokenBucket(8.0, 1, clock=clock)
    bucket.throttled()
    bucket.throttled()  # the same overload reported by a second in-flight request
    assert bucket.current_rate == 4.0
    clock.advance(1.0)
    bucket.throttled()
    assert bucket.current_rate == 2.0


async def test_throttle_never_goes_below_the_minimum_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(8.0, 1, clock=clock, min_rate_per_s=3.0)
    for _ in range(10):
        bucket.throttled()
        clock.advance(5.0)
    assert bucket.current_rate == 3.0


async def test_default_minimum_is_a_sixteenth_of_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(16.0, 1, clock=clock)
    for _ in range(10):
        bucket.throttled()
        clock.advance(5.0)
    assert bucket.current_rate == 1.0


async def test_success_recovers_the_rate_additively_up_to_the_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 1, clock=clock, recovery_per_s=0.5)
    bucket.throttled()
    assert bucket.current_rate == 5.0
    clock.advance(2.0)
    bucket.succeeded()
    assert bucket.current_rate == pytest.approx(6.0)
    clock.advance(2.0)
    bucket.succeeded()
    assert bucket.current_rate == pytest.approx(7.0)
    clock.advance(100.0)
    bucket.succeeded()
    assert bucket.current_rate == 10.0


async def test_throttled_bucket_admits_calls_at_the_reduced_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, 1, clock=clock)
    await bucket.acquire()
    bucket.throttled()
    times = await _acquire_times(bucket, clock, 5)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.5] * 4)


async def test_retry_after_pauses_all_callers_without_a_burst_at_its_end() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 5, clock=clock)
    start = clock.now
    bucket.throttled(retry_after=30.0)
    times = await _acquire_times(bucket, clock, 3)
    assert times[0] >= start + 30.0
    # the bucket refills from empty at the halved rate (5/s) after the pause
    assert times[2] - times[0] == pytest.approx(0.4)


async def test_no_recovery_is_credited_during_a_retry_after_pause() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 1, clock=clock, recovery_per_s=1.0)
    bucket.throttled(retry_after=60.0)
    clock.advance(30.0)
    bucket.succeeded()
    assert bucket.current_rate == 5.0
    clock.advance(32.0)
    bucket.succeeded()
    assert bucket.current_rate == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("rate", "burst", "kwargs"),
    [
        (0.0, 1, {}),
        (1.0, 0.5, {}),
        (1.0, 1, {"min_rate_per_s": 2.0}),
        (1.0, 1, {"min_rate_per_s": 0.0}),
        (1.0, 1, {"recovery_per_s": 0.0}),
    ],
)
def test_nonsensical_bucket_settings_are_refused(
    rate: float, burst: float, kwargs: dict[str, float]
) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, clock=FakeClock(), **kwargs)


async def test_host_slots_cap_concurrency_per_host_but_not_across_hosts() -> None:
    slots = HostSlots(2)
    inside: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    release = asyncio.Event()

    async def hold(host: str) -> None:
        async with slots.slot(host):
            inside[host] += 1
            peak[host] = max(peak[host], inside[host])
            await release.wait()
            inside[host] -= 1

    tasks = [asyncio.create_task(hold(h)) for h in "aaaaabbb"]
    for _ in range(5):
        await asyncio.sleep(0)
    assert inside == {"a": 2, "b": 2}
    assert slots.in_use("A") == 5
    release.set()
    await asyncio.gather(*tasks)
    assert peak == {"a": 2, "b": 2}
    assert slots.in_use("a") == 0 and slots.in_use("b") == 0


async def test_host_slot_is_released_when_the_holder_fails() -> None:
    slots = HostSlots(1)
    with pytest.raises(RuntimeError):
        async with slots.slot("cdn.example"):
            raise RuntimeError("boom")
    async with asyncio.timeout(1):
        async with slots.slot("cdn.example"):
            pass

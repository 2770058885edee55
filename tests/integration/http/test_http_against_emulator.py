"""The HTTP layer against the project's emulator, counted by the emulator itself."""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from typing import Any

import aiohttp
import pytest
from clocks import FakeClock
from http_upstream import make_settings

from harvester.emulator import (
    EmulatorConfig,
    Faults,
    Outage,
    RunningEmulator,
    Warts,
    start_emulator,
)
from harvester.emulator.stats import key_label
from harvester.http import (
    CircuitBreaker,
    HttpClient,
    RateLimitedError,
    TokenBucket,
    flickr_body_errors,
)

KEY = "rate-test-key-0123456789abcdef"


def _search(api_url: str, page: int) -> tuple[str, dict[str, str]]:
    return api_url, {
        "method": "flickr.photos.search",
        "api_key": KEY,
        "text": "bridge",
        "format": "json",
        "nojsoncallback": "1",
        "per_page": "5",
        "page": str(page),
    }


class RecordingBucket(TokenBucket):
    """A token bucket on the fake clock that notes when it admitted each call."""

    def __init__(self, rate: float, burst: int, clock: FakeClock) -> None:
        super().__init__(rate, burst, clock=clock)
        self.clock = clock
        self.admitted: list[float] = []

    async def acquire(self) -> None:
        await super().acquire()
        self.admitted.append(self.clock.monotonic())


async def _search_all(api_url: str, bucket: TokenBucket, calls: int) -> list[Any]:
    async with HttpClient(make_settings()) as http:
        return await asyncio.gather(
            *(
                http.get_json(url, params=params, limiter=bucket, secrets=[KEY])
                for url, params in (_search(api_url, i) for i in range(calls))
            )
        )


async def test_a_client_at_n_calls_per_second_never_exceeds_n_plus_burst():
    """The limiter's promise, on the fake clock: no second of (fake) time admits more than
    rate + burst calls, every call the emulator saw was admitted, and pacing is exact."""
    rate, burst, calls = 40.0, 2, 80
    emulator = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY})))
    bucket = RecordingBucket(rate, burst, FakeClock())
    try:
        pages = await _search_all(emulator.flickr_api_url, bucket, calls)
        stats = emulator.state.stats.snapshot()["keys"][key_label(KEY)]
    finally:
        await emulator.close()
    assert all(page["stat"] == "ok" for page in pages)
    assert stats["total"] == calls == len(bucket.admitted)
    times = bucket.admitted
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= rate + burst, busiest
    assert times[-1] - times[0] == pytest.approx((calls - burst) / rate)


async def test_on_the_real_clock_no_call_reaches_the_server_before_its_token():
    """What holds however the machine schedules us: requests arrive after their token, so
    by any whole second the server has seen at most burst + rate * (time since start), and
    the calls cannot all be done sooner than (calls - burst) / rate."""
    rate, burst, calls = 40.0, 2, 80
    emulator = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY})))
    try:
        started = time.time()  # the emulator counts seconds on this clock
        bucket = TokenBucket(rate, burst)
        pages = await _search_all(emulator.flickr_api_url, bucket, calls)
        elapsed = time.time() - started
        stats = emulator.state.stats.snapshot()["keys"][key_label(KEY)]
    finally:
        await emulator.close()
    assert all(page["stat"] == "ok" for page in pages)
    assert stats["total"] == calls
    seen = 0
    for second, count in sorted((int(s), c) for s, c in stats["per_second"].items()):
        seen += count
        assert seen <= burst + rate * (second + 1 - started), (second, seen)
    assert elapsed >= (calls - burst) / rate


async def test_a_429_storm_with_retry_after_is_ridden_out_with_no_request_lost():
    storm = Faults(rate_429=0.5, retry_after_s=2.0, scope=frozenset({"api"}))
    emulator = await start_emulator(EmulatorConfig(faults=storm, flickr_keys=frozenset({KEY})))
    clock = FakeClock()  # back-off and Retry-After waits are honoured on a fake clock
    try:
        settings = make_settings(max_attempts=12)
        async with HttpClient(settings, clock=clock, rng=random.Random(3)) as http:
            bucket = TokenBucket(100.0, 10, clock=clock)
            pages = await asyncio.gather(
                *(
                    http.get_json(url, params=params, limiter=bucket, secrets=[KEY])
                    for url, params in (_search(emulator.flickr_api_url, i) for i in range(1, 31))
                )
            )
        stats = emulator.state.stats.snapshot()["keys"][key_label(KEY)]
    finally:
        await emulator.close()
    assert [int(page["photos"]["page"]) for page in pages] == list(range(1, 31))
    assert stats["status_429"] > 0, "the storm never happened"
    assert stats["total"] == 30 + stats["status_429"]
    assert max(clock.sleeps) >= 2.0, "Retry-After: 2 was not waited for"


async def test_a_cdn_429_with_retry_after_as_an_http_date_is_read_as_the_wait() -> None:
    """RFC 9110 lets Retry-After be an HTTP-date; a CDN's 429 so dated tells the queue the
    same wait as its delay-seconds form would (the date has whole seconds: up to one less)."""
    faults = Faults(rate_429=1.0, retry_after_s=40, retry_after_date=True, scope=frozenset({"cdn"}))
    emulator = await start_emulator(EmulatorConfig(faults=faults))
    url = f"{emulator.base_url}/cdn/web/c0000001.jpg"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as raw:
            sent = raw.headers["Retry-After"]
        async with HttpClient(make_settings(max_attempts=1)) as http:
            with pytest.raises(RateLimitedError) as caught:
                await http.fetch(url)
    finally:
        await emulator.close()
    assert raw.status == 429 and sent.endswith(" GMT"), sent
    assert caught.value.retry_after is not None and 38.0 <= caught.value.retry_after <= 41.0
    assert caught.value.throttled


class _LinkedClock(FakeClock):
    """The client's fake clock, moving the emulator's clock along with it."""

    def __init__(self, emulator: RunningEmulator) -> None:
        super().__init__()
        self.emulator = emulator

    async def sleep(self, seconds: float) -> None:
        self.emulator.state.clock.advance(max(0.0, seconds))
        await super().sleep(seconds)


async def test_a_three_minute_outage_is_waited_out_by_probes_not_by_spent_attempts():
    outage = Warts(outages=(Outage("flickr", 0, 180),))
    emulator = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY}), warts=outage))
    clock = _LinkedClock(emulator)
    breaker = CircuitBreaker("flickr", probe_after_s=5, max_probe_interval_s=30, clock=clock)
    try:
        async with HttpClient(make_settings(max_attempts=3), clock=clock) as http:
            pages = await asyncio.gather(
                *(
                    http.get_json(
                        url, params=params, secrets=[KEY], breaker=breaker,
                        body_errors=flickr_body_errors([KEY]),
                    )
                    for url, params in (_search(emulator.flickr_api_url, i) for i in range(1, 9))
                )
            )  # fmt: skip
        stats = emulator.state.stats.snapshot()
    finally:
        await emulator.close()
    assert [int(page["photos"]["page"]) for page in pages] == list(range(1, 9))
    assert clock.now >= 180 and breaker.opened == 1 and not breaker.is_open
    # Eight callers with three attempts each would all have failed; instead each made
    # its first attempt, then only probes went, one per interval (5, 10, 20, 30, 30 ... s).
    assert 8 <= stats["outage"] <= 8 + 8, stats["outage"]
    assert stats["total"] == stats["outage"] + 8

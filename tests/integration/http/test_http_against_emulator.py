"""The HTTP layer against the project's emulator, counted by the emulator itself."""

from __future__ import annotations

import asyncio
import random

from clocks import FakeClock
from http_upstream import make_settings

from harvester.emulator import EmulatorConfig, Faults, start_emulator
from harvester.emulator.stats import key_label
from harvester.http import HttpClient, TokenBucket

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


async def test_a_client_at_n_calls_per_second_never_exceeds_n_plus_burst():
    rate, burst, calls = 40.0, 2, 80
    emulator = await start_emulator(EmulatorConfig())
    try:
        async with HttpClient(make_settings()) as http:
            bucket = TokenBucket(rate, burst)
            pages = await asyncio.gather(
                *(
                    http.get_json(url, params=params, limiter=bucket, secrets=[KEY])
                    for url, params in (_search(emulator.flickr_api_url, i) for i in range(calls))
                )
            )
        stats = emulator.state.stats.snapshot()["keys"][key_label(KEY)]
    finally:
        await emulator.close()
    assert all(page["stat"] == "ok" for page in pages)
    assert stats["total"] == calls
    assert stats["max_1s"] <= rate + burst, stats["max_1s"]


async def test_a_429_storm_with_retry_after_is_ridden_out_with_no_request_lost():
    storm = Faults(rate_429=0.5, retry_after_s=2.0, scope=frozenset({"api"}))
    emulator = await start_emulator(EmulatorConfig(faults=storm))
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

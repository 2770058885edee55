"""Two daemons' clients on one Flickr key, through real HTTP to the emulator: a 429 one of
them gets slows the other down too (the key is over, not one slice). Simulated time, a real
SQLite file for the shared slices."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from clocks import SimClock
from http_upstream import make_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.rate_shares import DatabaseRateShares
from harvester.emulator import EmulatorConfig, Faults, start_emulator
from harvester.emulator.stats import key_label
from harvester.http import HttpClient, RateLimitedError
from harvester.http.shared import SharedRate

KEY = "shared-429-key-0123456789abcdef"
EPOCH = datetime(2026, 12, 1, tzinfo=UTC)
RATE, LEASE = 4.0, 6.0  # 2 calls/s each once settled; a renewal every 2 s


@pytest.mark.parametrize("retry_after", [3, 3600], ids=["short", "too-long-to-wait-inline"])
async def test_a_429_one_daemon_gets_slows_every_daemon_on_the_key(
    sqlite_engine: AsyncEngine, retry_after: int
) -> None:
    faults = Faults(retry_after_s=retry_after, scope=frozenset({"api"}))
    emulator = await start_emulator(EmulatorConfig(faults=faults, flickr_keys=frozenset({KEY})))
    clock = SimClock()
    shares = DatabaseRateShares(
        sqlite_engine, LEASE, clock=lambda: EPOCH + timedelta(seconds=clock.now)
    )
    a, b = (SharedRate("flickr:k", RATE, 1, shares, holder=h, clock=clock) for h in "ab")
    times: dict[str, list[float]] = {"a": [], "b": []}
    settings = make_settings(max_attempts=1)
    try:
        async with (
            HttpClient(settings, clock=clock) as http_a,
            HttpClient(settings, clock=clock) as http_b,
        ):

            def search(http: HttpClient, limiter: SharedRate) -> Callable[[], Awaitable[object]]:
                params = {"method": "flickr.photos.search", "api_key": KEY, "text": "bridge"}
                params |= {"format": "json", "nojsoncallback": "1", "per_page": "5"}
                url = emulator.flickr_api_url
                return lambda: http.get_json(url, params=params, limiter=limiter, secrets=[KEY])

            calls = {"a": search(http_a, a), "b": search(http_b, b)}

            async def loop(name: str) -> None:
                while True:
                    await calls[name]()
                    times[name].append(clock.now)

            tasks = [asyncio.create_task(loop(name)) for name in "ab"]
            await clock.run_until(clock.now + 20.0, watch=tasks)
            assert a.slice_rate == b.slice_rate == RATE / 2
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

            faults.rate_429 = 1.0  # the key is over: a's next call is refused
            hit = asyncio.create_task(calls["a"]())
            await clock.run_until(clock.now + 1.0, watch=[hit])
            with pytest.raises(RateLimitedError):
                await hit
            faults.rate_429 = 0.0
            refused_at = clock.now

            tasks = [asyncio.create_task(loop(name)) for name in "ab"]
            await clock.run_until(refused_at + 8.0, watch=tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seen = emulator.state.stats.snapshot()["keys"][key_label(KEY)]
    finally:
        await emulator.close()

    def count(name: str, start: float, end: float) -> int:
        return len([t for t in times[name] if refused_at + start < t < refused_at + end])

    assert seen["status_429"] == 1  # b never got a 429 of its own
    if retry_after == 3:  # both sat out the Retry-After; b from its next renewal on
        assert count("a", 0, 3) == count("b", LEASE / 3, 3) == 0
    else:  # too long to wait inline: nobody stalls (the row's not_before honours it)
        assert count("a", 0, 2) >= 1 and count("b", LEASE / 3, 3.5) >= 1
    for name in "ab":  # and both at half their slice (1/s), not 2/s, for the seconds after
        assert 3 <= count(name, 4, 8) <= 5, name

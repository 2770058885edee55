"""Inside a daemon on PostgreSQL, a notice that a key was cut elsewhere reaches the limiter of
that key in each worker process: the path a CDN host's 429 takes to every download."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harvester.db.migrate import upgrade
from harvester.db.rate_shares import DatabaseRateShares
from harvester.db.session import create_engine
from harvester.http.shared import Throttle
from harvester.worker.context import open_context
from harvester.worker.fetching import WorkerService
from harvester.worker.pool import InWorker

HOST = "host:cdn.example.net"
RATE = 100.0
LEASE = 3600.0  # a renewal every 20 minutes: only the notice can explain a sooner one


async def held_rate(here: InWorker, key: str) -> float:
    """In the worker: its limiter of ``key`` (made, with a slice, on first use)."""
    service: WorkerService = here.service
    limiter = service.shared.limiter(key, RATE, 1)
    await limiter.acquire()
    return limiter.current_rate


async def rate_now(here: InWorker, key: str) -> float:
    service: WorkerService = here.service
    return service.shared.limiter(key, RATE, 1).current_rate


async def test_a_cut_elsewhere_reaches_the_limiter_in_the_workers_at_once(
    postgres_url: str, quick_settings: Any
) -> None:
    settings = quick_settings(postgres_url, processes=1, rate_share_lease_seconds=LEASE)
    engine = create_engine(postgres_url)
    try:
        await upgrade(engine)
        async with open_context(settings, engine) as ctx:
            assert await ctx.pool.job(held_rate, HOST) == RATE  # the whole host: nobody else yet
            # another daemon got a 429 from the host and reports it
            await DatabaseRateShares(engine, LEASE).take(HOST, "elsewhere", RATE, Throttle())
            async with asyncio.timeout(10.0):
                while True:
                    rate = await ctx.pool.job(rate_now, HOST)
                    if rate != RATE:
                        break
                    await asyncio.sleep(0.01)  # polled: the notice crosses two processes
    finally:
        await engine.dispose()
    # the worker renewed (half the host now: the other daemon holds a slice) and halved
    assert rate == pytest.approx(RATE / 4)

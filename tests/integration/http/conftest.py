"""Fixtures for the HTTP client tests: a fresh upstream server and a client on a fake clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from clocks import FakeClock
from http_upstream import Upstream, make_settings

from harvester.http import HttpClient


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    runner = web.AppRunner(server.app, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    for _ in range(2):
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    (host, port), (_, other_port) = runner.addresses[:2]
    server.base = f"http://{host}:{port}"
    server.other_base = f"http://{host}:{other_port}"
    yield server
    server.stop.set()
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[HttpClient]:
    async with HttpClient(make_settings(), clock=clock, rng=random.Random(7)) as http:
        yield http

"""Slow-loris: a server that trickles a body, or never answers, costs a bounded time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from clocks import FakeClock
from http_upstream import make_settings

from harvester.http import (
    HostSlots,
    HttpClient,
    PermanentHttpError,
    SlowTransferError,
    TooSlowError,
    TransientHttpError,
)


class Trickle:
    """Sends a 10 KB body one byte every 20 ms (50 bytes/s), declared or chunked."""

    def __init__(self) -> None:
        self.requests = 0
        self.silent_reached = asyncio.Event()

    async def body(self, request: web.Request) -> web.StreamResponse:
        return await self._paced(request, b"x", 10_000, every_s=0.02)

    async def steady(self, request: web.Request) -> web.StreamResponse:
        """2,000 bytes at 2,000 bytes/s: 100 bytes every 50 ms, declared or chunked."""
        return await self._paced(request, b"y" * 100, 20, every_s=0.05)

    async def _paced(
        self, request: web.Request, chunk: bytes, count: int, *, every_s: float
    ) -> web.StreamResponse:
        """`count` chunks, one every `every_s`; their total length is declared when the
        request asks (?declared=1), otherwise the body is chunked."""
        self.requests += 1
        response = web.StreamResponse()
        if request.query.get("declared"):
            response.content_length = len(chunk) * count
        await response.prepare(request)
        for _ in range(count):
            await response.write(chunk)
            await asyncio.sleep(every_s)
        return response

    async def silent(self, _request: web.Request) -> web.Response:
        self.requests += 1
        self.silent_reached.set()
        await asyncio.sleep(3)  # under the socket timeout: each try waits it out
        return web.Response(status=503)


@pytest.fixture
async def trickle() -> AsyncIterator[tuple[Trickle, str]]:
    server = Trickle()
    app = web.Application()
    app.router.add_get("/body", server.body)
    app.router.add_get("/steady", server.steady)
    app.router.add_get("/silent", server.silent)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield server, f"http://{host}:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("query", ["", "?declared=1"])
async def test_a_trickling_body_is_cut_at_the_minimum_rate_on_every_try(
    trickle: tuple[Trickle, str], query: str
) -> None:
    server, base = trickle
    settings = make_settings(max_attempts=3, min_bytes_per_s=1000, min_rate_grace_s=0.3)
    started = time.monotonic()
    async with HttpClient(settings, clock=FakeClock()) as http:
        with pytest.raises(TooSlowError) as caught:
            await http.fetch(f"{base}/body{query}")
    assert caught.value.reason == "too_slow"
    # Final: the queue does not give the row another round of tries (a row's whole cost).
    assert isinstance(caught.value, PermanentHttpError)
    assert server.requests == 3
    assert time.monotonic() - started < 10  # three tries of ~0.3 s, not 3 x 200 s


@pytest.mark.parametrize("query", ["", "?declared=1"])
async def test_a_body_keeping_the_pace_is_not_cut_after_the_grace(
    trickle: tuple[Trickle, str], query: str
) -> None:
    """The floor is on the rate, not the time: a body arriving at twice the minimum
    rate for three times the grace period is read whole, on the first try."""
    server, base = trickle
    settings = make_settings(max_attempts=1, min_bytes_per_s=1000, min_rate_grace_s=0.3)
    async with HttpClient(settings, clock=FakeClock()) as http:
        body = await http.fetch(f"{base}/steady{query}")
    assert body.data == b"y" * 2_000
    assert server.requests == 1


async def test_one_fetch_with_all_its_tries_ends_within_the_budget(
    trickle: tuple[Trickle, str],
) -> None:
    server, base = trickle
    settings = make_settings(max_attempts=5, budget_s=1.0)
    started = time.monotonic()
    async with HttpClient(settings, clock=FakeClock()) as http:
        with pytest.raises(TooSlowError, match="1 s budget") as caught:
            await http.fetch(f"{base}/silent")
    assert not isinstance(caught.value, TransientHttpError)  # the row is not queued again
    assert server.requests == 1
    assert time.monotonic() - started < 2.5  # not five tries of 3 s each


async def test_a_budget_spent_waiting_for_a_host_slot_is_tried_again_later(
    trickle: tuple[Trickle, str],
) -> None:
    """Only the server's own slowness is final: a fetch that spent its budget queued
    behind another for the host's one slot never reached the server and may retry."""
    server, base = trickle
    slots = HostSlots(1)  # shared: the holder's budget outlasts the waiter's, so no race
    holder_settings = make_settings(max_attempts=1, budget_s=2.0)  # the server answers at 3 s
    waiter_settings = make_settings(max_attempts=1, budget_s=1.0)
    async with (
        HttpClient(holder_settings, clock=FakeClock()) as holder,
        HttpClient(waiter_settings, clock=FakeClock()) as waiter,
    ):
        holding = asyncio.create_task(holder.fetch(f"{base}/silent", host_slots=slots))
        await server.silent_reached.wait()  # the holder is with the server, in the one slot
        with pytest.raises(SlowTransferError):
            await waiter.fetch(f"{base}/silent", host_slots=slots)
        assert server.requests == 1  # the waiter never reached the server
        with pytest.raises(TooSlowError):
            await holding
    assert server.requests == 1

"""A body shorter than its Content-Length on a connection the server then holds open (no
FIN, as stalled CDN edges do) is a truncated body, retried as one, whichever of the client's
timers notices the silence; and its connection never goes back to the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from clocks import FakeClock
from http_upstream import make_settings
from local_server import serving

from harvester.emulator import EmulatorConfig, Faults, WorldSize, start_emulator
from harvester.emulator.faults import send_stalled
from harvester.http import HttpClient, HttpSettings, TruncatedBodyError

BODY = bytes(range(256)) * 8  # 2,048 bytes


class Edge:
    """/whole answers BODY; /short declares it and sends 1,000 bytes, then holds the
    connection open until the client hangs up. ``peers`` is each request's client port."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.app = web.Application()
        self.app.router.add_get("/whole", self.whole)
        self.app.router.add_get("/short", self.short)

    def _seen(self, request: web.Request) -> None:
        assert request.transport is not None
        self.peers.append((request.path, request.transport.get_extra_info("peername")[1]))

    async def whole(self, request: web.Request) -> web.Response:
        self._seen(request)
        return _whole()

    async def short(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        # The emulator's stall: coin 0.6 sends 20% + 60% * 0.6 = 56% of the body (1,146 bytes).
        await send_stalled(request, _whole(), 0.6)
        raise AssertionError("unreachable: send_stalled ends by cancelling the handler")


def _whole() -> web.Response:
    return web.Response(body=BODY, content_type="image/jpeg")


@pytest.fixture
async def edge() -> AsyncIterator[tuple[Edge, str]]:
    server = Edge()
    async with serving(server.app) as base:
        yield server, base


# The socket's read timeout notices the silence first (the pace would wait 10 s), or the
# pace does (the socket would wait 5 s). The pace's grace, 0.5 s, and its margin, 1,146
# bytes at 1,000 bytes/s (the bytes came on pace if they came within 1.1 s), are generous
# beside loopback's delivery of a few kB: a slow machine classifies the same.
TIMERS = {
    "read_timeout": make_settings(max_attempts=2, sock_read_timeout_s=0.3),
    "pace": make_settings(
        max_attempts=2, sock_read_timeout_s=5.0, min_bytes_per_s=1000, min_rate_grace_s=0.5
    ),
}


@pytest.mark.parametrize("timer", TIMERS)
async def test_a_short_body_the_server_then_leaves_silent_is_truncated_and_retried(
    edge: tuple[Edge, str], timer: str
) -> None:
    server, base = edge
    clock = FakeClock()  # the back-off between the tries, not waited
    async with HttpClient(TIMERS[timer], clock=clock) as http:
        with pytest.raises(TruncatedBodyError) as caught:
            await http.fetch(f"{base}/short")
    assert caught.value.reason == "truncated"  # not timeout, not too_slow (final)
    assert "1146 bytes, 2048 declared, then silence" in str(caught.value)
    assert [path for path, _ in server.peers] == ["/short", "/short"]  # retried, as a cut is
    assert len(clock.sleeps) == 1


async def test_a_connection_that_delivered_a_short_body_is_never_reused(
    edge: tuple[Edge, str],
) -> None:
    server, base = edge
    settings: HttpSettings = make_settings(max_attempts=1, sock_read_timeout_s=0.3)
    async with HttpClient(settings, clock=FakeClock()) as http:
        for path in ("/whole", "/whole", "/short", "/whole"):
            try:
                await http.fetch(f"{base}{path}")
            except TruncatedBodyError:
                assert path == "/short"
    ports = [port for _, port in server.peers]
    assert ports[1] == ports[0]  # a whole body's connection is pooled and reused...
    assert ports[2] == ports[1]  # ...for the request that then stalls on it...
    assert ports[3] != ports[2]  # ...which is closed, not handed to the next request


async def test_the_emulators_stalled_answers_are_truncated_bodies_to_the_client() -> None:
    faults = Faults(stall_rate=1.0, scope=frozenset({"cdn"}))
    world = WorldSize(flickr_photos=10, mapillary_dense_images=10)
    emulator = await start_emulator(EmulatorConfig(faults=faults, world=world))
    try:
        url = emulator.world.url_list(1, base_url=emulator.base_url, hostile=False)[0]["url"]
        settings = make_settings(max_attempts=2, sock_read_timeout_s=0.3)
        async with HttpClient(settings, clock=FakeClock()) as http:
            with pytest.raises(TruncatedBodyError, match="then silence"):
                await http.fetch(url)
        stats = emulator.state.stats.snapshot()
    finally:
        await emulator.close()
    assert stats["stalled"] == 2

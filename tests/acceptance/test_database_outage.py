"""A real database outage (a TCP proxy cut between the daemon and Postgres): the daemon stays
up, /readyz says 503 until the database is back, and the harvest loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from daemon_harness import Harness, check_harvest
from served import served_url
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

OUTAGE_S = 8.0  # the progress loop used to stop the daemon after ~3 s of this


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _until(check: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(limit_s):
            while not await check():  # noqa: ASYNC110 - polling another process over HTTP
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"waited {limit_s:g} s for {what}") from None


async def test_a_database_outage_leaves_the_daemon_alive_and_loses_nothing(
    postgres_url: str, tmp_path: Path
):
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(port=await proxy.start()).render_as_string(hide_password=False)
    harness = Harness(postgres_url, tmp_path / "data")
    await harness.start_emulator("--latency-ms", "200")
    seen: list[str] = []
    try:
        expected = await harness.submit("outage", 80, tmp_path)
        daemon = await harness.start_daemon(
            "--until-idle", "--http", "127.0.0.1:0", HARVESTER_DATABASE_URL=proxied
        )
        assert daemon.stdout is not None
        base = await served_url(daemon.stdout, seen)
        async with aiohttp.ClientSession() as http:

            async def ready_is(status: int) -> bool:
                return await _status(http, f"{base}/readyz") == status

            await _until(lambda: ready_is(200), 60, "the daemon to be ready")
            await harness.wait_for_stored(5)
            proxy.cut()
            await _until(lambda: ready_is(503), 10, "/readyz to notice the outage")
            async with http.get(f"{base}/readyz") as response:
                body = await response.json()
            assert body["status"] == "unavailable" and "database" in body["reason"], body
            stored_at_cut = await harness.count("stored")
            await asyncio.sleep(OUTAGE_S)
            assert daemon.returncode is None, "the daemon stopped during the outage"
            assert await _status(http, f"{base}/livez") == 200
            assert await ready_is(503)
            assert await harness.count("stored") < len(expected), "the outage came too late"
            proxy.restore()
            await _until(lambda: ready_is(200), 30, "/readyz to see the database back")
        out_bytes, _ = await asyncio.wait_for(daemon.communicate(), 180)
        out = "".join(seen) + out_bytes.decode()
    finally:
        await harness.stop_emulator()
        await proxy.close()
    assert daemon.returncode == 0, out[-3000:]
    assert "database_error" in out and "loop_crashed" not in out
    rows = await harness.rows()
    check_harvest(rows, expected, harness.root)
    assert sum(r.state == "stored" for r in rows) > stored_at_cut

"""The daemon as users run it: killed at any instant, stopped politely, run twice at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from daemon_harness import Harness, check_harvest, kill_group
from sqlalchemy import text

from harvester.db.session import create_engine

FAULTS = ("--error-rate", "0.05", "--rate-429", "0.05", "--retry-after", "0",
          "--reset-rate", "0.02", "--truncate-rate", "0.02", "--fault-scope", "cdn")  # fmt: skip


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """conftest's harness on both databases: a kill must break the queue on neither."""
    h = Harness(database_url, tmp_path / "data")
    yield h
    await h.stop_emulator()


# A daemon's claim loop is its one writer of image rows before it holds any.
WAITING_CLAIMS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND query LIKE '%UPDATE images %'"
)


@contextlib.asynccontextmanager
async def _claims_held(url: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """While this holds the images table (PostgreSQL), claims of its rows wait for it; plain
    reads do not. Yields a wait until that many claims are waiting; lets them go at exit."""
    engine = create_engine(url)
    try:
        async with engine.begin() as holder, engine.connect() as watcher:
            await holder.execute(text("LOCK TABLE images IN EXCLUSIVE MODE"))
            # Each look its own transaction: one transaction sees one snapshot of the activity.
            await watcher.execution_options(isolation_level="AUTOCOMMIT")

            async def waiting(claims: int) -> None:
                async with asyncio.timeout(120):  # daemons starting on a loaded machine
                    while (await watcher.execute(WAITING_CLAIMS)).scalar_one() < claims:  # noqa: ASYNC110 - other processes' sessions
                        await asyncio.sleep(0.1)

            yield waiting
    finally:
        await engine.dispose()


async def test_sigkill_at_several_points_loses_and_duplicates_nothing(
    harness: Harness, tmp_path: Path
):
    await harness.start_emulator(*FAULTS)
    expected = await harness.submit("victims", 120, tmp_path)
    for stored_before_kill in (5, 30, 60):
        daemon = await harness.start_daemon()
        await harness.wait_for_stored(stored_before_kill)
        kill_group(daemon, signal.SIGKILL)
        await daemon.wait()
    code, out = await harness.cli("run", "--until-idle", limit_s=180)
    assert code == 0, out
    assert "leases_recovered" in out  # the dead daemon's rows were taken over at once
    check_harvest(await harness.rows(), expected, harness.root)


async def test_a_restart_after_a_sigkill_downloads_at_once_not_when_the_dead_daemons_rate_lapses(
    harness: Harness, tmp_path: Path
):
    """The killed daemon's slice of the CDN host's rate is leased for an hour here: unless
    the next start on the host takes it back, that one may not download for the hour."""
    harness.extra_env["HARVESTER_RATE_SHARE_LEASE_SECONDS"] = "3600"
    await harness.start_emulator()
    expected = await harness.submit("victims", 30, tmp_path)
    daemon = await harness.start_daemon()
    await harness.wait_for_stored(5)
    kill_group(daemon, signal.SIGKILL)
    await daemon.wait()
    restarted = await harness.start_daemon("--until-idle")
    try:
        out, _ = await asyncio.wait_for(restarted.communicate(), 120)
    finally:
        if restarted.returncode is None:
            kill_group(restarted)
            await restarted.wait()
    assert restarted.returncode == 0, out.decode()
    assert '"lane": "rate_shares"' in out.decode()  # the dead daemon's slice, taken back
    check_harvest(await harness.rows(), expected, harness.root)


async def test_sigterm_drains_in_flight_work_and_exits_zero(harness: Harness, tmp_path: Path):
    await harness.start_emulator("--latency-ms", "150")
    expected = await harness.submit("victims", 60, tmp_path)
    daemon = await harness.start_daemon("--grace", "20")
    await harness.wait_for_stored(5)
    kill_group(daemon, signal.SIGTERM)
    assert daemon.stdout is not None
    out = (await asyncio.wait_for(daemon.stdout.read(), 30)).decode()
    assert await daemon.wait() == 0, out
    assert "draining" in out and "daemon_stopped" in out
    assert await harness.count("running") == 0, "rows left leased after a clean stop"
    code, out = await harness.cli("run", "--until-idle", limit_s=120)
    assert code == 0, out
    check_harvest(await harness.rows(), expected, harness.root)


async def test_two_daemons_share_a_campaign_without_processing_any_row_twice(
    postgres_url: str, tmp_path: Path
):
    harness = Harness(postgres_url, tmp_path / "data")
    await harness.start_emulator("--latency-ms", "20")
    try:
        expected = await harness.submit("victims", 200, tmp_path)  # enough to share
        async with _claims_held(postgres_url) as claims_waiting:
            daemons = [await harness.start_daemon("--until-idle") for _ in range(2)]
            await claims_waiting(2)  # both at the starting line: one cannot take all 200
        outputs = await asyncio.wait_for(asyncio.gather(*(d.communicate() for d in daemons)), 180)
        assert [d.returncode for d in daemons] == [0, 0]
        summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        rows = await harness.rows()
    finally:
        await harness.stop_emulator()
    check_harvest(rows, expected, harness.root)
    assert all(row.attempts == 1 for row in rows), "a row was claimed twice"
    stored = [s["summary"]["images_stored"] for s in summaries]
    assert all(n > 0 for n in stored), f"one daemon did all the work: {stored}"
    assert sum(stored) == sum(1 for r in rows if r.state == "stored")

"""Faults that used to stall or quietly fail a whole harvest: a hostile Retry-After, and a
storage root the daemon may not write to."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from local_server import serving
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.clock import utcnow
from harvester.db.models import Image
from harvester.emulator import EmulatorConfig, Faults, RunningEmulator, start_emulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import DaemonError, run_daemon


@pytest.fixture
async def stalling() -> AsyncIterator[str]:
    """A server answering every request 429 with Retry-After: 99999999 (three years)."""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "99999999"})

    app = web.Application()
    app.router.add_get("/{name}", handler)
    async with serving(app) as base_url:
        yield base_url


async def _submit(engine: AsyncEngine, tmp_path: Path, urls: list[str]) -> None:
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url"])
        writer.writerows((f"r{i}", url) for i, url in enumerate(urls))
    await submit_urls(engine, UrlCampaign("limits", listing))


async def test_until_idle_leaves_rows_due_beyond_its_horizon_and_says_how_many(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    stalling: str,
) -> None:
    good = emulator.world.url_list(1, base_url=emulator.base_url, hostile=False)[0]["url"]
    await _submit(sqlite_engine, tmp_path, [good, f"{stalling}/a.jpg", f"{stalling}/b.jpg"])
    settings = quick_settings(sqlite_url, idle_horizon_seconds=60)

    counters = await asyncio.wait_for(run_daemon(settings, until_idle=True), timeout=60)

    assert counters.due_later == 2 and counters.as_dict()["rows_due_later"] == 2
    async with sqlite_engine.connect() as connection:
        rows = (await connection.execute(select(Image).order_by(Image.id))).all()
    assert [r.state for r in rows] == ["stored", "queued", "queued"]
    cap = utcnow() + timedelta(seconds=settings.max_retry_after_seconds + 5)
    for row in rows[1:]:
        not_before = row.not_before.replace(tzinfo=cap.tzinfo)
        assert utcnow() + timedelta(seconds=60) < not_before <= cap  # capped at an hour


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i`: even root may not create anything inside (EPERM)."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_a_storage_root_without_permission_stops_the_daemon_and_hands_rows_back(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
) -> None:
    rows = emulator.world.url_list(6, base_url=emulator.base_url, hostile=False)
    await _submit(sqlite_engine, tmp_path, [row["url"] for row in rows])
    root = tmp_path / "data"
    provider_dir = root / "urls"  # the root itself passes the start check; its subtree refuses
    provider_dir.mkdir(parents=True)

    with immutable(provider_dir), pytest.raises(DaemonError, match="Operation not permitted"):
        await asyncio.wait_for(run_daemon(quick_settings(sqlite_url), until_idle=True), 60)

    async with sqlite_engine.connect() as connection:
        images = (await connection.execute(select(Image))).all()
    assert {(r.state, r.attempts) for r in images} == {("queued", 0)}


async def test_a_deleted_sqlite_file_stops_the_daemon_with_an_error(
    sqlite_url: str, sqlite_engine: AsyncEngine, tmp_path: Path, quick_settings: Any
) -> None:
    slow = await start_emulator(EmulatorConfig(faults=Faults(latency_ms=150)))
    try:
        rows = slow.world.url_list(300, base_url=slow.base_url, hostile=False)
        await _submit(sqlite_engine, tmp_path, [row["url"] for row in rows])
        database = Path(sqlite_url.removeprefix("sqlite:///"))
        daemon = asyncio.create_task(run_daemon(quick_settings(sqlite_url), until_idle=True))
        while not await asyncio.to_thread(_stored_any, database):
            assert not daemon.done(), "the harvest ended before the file could be deleted"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(database.unlink)

        # A pool connection opened after the unlink makes a new, empty file at the path:
        # then the check finds it replaced rather than gone; either way the daemon stops.
        with pytest.raises(DaemonError, match=r"was (deleted|replaced) while the daemon ran"):
            await asyncio.wait_for(daemon, timeout=60)
    finally:
        await slow.close()


def _stored_any(database: Path) -> bool:
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
        return (
            connection.execute("SELECT 1 FROM images WHERE state = 'stored'").fetchone() is not None
        )

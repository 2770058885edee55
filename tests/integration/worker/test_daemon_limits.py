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
from urllib.parse import quote

import pytest
from aiohttp import web
from defaults import MAX_ATTEMPTS
from local_server import serving
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from worker_harness import Harvest

from harvester.db.clock import utcnow
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.emulator import EmulatorConfig, Faults, start_emulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker import daemon as daemon_module
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
    await submit_urls(engine, UrlCampaign("limits", listing), max_attempts=MAX_ATTEMPTS)


async def test_until_idle_leaves_rows_due_beyond_its_horizon_and_says_how_many(
    harvest: Harvest, stalling: str
) -> None:
    good = harvest.rows(1)[0]["url"]
    await _submit(harvest.engine, harvest.root, [good, f"{stalling}/a.jpg", f"{stalling}/b.jpg"])
    settings = harvest.settings(idle_horizon_seconds=60)

    counters = await asyncio.wait_for(run_daemon(settings, until_idle=True), timeout=60)

    assert counters.due_later == 2 and counters.as_dict()["rows_due_later"] == 2
    rows = await harvest.images()
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
    harvest: Harvest,
) -> None:
    await _submit(harvest.engine, harvest.root, [row["url"] for row in harvest.rows(6)])
    root = harvest.root / "data"
    provider_dir = root / "urls"  # the root itself passes the start check; its subtree refuses
    provider_dir.mkdir(parents=True)

    with immutable(provider_dir), pytest.raises(DaemonError, match="Operation not permitted"):
        await asyncio.wait_for(run_daemon(harvest.settings(), until_idle=True), 60)

    assert {(r.state, r.attempts) for r in await harvest.images()} == {("queued", 0)}


@pytest.mark.parametrize(
    "name",
    ["harvester.db", "a dir/h?a#r%20v%e\u00df\u00e9 \u56fe.db"],
    ids=["plain", "awkward-characters"],
)
async def test_a_deleted_sqlite_file_stops_the_daemon_with_an_error(
    name: str, tmp_path: Path, quick_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unlinked = asyncio.Event()

    def kept(url: str, **kwargs: Any) -> AsyncEngine:
        engine = create_engine(url, **kwargs)
        _reconnect_on_checkout(engine, after=unlinked)
        return engine

    monkeypatch.setattr(daemon_module, "create_engine", kept)
    database = tmp_path / name
    url = f"sqlite:///{quote(str(database))}"  # percent-escaped: '?' and '#' are URL syntax
    slow = await start_emulator(EmulatorConfig(faults=Faults(latency_ms=150)))
    try:
        submitter = create_engine(url)
        try:
            await upgrade(submitter)
            assert database.is_file(), "the test's URL names another file"
            rows = slow.world.url_list(300, base_url=slow.base_url, hostile=False)
            await _submit(submitter, tmp_path, [row["url"] for row in rows])
        finally:
            await submitter.dispose()
        daemon = asyncio.create_task(run_daemon(quick_settings(url), until_idle=True))
        while not await asyncio.to_thread(_stored_any, database):
            assert not daemon.done(), "the harvest ended before the file could be deleted"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(database.unlink)
        unlinked.set()

        with pytest.raises(DaemonError, match=r"was deleted while the daemon ran"):
            await asyncio.wait_for(daemon, timeout=60)
        assert not database.exists(), "the daemon created a database at the path it lost"
    finally:
        await slow.close()


def _reconnect_on_checkout(engine: AsyncEngine, *, after: asyncio.Event) -> None:
    """Once `after` is set, every checkout opens a new connection, as the pool does whenever
    it grows past its idle ones or drops a failed one: without mode=rw SQLite made a new,
    empty file at the path (then "no such table", and the file check found it "replaced").
    Listened for from the start: a listener added while the pool's connect event runs (it
    awaits the driver) breaks SQLAlchemy's iteration over them."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    def _opened(_dbapi_connection: Any, record: Any) -> None:
        if after.is_set():
            record.info["opened_after"] = True  # info lasts as long as the driver connection

    @event.listens_for(pool, "checkout")
    def _checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if after.is_set() and not record.info.get("opened_after"):
            raise DisconnectionError("opened before the file was deleted")  # pool reconnects


def _stored_any(database: Path) -> bool:
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as connection:
        return (
            connection.execute("SELECT 1 FROM images WHERE state = 'stored'").fetchone() is not None
        )

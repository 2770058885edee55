"""An SQLite engine creates its file on first use only: once the database exists, a
connection opened after the file was deleted fails instead of making a new, empty one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text

from harvester.db.campaigns import campaign_settings, ensure_campaign
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.errors import DatabaseUnavailable

# '?' and '#' are URI syntax, '%' its escape (a literal "%20" must not become a space).
AWKWARD = ["plain.db", "a dir/h?a#r%20v%e\u00df\u00e9 \u56fe.db"]


def _url(path: Path) -> str:
    return f"sqlite:///{quote(str(path))}"


@pytest.mark.parametrize("name", AWKWARD, ids=["plain", "awkward-characters"])
async def test_a_fresh_path_is_created_at_exactly_that_path_and_reopened(
    tmp_path: Path, name: str
) -> None:
    database = tmp_path / name
    engine = create_engine(_url(database))
    try:
        await upgrade(engine)
        campaign = await ensure_campaign(engine, "c", "urls", {})
    finally:
        await engine.dispose()
    assert [p.name for p in database.parent.iterdir()] == [database.name]
    again = create_engine(_url(database))  # an existing file: opened without creating
    try:
        assert campaign in await campaign_settings(again)
    finally:
        await again.dispose()


@pytest.mark.parametrize("name", AWKWARD, ids=["plain", "awkward-characters"])
async def test_a_connection_after_the_file_was_deleted_fails_and_creates_nothing(
    tmp_path: Path, name: str
) -> None:
    database = tmp_path / name
    engine = create_engine(_url(database))  # made before the file exists: its first
    try:  # connection creates it, and no later one may
        await upgrade(engine)
        database.unlink()
        await engine.dispose()  # the next checkout opens a new connection
        with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
            await campaign_settings(engine)
    finally:
        await engine.dispose()
        await _driver_threads_ended()
    assert not database.exists()


async def _driver_threads_ended() -> None:
    """aiosqlite stops the thread of a failed connect without waiting for it; the thread then
    answers on the loop, which pytest has closed if the test ended first (an "Event loop is
    closed" in the thread, reported on the next test)."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 10)


async def test_an_in_memory_database_still_works() -> None:
    engine = create_engine("sqlite:///:memory:")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()

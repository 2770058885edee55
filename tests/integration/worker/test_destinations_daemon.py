# ruff: noqa: RUF001 - hostile spellings of addresses are what these tests are about
"""A URL list aimed at internal addresses: every row fails at once, nothing is connected to."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon


class Listener:
    """127.0.0.2 stands for an internal service: it counts every connection."""

    connections = 0

    def accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def internal() -> AsyncIterator[tuple[Listener, int]]:
    listener = Listener()
    server = await asyncio.start_server(listener.accept, "127.0.0.2", 0)
    yield listener, server.sockets[0].getsockname()[1]
    server.close()


async def test_url_rows_for_internal_hosts_fail_at_once_as_host_not_allowed(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
    internal: tuple[Listener, int],
) -> None:
    listener, port = internal
    good = emulator.world.url_list(1, base_url=emulator.base_url, hostile=False)[0]["url"]
    urls = {
        "plain": f"http://127.0.0.2:{port}/a.jpg",
        "fullwidth": f"http://１２７．０．０．２:{port}/b.jpg",
        "circled": f"http://①②⑦.⓪.⓪.②:{port}/c.jpg",
        "mapped": f"http://[::ffff:127.0.0.2]:{port}/d.jpg",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "cgnat": "http://100.64.0.1/e.jpg",
        "good": good,
    }
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "url"])
        writer.writerows(urls.items())
    await submit_urls(sqlite_engine, UrlCampaign("internal", listing), max_attempts=MAX_ATTEMPTS)

    await run_daemon(quick_settings(sqlite_url), until_idle=True)

    async with sqlite_engine.connect() as connection:
        rows = (await connection.execute(select(Image))).all()
    by_id = {row.provider_id.split(":", 1)[1]: row for row in rows}
    assert by_id["good"].state == "stored"
    for name in set(urls) - {"good"}:
        row = by_id[name]
        assert (row.state, row.attempts) == ("failed", 1), (name, row.state, row.attempts)
        assert row.reason == "host_not_allowed", (name, row.reason, row.last_error)
    assert listener.connections == 0

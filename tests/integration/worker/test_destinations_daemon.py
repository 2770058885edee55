# ruff: noqa: RUF001 - hostile spellings of addresses are what these tests are about
"""A URL list aimed at internal addresses: every row fails at once, nothing is connected to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from worker_harness import Harvest

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
    harvest: Harvest, internal: tuple[Listener, int]
) -> None:
    listener, port = internal
    good = harvest.rows(1)[0]["url"]
    urls = {
        "plain": f"http://127.0.0.2:{port}/a.jpg",
        "fullwidth": f"http://１２７．０．０．２:{port}/b.jpg",
        "circled": f"http://①②⑦.⓪.⓪.②:{port}/c.jpg",
        "mapped": f"http://[::ffff:127.0.0.2]:{port}/d.jpg",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "cgnat": "http://100.64.0.1/e.jpg",
        "good": good,
    }
    await harvest.submit([{"id": name, "url": url} for name, url in urls.items()], "internal")

    await run_daemon(harvest.settings(), until_idle=True)

    by_id = {row.provider_id.split(":", 1)[1]: row for row in await harvest.images()}
    assert by_id["good"].state == "stored"
    for name in set(urls) - {"good"}:
        row = by_id[name]
        assert (row.state, row.attempts) == ("failed", 1), (name, row.state, row.attempts)
        assert row.reason == "host_not_allowed", (name, row.reason, row.last_error)
    assert listener.connections == 0

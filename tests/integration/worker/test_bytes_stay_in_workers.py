"""The unit of scale is a worker process that fetches, processes and writes its own images:
the coordinating daemon sees rows and outcomes, never an image's bytes."""

from __future__ import annotations

import csv
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from defaults import MAX_ATTEMPTS
from local_server import serving
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator.images import ImageRecipe, render
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon


def _client_socket_is_ours(client_port: int) -> bool:
    """Whether this process holds the loopback connection whose client end is on the port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    assert inodes, f"no connection from port {client_port}"
    return bool(inodes & ours)


@pytest.fixture
async def photo_server() -> AsyncIterator[tuple[str, list[bool]]]:
    """Serves JPEGs; notes, per request, whether this process made the connection."""
    fetched_here: list[bool] = []
    photo = render(ImageRecipe(seed=3, width=1600, height=1200))

    async def serve(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        assert peer is not None
        fetched_here.append(_client_socket_is_ours(peer[1]))
        return web.Response(
            body=photo + request.match_info["n"].encode(), content_type="image/jpeg"
        )

    app = web.Application()
    app.router.add_get("/p/{n}.jpg", serve)
    async with serving(app) as base_url:
        yield base_url, fetched_here


async def test_image_bytes_never_reach_the_coordinating_process(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    photo_server: tuple[str, list[bool]],
    quick_settings: Any,
):
    base_url, fetched_here = photo_server
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "id"])
        writer.writerows([f"{base_url}/p/{n}.jpg", f"p{n}"] for n in range(12))
    await submit_urls(sqlite_engine, UrlCampaign("bytes", listing), max_attempts=MAX_ATTEMPTS)

    await run_daemon(quick_settings(sqlite_url), until_idle=True)

    async with sqlite_engine.connect() as connection:
        images = (await connection.execute(select(Image))).all()
    assert [r.state for r in images] == ["stored"] * 12
    assert len(fetched_here) == 12 and not any(fetched_here), fetched_here

"""An emulator whose API is on one loopback port and whose CDN is on another, as mirrors and
emulators are deployed: the daemon stores its images with nothing in HARVESTER_ALLOW_NETWORKS,
whether the two ports are named 127.0.0.1 or localhost."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from defaults import MAX_ATTEMPTS
from local_server import serving
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import EmulatorConfig, RunningEmulator, start_emulator
from harvester.sources.flickr import FlickrCampaign, submit_flickr
from harvester.sources.mapillary import MapillaryCampaign, submit_mapillary
from harvester.worker.daemon import run_daemon

KEY = "flickr-two-ports-key-0123456789"
TOKEN = "MLY|4343|two-ports-token-0123456789abcdef"


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(
        EmulatorConfig(flickr_keys=frozenset({KEY}), mapillary_tokens=frozenset({TOKEN}))
    )
    yield running
    await running.close()


class ApiPort:
    """The emulator's API on a port of its own: a proxy telling the emulator it was asked
    on `cdn` (host:port), which is where the emulator then points its image URLs."""

    def __init__(self, emu: RunningEmulator, cdn: str) -> None:
        self.emu, self.cdn = emu, cdn
        self.paths: Counter[str] = Counter()

    async def forward(self, request: web.Request) -> web.Response:
        self.paths[request.path.split("/")[1]] += 1
        url = yarl.URL(self.emu.base_url).with_path(request.path).with_query(request.query)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={**request.headers, "Host": self.cdn}) as answer,
        ):
            body = await answer.read()
            return web.Response(body=body, status=answer.status, content_type=answer.content_type)


async def _harvest(
    emu: RunningEmulator, engine: AsyncEngine, cdn_name: str, settings: Callable[[str], Any]
) -> tuple[ApiPort, list[Any]]:
    """Runs the daemon with `settings(api_base)`, the emulator's images named `cdn_name`."""
    api = ApiPort(emu, f"{cdn_name}:{yarl.URL(emu.base_url).port}")
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.forward)
    async with serving(app) as base:
        await run_daemon(settings(base), until_idle=True)
    async with engine.connect() as connection:
        return api, list((await connection.execute(select(Image))).all())


@pytest.mark.parametrize("cdn_name", ["127.0.0.1", "localhost"])
async def test_flickr_images_on_the_api_hosts_other_port_are_stored(
    emu: RunningEmulator,
    sqlite_engine: AsyncEngine,
    sqlite_url: str,
    quick_settings: Any,
    cdn_name: str,
) -> None:
    campaign = FlickrCampaign(
        "two ports", ("glacier",), min_upload=date(2023, 7, 1), max_upload=date(2023, 8, 31)
    )
    await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
    api, images = await _harvest(
        emu,
        sqlite_engine,
        cdn_name,
        lambda base: quick_settings(
            sqlite_url,
            allow_networks=[],
            flickr_api_url=f"{base}/services/rest/",
            flickr_api_key=KEY,
        ),
    )
    stored = [r for r in images if r.state == "stored"]
    assert len(stored) > 10
    assert [(r.reason, r.last_error) for r in images if r.state == "failed"] == []
    assert {yarl.URL(r.source_url).host for r in stored} == {cdn_name}
    assert {yarl.URL(r.source_url).port for r in stored} == {yarl.URL(emu.base_url).port}
    assert set(api.paths) == {"services"}  # no image came through the API's port


async def test_mapillary_images_on_the_api_hosts_other_port_are_stored(
    emu: RunningEmulator,
    sqlite_engine: AsyncEngine,
    sqlite_url: str,
    tmp_path: Path,
    quick_settings: Any,
) -> None:
    """The API URL names localhost, the image URLs 127.0.0.1."""
    world = emu.world
    listed = world.mapillary_sequence(world.mapillary_sequence_pairs()[2][1])[:4]
    seq_csv = tmp_path / "seq.csv"
    seq_csv.write_text("".join(f"{im.sequence},{im.id},{im.lat},{im.lon}\n" for im in listed))
    await submit_mapillary(
        sqlite_engine,
        MapillaryCampaign("two ports", sequence_csv=seq_csv),
        max_attempts=MAX_ATTEMPTS,
    )
    api, images = await _harvest(
        emu,
        sqlite_engine,
        "127.0.0.1",
        lambda base: quick_settings(
            sqlite_url,
            allow_networks=[],
            mapillary_api_url=f"{base.replace('127.0.0.1', 'localhost')}/mapillary",
            mapillary_token=TOKEN,
        ),
    )
    assert [(r.state, r.reason, r.last_error) for r in images] == [("stored", None, None)] * 4
    assert {yarl.URL(r.source_url).host for r in images} == {"127.0.0.1"}
    assert {yarl.URL(r.source_url).port for r in images} == {yarl.URL(emu.base_url).port}
    assert set(api.paths) == {"mapillary"}

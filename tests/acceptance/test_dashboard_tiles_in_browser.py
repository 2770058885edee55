"""The dashboard's coverage map in a browser: over map tiles when the tile server can be
reached (each point on the tile that holds it), plain points when it cannot."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from browser import look_at
from defaults import MAX_ATTEMPTS
from PIL import Image as PILImage
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.web.dashboard import add_dashboard_routes

POINTS = [(50.8503, 4.3517), (50.8551, 4.3601), (50.8420, 4.3700)]  # Brussels
MAP = (
    "(() => { const svg = document.querySelector(\"svg[aria-label='stored images on a map']\");"
    " return {dots: svg.querySelectorAll('circle').length,"
    " tiles: [...svg.querySelectorAll('image')].map(i => i.getAttribute('href')),"
    " text: document.body.innerText}; })()"
)


def _tile_png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (256, 256), (200, 220, 200)).save(out, "PNG")
    return out.getvalue()


def _tile_of(lat: float, lon: float, zoom: int) -> str:
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return f"/{zoom}/{x}/{y}.png"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def stored(sqlite_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    listing = tmp_path / "list.csv"
    rows = [f"http://127.0.0.1:9/{i}.jpg,{i},{lat},{lon}" for i, (lat, lon) in enumerate(POINTS)]
    listing.write_text("url,id,lat,lon\n" + "\n".join(rows) + "\n")
    await submit_urls(sqlite_engine, UrlCampaign("brussels", listing), max_attempts=MAX_ATTEMPTS)
    async with sqlite_engine.begin() as connection:
        await connection.execute(update(Image).values(state="stored"))
    yield sqlite_engine


async def _dashboard(engine: AsyncEngine, tiles: str) -> tuple[web.AppRunner, str]:
    app = web.Application()
    add_dashboard_routes(app, engine, 120.0, tiles=tiles)
    return await _serve(app)


async def test_points_lie_on_the_tiles_a_reachable_tile_server_serves(stored: AsyncEngine):
    asked: list[str] = []
    png = _tile_png()

    async def tile(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=png, content_type="image/png")

    tile_app = web.Application()
    tile_app.router.add_get("/{z}/{x}/{y}.png", tile)
    tile_runner, tile_base = await _serve(tile_app)
    runner, base = await _dashboard(stored, tile_base + "/{z}/{x}/{y}.png")
    try:
        seen = await look_at(base + "/", MAP)
    finally:
        await runner.cleanup()
        await tile_runner.cleanup()
    assert seen["dots"] == len(POINTS)
    drawn = sorted(href.removeprefix(tile_base) for href in seen["tiles"])
    assert drawn and sorted(asked) == drawn  # the browser fetched every tile drawn, once
    zoom = int(drawn[0].split("/")[1])
    assert zoom >= 12  # a neighbourhood, not the world
    assert {_tile_of(lat, lon, zoom) for lat, lon in POINTS} <= set(drawn)
    assert "OpenStreetMap contributors" in seen["text"]


async def test_an_unreachable_tile_server_leaves_the_plain_points(stored: AsyncEngine):
    closed = web.Application()
    runner_closed, gone = await _serve(closed)
    await runner_closed.cleanup()  # its port now refuses connections, like an offline browser
    runner, base = await _dashboard(stored, gone + "/{z}/{x}/{y}.png")
    try:
        seen = await look_at(base + "/", MAP)
    finally:
        await runner.cleanup()
    assert seen["dots"] == len(POINTS) and seen["tiles"]
    assert "brussels" in seen["text"]

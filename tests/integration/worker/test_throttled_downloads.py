"""A CDN that throttles (429 with a long Retry-After) defers an image, never fails it: a
throttled try is the server asking for time, not one of the row's max_attempts."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from local_server import serving
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import RunningEmulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

THROTTLES = 4  # more than max_attempts: before, the third 429 failed the image


async def test_a_cdn_throttling_past_max_attempts_defers_the_image_until_it_is_stored(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
) -> None:
    listed = emulator.world.url_list(12, base_url=emulator.base_url, hostile=False)
    rows = [r for r in listed if r["expected"] == "stored"][:2]
    asked: Counter[str] = Counter()

    async def cdn(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asked[name] += 1
        if asked[name] <= THROTTLES:
            return web.Response(status=429, headers={"Retry-After": "120"})
        raise web.HTTPFound(next(r["url"] for r in rows if r["id"] == name))

    app = web.Application()
    app.router.add_get("/throttled/{name}", cdn)
    async with serving(app) as base:
        listing = tmp_path / "list.csv"
        with listing.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["url", "id"])
            writer.writeheader()
            writer.writerows({"url": f"{base}/throttled/{r['id']}", "id": r["id"]} for r in rows)
        await submit_urls(sqlite_engine, UrlCampaign("throttled", listing), max_attempts=3)
        # Retry-After capped to milliseconds: the queue's wait, not the test's, is the point.
        settings = quick_settings(sqlite_url, max_attempts=3, max_retry_after_seconds=0.01)
        await run_daemon(settings, until_idle=True)

    async with sqlite_engine.connect() as connection:
        images = (await connection.execute(select(Image))).all()
    assert [(i.state, i.reason) for i in images] == [("stored", None)] * len(rows)
    assert all(i.throttles == THROTTLES and i.attempts == 1 for i in images)
    assert set(asked.values()) == {THROTTLES + 1}

"""`harvester status` counts near-duplicates (bursts, re-uploads: same scene, other bytes)
among a campaign's newest stored images, harvested from real JPEGs."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from defaults import MAX_ATTEMPTS
from PIL import Image

from harvester import status
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a dev dependency")


def _jpeg(picture: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _photos() -> dict[str, bytes]:
    """Three distinct photos, two re-encoded, resized or cropped copies of one, one of
    another: two groups, three images made redundant by another of their group."""
    astronaut, coffee, chelsea = (
        Image.fromarray(np.asarray(getattr(skimage_data, n)())).convert("RGB")
        for n in ("astronaut", "coffee", "chelsea")
    )
    w, h = coffee.size
    return {
        "astronaut": _jpeg(astronaut),
        "astronaut-q40": _jpeg(astronaut, 40),
        "astronaut-smaller": _jpeg(astronaut.resize((460, 460), Image.Resampling.LANCZOS)),
        "coffee": _jpeg(coffee),
        "coffee-cropped": _jpeg(coffee.crop((w // 50, h // 50, w - w // 50, h - h // 50)), 80),
        "chelsea": _jpeg(chelsea),
    }


@pytest.fixture
async def photo_server() -> AsyncIterator[tuple[str, list[str]]]:
    photos = _photos()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=photos[request.match_info["name"]], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", list(photos)
    await runner.cleanup()


async def test_status_counts_near_duplicates_of_stored_photos(
    sqlite_url: str, tmp_path: Path, quick_settings: Any, photo_server, monkeypatch
):
    base, names = photo_server
    listing = tmp_path / "photos.csv"
    with listing.open("w", newline="") as handle:
        csv.writer(handle).writerows([("id", "url"), *((n, f"{base}/{n}") for n in names)])
    engine = create_engine(sqlite_url)
    await upgrade(engine)
    await submit_urls(
        engine, UrlCampaign("bursts", listing, min_side=200), max_attempts=MAX_ATTEMPTS
    )
    await engine.dispose()
    await run_daemon(quick_settings(sqlite_url), until_idle=True)

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "harvester.cli", "--database-url", sqlite_url, "status", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    (report,) = json.loads(done.stdout)["campaigns"]
    assert report["images"] == {"stored": 6}
    assert (report["near_duplicates"], report["near_groups"], report["near_checked"]) == (3, 2, 6)
    assert "near-dup 3 redundant in 2 groups (<= 10 bits)" in await _table(sqlite_url)

    # A bounded look: only the newest images are grouped, and the line says so.
    monkeypatch.setattr(status, "NEAR_WINDOW", 3)
    assert "near-dup 1 redundant in 1 groups (<= 10 bits; newest 3)" in await _table(sqlite_url)


async def _table(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        reports = await status.collect(engine)
    finally:
        await engine.dispose()
    out = io.StringIO()
    status.render_table(reports, out)
    return out.getvalue()

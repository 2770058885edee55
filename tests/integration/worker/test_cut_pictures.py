"""A picture cut short: tried again when nothing but the connection's close ended its body
(a dropped connection ends it the same way), failed for good when all the bytes its
Content-Length promised came (the file itself is cut)."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from local_server import answering
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator.images import ImageRecipe, render
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

JPEG = render(ImageRecipe(3, 1280, 960))
HALF = JPEG[: len(JPEG) // 2]


class CuttingCdn:
    """/closed/...: the picture with no length, HTTP/1.0-style, cut in half on the first
    request and whole after. /declared/...: its first half under a Content-Length true to
    it, on every request."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def answer(self, path: str) -> bytes:
        self.seen[path] += 1
        head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
        if path.startswith("/declared/"):
            return f"{head}Content-Length: {len(HALF)}\r\n\r\n".encode() + HALF
        return f"{head}\r\n".encode() + (HALF if self.seen[path] == 1 else JPEG)


async def test_a_picture_cut_as_its_connection_closes_is_retried_one_cut_under_its_length_is_not(
    sqlite_url: str, sqlite_engine: AsyncEngine, tmp_path: Path, quick_settings: Any
) -> None:
    cdn = CuttingCdn()
    settings = quick_settings(sqlite_url)
    async with answering(cdn.answer) as base:
        listing = tmp_path / "list.csv"
        with listing.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "url"])
            writer.writerow(["closed", f"{base}/closed/a.jpg"])
            writer.writerow(["declared", f"{base}/declared/b.jpg"])
        campaign = UrlCampaign("cut", listing)
        await submit_urls(sqlite_engine, campaign, max_attempts=settings.max_attempts)
        await run_daemon(settings, until_idle=True)
    async with sqlite_engine.connect() as connection:
        rows = (await connection.execute(select(Image))).all()
    by_id = {row.provider_id.split(":", 1)[1]: row for row in rows}
    closed, declared = by_id["closed"], by_id["declared"]
    assert (closed.state, closed.attempts) == ("stored", 2), (closed.state, closed.last_error)
    assert closed.source_sha256 == hashlib.sha256(JPEG).hexdigest()
    assert (declared.state, declared.attempts) == ("failed", 1), declared.last_error
    assert (declared.reason, declared.retryable) == ("truncated", False)
    assert cdn.seen == {"/closed/a.jpg": 2, "/declared/b.jpg": 1}

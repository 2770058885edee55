"""Through the daemon, a photo with junk before its end marker (libjpeg: "extraneous bytes
before marker 0xd9") is stored with the pixels of the same photo without it; junk between its
header segments hides no cut in its scans, which still fails as truncated, for good."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from local_server import answering
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image as ImageRow
from harvester.emulator.images import ImageRecipe, render
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.daemon import run_daemon

EOI = b"\xff\xd9"
WHOLE = render(ImageRecipe(5, 1280, 960))
JUNK_IN_HEADER = WHOLE.replace(b"\xff\xdb", b"junk\xff\xdb", 1)  # before its first DQT
BODIES = {
    "whole": WHOLE,
    "junk": WHOLE[:-2] + b"\x00" * 40 + EOI,
    "cut": JUNK_IN_HEADER[: len(JUNK_IN_HEADER) * 2 // 3] + EOI,
}


def _answer(path: str) -> bytes:
    body = BODIES[path.strip("/").removesuffix(".jpg")]
    head = f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n"
    return f"{head}Connection: close\r\n\r\n".encode() + body


def _pixels(path: Path) -> bytes:
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        return im.convert("RGB").tobytes()


async def test_junk_before_the_end_marker_is_stored_as_the_photo_a_cut_behind_junk_is_not(
    sqlite_url: str, sqlite_engine: AsyncEngine, tmp_path: Path, quick_settings: Any
) -> None:
    settings = quick_settings(sqlite_url)
    async with answering(_answer) as base:
        listing = tmp_path / "list.csv"
        with listing.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "url"])
            writer.writerows([name, f"{base}/{name}.jpg"] for name in BODIES)
        await submit_urls(sqlite_engine, UrlCampaign("junk", listing), max_attempts=3)
        await run_daemon(settings, until_idle=True)
    async with sqlite_engine.connect() as connection:
        rows = (await connection.execute(select(ImageRow))).all()
    by_id = {row.provider_id.split(":", 1)[1]: row for row in rows}
    for name in ("whole", "junk"):
        assert by_id[name].state == "stored", (name, by_id[name].last_error)
    root = settings.storage_root
    assert _pixels(root / by_id["junk"].path) == _pixels(root / by_id["whole"].path)
    cut = by_id["cut"]
    assert (cut.state, cut.reason, cut.retryable, cut.attempts) == ("failed", "truncated", False, 1)

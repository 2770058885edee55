"""A Flickr campaign end to end through the daemon: windows, downloads, files on disk."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from defaults import MAX_ATTEMPTS
from PIL import ExifTags
from PIL import Image as PILImage
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.catalog import upsert_licenses
from harvester.db.exports import campaign_ids, stored_images
from harvester.db.models import Image, ImageHit, Task, TaskState
from harvester.emulator import (
    EmulatorConfig,
    Faults,
    RunningEmulator,
    Warts,
    WorldSize,
    start_emulator,
)
from harvester.emulator.flickr_api import LICENSES
from harvester.sources.flickr import LICENSES_KIND, FlickrCampaign, submit_flickr
from harvester.storage.layout import relative_path
from harvester.worker.daemon import run_daemon

KEY = "flickr-e2e-key-0123456789"
RATE = 20.0
QUERIES = ("glacier", "waterfall")


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    # Some API answers are 429 with Retry-After: 1, on top of the per-key rate enforcement.
    faults = Faults(rate_429=0.2, retry_after_s=1.0, scope=frozenset({"api"}))
    # No GIF or hidden originals: which photos are too small follows from has_large and the
    # original's size alone (test_flickr_sizes covers the Medium fallbacks).
    plain = WorldSize(flickr_gif_share=0, flickr_hidden_original_share=0)
    running = await start_emulator(
        EmulatorConfig(
            flickr_keys=frozenset({KEY}), flickr_rate_per_s=RATE, faults=faults, world=plain
        )
    )
    yield running
    await running.close()


@pytest.fixture
def engine(sqlite_engine: AsyncEngine) -> AsyncEngine:
    """The daemon is the subject here, not the database: SQLite only."""
    return sqlite_engine


async def test_a_flickr_campaign_through_the_daemon_stores_each_photo_once(
    emu: RunningEmulator,
    engine: AsyncEngine,
    sqlite_url: str,
    tmp_path: Path,
    quick_settings: Any,
) -> None:
    root = tmp_path / "data"
    settings = quick_settings(
        sqlite_url,
        flickr_api_url=emu.flickr_api_url,
        flickr_api_key=KEY,
        flickr_rate_per_hour=RATE * 3600,
        flickr_burst=1,
    )
    campaign = FlickrCampaign(
        "rivers of ice",
        QUERIES,
        ("paris",),
        min_upload=date(2023, 7, 1),
        max_upload=date(2023, 12, 31),
    )
    await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
    await run_daemon(settings, until_idle=True)

    start, end = calendar.timegm((2023, 7, 1, 0, 0, 0)), calendar.timegm((2024, 1, 1, 0, 0, 0))
    want: dict[str, Any] = {
        p.id: p
        for q in QUERIES
        for p in emu.world.flickr_search_truth(
            text=q, accuracy=6, min_upload=start, max_upload=end - 1
        )
        if "paris" not in p.tokens
    }
    async with engine.connect() as db:
        images = (await db.execute(select(Image))).all()
        hit_queries = {q for (q,) in (await db.execute(select(ImageHit.query))).all()}
        task_states = set((await db.execute(select(Task.state))).scalars())
    assert task_states == {"done"} and hit_queries == set(QUERIES)
    assert sorted(r.provider_id for r in images) == sorted(want)
    small = {pid for pid, p in want.items() if not p.has_large and min(p.o_width, p.o_height) < 500}
    paths = [relative_path(r.provider, r.group_name, r.shard, r.file_name) for r in images]
    assert len(paths) == len(set(paths))
    for row in images:
        assert row.state in ("stored", "skipped"), (row.provider_id, row.state, row.last_error)
        assert (row.path is not None) == (row.state == "stored"), row.provider_id
        path = root / relative_path(row.provider, row.group_name, row.shard, row.file_name)
        assert path.parts[-4:-1] == ("flickr", row.group_name, f"{row.shard:05d}")
        if row.provider_id in small:
            assert row.state == "skipped" and "below the minimum" in row.skip_reason
        if row.state == "skipped":
            assert row.skip_reason and not path.exists()
            continue
        assert path.name == f"{row.provider_id}_{row.raw['secret']}_{row.raw['server']}_" + (
            f"{row.owner}.jpg"
        )
        with PILImage.open(path) as picture:
            assert picture.format == "JPEG" and max(picture.size) <= 1024
    assert sum(r.state == "stored" for r in images) > len(images) // 2
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.base_url + "/_emulator/stats") as resp,
    ):
        stats = await resp.json()
    (label,) = [k for k in stats["keys"] if k != "anonymous"]
    # The 429s were ridden out (every task done above) and the key's rate held.
    assert stats["keys"][label]["status_429"] > 0
    assert stats["keys"][label]["max_1s"] <= RATE + 1


async def test_deleted_photos_are_skipped_unavailable_and_no_placeholder_is_stored(
    engine: AsyncEngine, sqlite_url: str, tmp_path: Path, quick_settings: Any
) -> None:
    emu = await start_emulator(
        EmulatorConfig(flickr_keys=frozenset({KEY}), warts=Warts(deleted_share=0.2))
    )
    try:
        settings = quick_settings(sqlite_url, flickr_api_url=emu.flickr_api_url, flickr_api_key=KEY)
        campaign = FlickrCampaign(
            "gone", ("glacier",), min_upload=date(2023, 1, 1), max_upload=date(2023, 12, 31)
        )
        await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        await run_daemon(settings, until_idle=True)
    finally:
        await emu.close()
    async with engine.connect() as db:
        images = (await db.execute(select(Image))).all()
    deleted = {r.provider_id for r in images if emu.state.deletions.flickr(r.provider_id)}
    assert len(deleted) >= 3
    for row in images:
        if row.provider_id in deleted and row.reason != "too_small":  # too small: not fetched
            assert (row.state, row.reason) == ("skipped", "unavailable"), row.provider_id
            planned = relative_path(row.provider, row.group_name, row.shard, row.file_name)
            assert row.path is None and not (tmp_path / "data" / planned).exists()
        assert row.reason != "duplicate" and row.duplicate_of is None
    stored = [r for r in images if r.state == "stored"]
    assert stored and not deleted & {r.provider_id for r in stored}
    assert len({r.source_sha256 for r in stored}) == len(stored)
    for row in stored[:5]:  # datetaken has no zone: none is claimed, in the row or the file
        assert row.captured_at is None
        with PILImage.open(tmp_path / "data" / row.path) as picture:
            exif = picture.getexif().get_ifd(ExifTags.IFD.Exif)
        taken = row.raw["datetaken"].replace("-", ":")
        assert exif[ExifTags.Base.DateTimeOriginal] == taken
        assert ExifTags.Base.OffsetTimeOriginal not in exif


async def test_photos_stored_while_getinfo_has_failed_carry_flickrs_licence_names_not_ids(
    engine: AsyncEngine, sqlite_url: str, tmp_path: Path, quick_settings: Any
) -> None:
    """The EXIF is written once: a photo stored with no licences row for its id (getInfo
    failed, Flickr down) is credited by Flickr's name and link for it, not its bare id; a
    row there (Flickr's older wording of id 4) wins. Exports read them the same way."""
    emu = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY})))
    try:
        settings = quick_settings(sqlite_url, flickr_api_url=emu.flickr_api_url, flickr_api_key=KEY)
        campaign = FlickrCampaign(
            "no getinfo", ("glacier",), min_upload=date(2023, 1, 1), max_upload=date(2023, 12, 31)
        )
        await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        async with engine.begin() as db:
            await db.execute(
                update(Task)
                .where(Task.kind == LICENSES_KIND)
                .values(state=TaskState.FAILED, last_error="Flickr error 105: Service unavailable")
            )
        older = ("Attribution License", "https://creativecommons.org/licenses/by/2.0/")
        await upsert_licenses(engine, "flickr", [("4", *older)])
        await run_daemon(settings, until_idle=True)
    finally:
        await emu.close()
    credited = {str(i): (name, url) for i, name, url in LICENSES} | {"4": older}
    async with engine.connect() as db:
        stored = (await db.execute(select(Image).where(Image.state == "stored"))).all()
    assert {"0", "4", "11"} <= {r.license_id for r in stored}, "the world has these among them"
    for row in stored:
        with PILImage.open(tmp_path / "data" / row.path) as picture:
            copyright_text = picture.getexif()[ExifTags.Base.Copyright]
        name, url = credited[row.license_id]
        assert copyright_text == f"{name} ({url})", row.license_id
    (campaign_id,) = (await campaign_ids(engine, ["no getinfo"])).values()
    exported = {
        i.record["license_id"]: i.licence for i in await stored_images(engine, [campaign_id])
    }
    assert exported == {i: credited[i] for i in exported}

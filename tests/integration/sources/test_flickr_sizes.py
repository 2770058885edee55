"""Flickr's mixed photos through the daemon: coarse capture dates, GIF and hidden originals.

The emulator is started with each trait on for many photos; the harvest is then checked
against what the emulator's world says of each photo, row by row and file by file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from PIL import ExifTags
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import (
    EmulatorConfig,
    FlickrPhoto,
    RunningEmulator,
    Warts,
    WorldSize,
    start_emulator,
)
from harvester.emulator.flickr_api import taken_text
from harvester.sources.flickr import FlickrCampaign, submit_flickr
from harvester.sources.flickr_parse import SIZE_NOTE
from harvester.worker.daemon import run_daemon

KEY = "flickr-sizes-key-0123456789"


Settings = Callable[[RunningEmulator], Any]
# Uploads from 2011 into 2013: Medium 800 exists only for those since March 2012.
STREETS = (("street", "beach"), date(2011, 6, 1), date(2013, 6, 30))


def only(
    granularity: tuple[float, float, float] = (0, 0, 0), gif: float = 0, hidden: float = 0
) -> WorldSize:
    """A world with just these photo traits (the others off)."""
    return WorldSize(
        flickr_taken_granularity=granularity,
        flickr_gif_share=gif,
        flickr_hidden_original_share=hidden,
    )


@pytest.fixture
def settings_for(quick_settings: Any, sqlite_url: str) -> Settings:
    def make(emu: RunningEmulator) -> Any:
        return quick_settings(sqlite_url, flickr_api_url=emu.flickr_api_url, flickr_api_key=KEY)

    return make


async def harvest(
    world: WorldSize,
    engine: AsyncEngine,
    settings_for: Settings,
    queries: Sequence[str],
    since: date,
    until: date,
    *,
    warts: Warts | None = None,
    max_side: int = 1024,
) -> list[tuple[Any, FlickrPhoto]]:
    """Run a keyword campaign against an emulator with this world to the end; each row with
    the world's photo behind it."""
    config = EmulatorConfig(flickr_keys=frozenset({KEY}), world=world, warts=warts or Warts())
    emu = await start_emulator(config)
    try:
        campaign = FlickrCampaign(
            "mixed", tuple(queries), min_upload=since, max_upload=until, max_side=max_side
        )
        await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        await run_daemon(settings_for(emu), until_idle=True)
    finally:
        await emu.close()
    async with engine.connect() as db:
        rows = (await db.execute(select(Image))).all()
    assert rows
    return [(row, emu.world.flickr_by_id[row.provider_id]) for row in rows]


def _exif_taken(path: Path) -> str | None:
    with PILImage.open(path) as picture:
        exif = picture.getexif().get_ifd(ExifTags.IFD.Exif)
    value = exif.get(ExifTags.Base.DateTimeOriginal)
    return None if value is None else str(value)


async def test_capture_dates_are_kept_to_the_precision_flickr_vouches_for(
    sqlite_engine: AsyncEngine, tmp_path: Path, settings_for: Settings
) -> None:
    world = only(granularity=(0.25, 0.25, 0.25))
    queries = ("castle", "lighthouse")
    rows = await harvest(
        world, sqlite_engine, settings_for, queries, date(2023, 7, 1), date(2023, 12, 31)
    )
    seen = {p.taken_granularity for _, p in rows}
    assert seen == {0, 4, 6, 8}, seen
    stored = 0
    for row, photo in rows:
        text = taken_text(photo)
        # To the second, the month, the year; "circa" is a guess no column claims, and an
        # unknown date (Flickr puts the upload time in datetaken) is none at all.
        want = {
            0: text.replace(" ", "T"),
            4: text[:7],
            6: text[:4],
            8: None,
        }[photo.taken_granularity]
        if photo.taken_unknown:
            want = None
        assert row.captured_local == want, (row.provider_id, photo.taken_granularity, text)
        assert row.captured_at is None  # datetaken has no zone
        if row.state != "stored":
            continue
        stored += 1
        exif = _exif_taken(tmp_path / "data" / row.path)
        # Only a time known to the second goes into the file's EXIF DateTimeOriginal.
        assert exif == (text.replace("-", ":") if want and len(want) == 19 else None)
    assert stored >= 20


async def test_a_gif_original_is_stored_from_its_biggest_medium_never_fetched(
    sqlite_engine: AsyncEngine, tmp_path: Path, settings_for: Settings
) -> None:
    world = only(gif=0.6)
    rows = await harvest(world, sqlite_engine, settings_for, *STREETS)
    gifs = [(r, p) for r, p in rows if p.originalformat == "gif" and not p.has_large]
    by_size = {s: [r for r, p in gifs if s in p.sizes() and min(p.sizes()[s]) >= 500] for s in "cz"}
    assert len(by_size["c"]) >= 3 and any(
        "c" not in p.sizes() and "z" in p.sizes() for _, p in gifs
    )
    gif_only = 0
    for row, photo in gifs:
        sizes = photo.sizes()
        medium = "c" if "c" in sizes else "z" if "z" in sizes else None
        if medium is None:
            # Only the GIF itself is big enough: refused before any download, not failed after.
            short = min(photo.o_width, photo.o_height)
            want = "too_small" if short < 500 else "not_an_image"
            assert (row.state, row.reason, row.path) == ("skipped", want, None), row.provider_id
            gif_only += short >= 500
            continue
        assert row.source_url.endswith(f"_{photo.secret}_{medium}.jpg"), row.provider_id
        assert "GIF" in row.raw[SIZE_NOTE]
        if min(sizes[medium]) < 500:
            assert (row.state, row.reason) == ("skipped", "too_small"), row.provider_id
            continue
        assert row.state == "stored", (row.provider_id, row.state, row.last_error)
        with PILImage.open(tmp_path / "data" / row.path) as picture:
            assert picture.format == "JPEG"
            if not photo.frames:  # a Medium at most 1024 px is stored at its own size
                assert picture.size == sizes[medium]
    # A GIF with a Large is taken at its Large, a JPEG; none is ever failed for its format.
    assert all(
        r.source_url.endswith("_b.jpg")
        for r, p in rows
        if p.originalformat == "gif" and p.has_large
    )
    assert gif_only >= 1 and not [r.provider_id for r, _ in rows if r.state == "failed"]


async def test_a_hidden_original_without_a_large_is_stored_from_a_medium(
    sqlite_engine: AsyncEngine, tmp_path: Path, settings_for: Settings
) -> None:
    world = only(hidden=1.0)
    rows = await harvest(world, sqlite_engine, settings_for, *STREETS)
    hidden = [(r, p) for r, p in rows if not p.original_public and not p.has_large]
    assert len(hidden) >= 10
    for row, photo in hidden:
        sizes = photo.sizes()
        medium = "c" if "c" in sizes else "z" if "z" in sizes else None
        if medium is None:
            # Nothing of Medium 640 or more: the photo exists, it is only small.
            assert row.state == "skipped" and row.reason != "unavailable", row.provider_id
            continue
        assert row.source_url.endswith(f"_{medium}.jpg"), row.provider_id
        short = min(sizes[medium])
        assert row.state == ("stored" if short >= 500 else "skipped"), row.provider_id
    assert any(r.state == "stored" for r, _ in hidden)


@pytest.mark.parametrize("free_share", [0.0, 1.0])
async def test_a_free_accounts_photo_refused_over_1024_px_is_stored_from_its_large(
    sqlite_engine: AsyncEngine, settings_for: Settings, free_share: float
) -> None:
    """Since May 2025 Flickr's CDN refuses others the sizes over 1024 px of a free account's
    photos: a campaign asking for 2048 px stores those from Large (1024) instead of failing
    them as `forbidden`; with no free account it stores them at 2048 px as before."""
    warts = Warts(flickr_free_account_share=free_share)
    found = await harvest(only(), sqlite_engine, settings_for, *STREETS, warts=warts, max_side=2048)
    rows = [row for row, _ in found]
    photos = {photo.id: photo for _, photo in found}
    big = [r for r in rows if max(photos[r.provider_id].dims_at(2048)) > 1024]
    assert len(big) >= 10 and not [r for r in rows if r.reason == "forbidden"]
    for row in big:
        assert row.state == "stored", (row.provider_id, row.reason)
    # Frames cut off make some smaller still; none is bigger than Large where refused.
    longest = [max(row.width, row.height) for row in big]
    assert max(longest) <= 1024 if free_share else sum(side > 1024 for side in longest) > 5

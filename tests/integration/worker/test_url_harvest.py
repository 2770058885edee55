"""A URL-list harvest end to end: real HTTP to the emulator's CDN, real JPEGs, real files."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from PIL import ExifTags
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.emulator import EmulatorConfig, RunningEmulator, Warts, start_emulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.storage.layout import relative_path, unique_slug
from harvester.storage.local import TEMP_MARK
from harvester.worker.daemon import run_daemon


def _write_list(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _gps(path: Path) -> tuple[float, float]:
    with PILImage.open(path) as image:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)

    def degrees(values: tuple[float, ...], ref: str) -> float:
        value = float(values[0]) + float(values[1]) / 60 + float(values[2]) / 3600
        return -value if ref in ("S", "W") else value

    return degrees(gps[2], gps[1]), degrees(gps[4], gps[3])


async def test_url_list_harvest_stores_every_good_image_once_with_its_record(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
):
    rows = emulator.world.url_list(40, base_url=emulator.base_url)
    rows.append({**rows[0], "id": "", "url": "ftp://nowhere/x.jpg"})  # a bad line
    listing = tmp_path / "list.csv"
    _write_list(listing, rows)
    root = tmp_path / "data"
    settings = quick_settings(database_url)
    report = await submit_urls(
        engine, UrlCampaign("street views", listing), max_attempts=MAX_ATTEMPTS
    )
    assert (report.images_added, len(report.problems)) == (40, 1)
    assert "list.csv:42: not an http(s) URL" in report.problems[0]

    counters = await run_daemon(settings, until_idle=True)

    async with engine.connect() as connection:
        images = (await connection.execute(select(Image))).all()

    group = unique_slug("street views")
    expected = {f"{group}:{row['id']}": row for row in rows[:40]}
    assert {row.provider_id for row in images} == set(expected)
    for row in images:
        want = expected[row.provider_id]
        assert row.state == want["expected"], (row.provider_id, row.state, row.last_error)
        if row.state == "failed":
            assert row.last_error, "a failed row must say why"
        if row.state == "skipped":
            assert row.skip_reason
        if row.state in ("failed", "skipped"):
            # The code alone, never a class name or free text.
            assert row.reason and row.reason.islower() and " " not in row.reason, row.reason
        if row.state != "stored":
            assert row.path is None, "only a stored row has a path"
            planned = relative_path(row.provider, row.group_name, row.shard, row.file_name)
            assert not (root / planned).exists()
            continue
        path = root / row.path
        assert path.parent.name == "00000" and path.parent.parent.name == group
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 and len(data) == row.bytes
        with PILImage.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 1024
            assert image.size == (row.width, row.height)
        lat, lon = _gps(path)
        assert lat == pytest.approx(float(want["lat"]), abs=1e-6)
        assert lon == pytest.approx(float(want["lon"]), abs=1e-6)
    assert not [p for p in root.rglob("*") if TEMP_MARK in p.name]
    assert counters.images["stored"] == sum(r["expected"] == "stored" for r in rows[:40])


# A host the harvest may not reach (it may reach 127.0.0.1 only).
REFUSED = "http://127.0.0.2:9/pw/images/en-us"
GONE = ("skipped", "unavailable")


@pytest.mark.parametrize(
    ("warts", "deleted_ends"),
    [
        (Warts(deleted_share=0.3), GONE),
        (Warts(deleted_share=0.3, flickr_deleted_answer="inline"), GONE),
        # A redirect the list may not follow is refused whatever its path: Yahoo's placeholder
        # host is public, so only a non-public address is refused for a list.
        (
            Warts(deleted_share=0.3, flickr_placeholder_url=f"{REFUSED}/photo_unavailable.png"),
            ("failed", "host_not_allowed"),
        ),
        (
            Warts(deleted_share=0.3, flickr_placeholder_url=f"{REFUSED}/hosted.png"),
            ("failed", "host_not_allowed"),
        ),
    ],
    ids=["placeholder", "inline", "placeholder_on_a_refused_host", "other_refused_host"],
)
async def test_a_url_list_of_deleted_flickr_photos_stores_no_placeholder_and_no_duplicate(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    quick_settings: Any,
    warts: Warts,
    deleted_ends: tuple[str, str],
):
    # YFCC-style: a list of Flickr CDN URLs, some deleted since (Flickr redirects those to
    # its placeholder PNG, or sends it at the photo's URL). A low --min-side, so the 500x374
    # placeholder is not too small.
    emu = await start_emulator(EmulatorConfig(warts=warts))
    try:
        photos = [p for p in emu.world.flickr.photos if p.has_large][:24]
        base = emu.base_url
        rows = [
            {"id": p.id, "url": f"{base}/cdn/flickr/{p.server}/{p.id}_{p.secret}_b.jpg"}
            for p in photos
        ]
        listing = tmp_path / "yfcc.csv"
        _write_list(listing, rows)
        await submit_urls(
            engine, UrlCampaign("yfcc", listing, min_side=200), max_attempts=MAX_ATTEMPTS
        )
        await run_daemon(quick_settings(database_url), until_idle=True)
        deleted = {f"yfcc:{p.id}" for p in photos if emu.state.deletions.flickr(p.id)}
    finally:
        await emu.close()
    async with engine.connect() as db:
        images = {r.provider_id: r for r in (await db.execute(select(Image))).all()}
    assert len(deleted) >= 3 and len(images) == len(photos)
    for provider_id, row in images.items():
        if provider_id in deleted:
            assert (row.state, row.reason, row.path) == (*deleted_ends, None), row.last_error
        else:
            assert row.state == "stored", (provider_id, row.state, row.reason)
    stored = [r for r in images.values() if r.state == "stored"]
    assert len({r.source_sha256 for r in stored}) == len(stored)
    on_disk = {str(p.relative_to(tmp_path / "data")) for p in (tmp_path / "data").rglob("*.jpg")}
    assert on_disk == {r.path for r in stored}

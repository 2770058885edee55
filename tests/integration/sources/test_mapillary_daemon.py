"""Mapillary campaigns end to end through the real daemon: downloads, refreshes, files.

The source registry does not list Mapillary yet (the lead wires it), so the daemon's
context is assembled here with a MapillarySource; everything else is the real daemon.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from defaults import MAX_ATTEMPTS
from mly_harness import run_chain
from PIL import Image as PILImage
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.config import Settings
from harvester.db.campaigns import campaign_settings
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import Image, ImageHit, Task
from harvester.emulator import EmulatorConfig, RunningEmulator, start_emulator
from harvester.http import HostSlots, HttpClient, TokenBucket
from harvester.records import NewTask
from harvester.sources.mapillary import MapillaryCampaign, MapillarySource, submit_mapillary
from harvester.sources.mapillary_submit import IDS, SEQUENCE, TILE
from harvester.worker.daemon import run_daemon
from harvester.worker.fetching import http_settings

TOKEN = "MLY|777|daemon-token-0123456789abcdef"
TTL = 600


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(
        EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), url_ttl_s=TTL)
    )
    yield running
    await running.close()


@pytest.fixture
def engine(sqlite_engine: AsyncEngine) -> AsyncEngine:
    """The daemon is the subject here, not the database: SQLite only."""
    return sqlite_engine


def _source(http: HttpClient, emu: RunningEmulator, settings: Settings) -> MapillarySource:
    return MapillarySource(
        http,
        api_url=emu.mapillary_api_url,
        token=SecretStr(TOKEN),
        search_limiter=TokenBucket(settings.mapillary_search_rate_per_s, settings.mapillary_burst),
        entity_limiter=TokenBucket(settings.mapillary_entity_rate_per_s, settings.mapillary_burst),
        host_slots=HostSlots(settings.cdn_per_host_concurrency),
        max_bytes=settings.max_image_bytes,
    )


async def _run_daemon(settings: Settings, emu: RunningEmulator) -> None:
    """The real daemon, its sources built from settings pointing at the emulator."""
    pointed = settings.model_copy(
        update={"mapillary_api_url": emu.mapillary_api_url, "mapillary_token": SecretStr(TOKEN)}
    )
    await run_daemon(pointed, until_idle=True)


async def _expand_only(settings: Settings, engine: AsyncEngine, emu: RunningEmulator) -> None:
    """Queue the images now, download them later: as when a backlog outlives its URLs."""
    async with HttpClient(http_settings(settings)) as http:
        await run_chain(engine, _source(http, emu, settings))


async def _entity_calls(emu: RunningEmulator) -> int:
    url = f"{emu.base_url}/_emulator/stats"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        endpoints = (await resp.json())["endpoints"]
    return int(endpoints.get("mapillary.entity", {}).get("total", 0))


async def test_pairs_with_expired_urls_and_a_sequence_list_are_stored_through_the_daemon(
    emu: RunningEmulator,
    engine: AsyncEngine,
    sqlite_url: str,
    tmp_path: Path,
    quick_settings: Any,
) -> None:
    root = tmp_path / "data"
    settings = quick_settings(sqlite_url, concurrency=8, max_attempts=2)
    world = emu.world
    db_seq, q_seq = world.mapillary_sequence_pairs()[0]
    pairs = list(
        zip(world.mapillary_sequence(db_seq), world.mapillary_sequence(q_seq), strict=True)
    )
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text(
        "".join(f"{d.sequence},{q.sequence},{d.id},{q.id},,,,\n" for d, q in pairs[:8])
    )
    listed = world.mapillary_sequence(world.mapillary_sequence_pairs()[2][1])[:6]
    seq_csv = tmp_path / "seq.csv"
    seq_csv.write_text("".join(f"{im.sequence},{im.id},{im.lat},{im.lon}\n" for im in listed))
    pairs_campaign = MapillaryCampaign(
        "pairs", pairs_csv=pairs_csv, size="1024", max_side=512, min_side=256
    )

    await submit_mapillary(engine, pairs_campaign, max_attempts=MAX_ATTEMPTS)
    await _expand_only(settings, engine, emu)
    async with aiohttp.ClientSession() as session:
        await (await session.post(f"{emu.base_url}/_emulator/clock?advance={TTL + 1}")).release()
    await submit_mapillary(
        engine,
        replace(pairs_campaign, name="listed", pairs_csv=None, sequence_csv=seq_csv),
        max_attempts=MAX_ATTEMPTS,
    )
    await _run_daemon(settings, emu)

    async with engine.connect() as db:
        images = (await db.execute(select(Image))).all()
        roles = dict(
            (await db.execute(select(Image.provider_id, ImageHit.role).join(ImageHit))).all()
        )
    assert len(images) == 16 + 6
    assert [r.provider_id for r in images if r.state != "stored"] == []
    assert await _entity_calls(emu) == 16  # each expired pair URL refreshed once, no more
    for row in images:
        path = root / row.path
        source = world.mapillary.by_id[row.provider_id]
        assert row.path == f"mapillary/{source.sequence}/00000/{source.id}.jpg"
        with PILImage.open(path) as stored:
            assert stored.format == "JPEG" and max(stored.size) == 512
        # Computed first, unless the emulator's reconstruction of it went wild.
        sound = source.computed and "harvester_position" not in (row.raw or {})
        lat = source.computed[1] if sound else source.lat
        assert row.lat == lat and row.heading is not None
    assert {roles[d.id] for d, _ in pairs[:8]} == {"database"}
    assert {roles[q.id] for _, q in pairs[:8]} == {"query"}


@pytest.mark.parametrize("size", ["2048", "original"])
async def test_the_size_asked_for_is_the_size_stored(
    emu: RunningEmulator,
    engine: AsyncEngine,
    sqlite_url: str,
    tmp_path: Path,
    quick_settings: Any,
    size: str,
) -> None:
    world = emu.world
    listed = world.mapillary_sequence(world.mapillary_sequence_pairs()[2][1])[:3]
    assert {(im.width, im.height) for im in listed} == {(1920, 1080)}
    seq_csv = tmp_path / "seq.csv"
    seq_csv.write_text("".join(f"{im.sequence},{im.id},{im.lat},{im.lon}\n" for im in listed))
    await submit_mapillary(
        engine, MapillaryCampaign("big", sequence_csv=seq_csv, size=size), max_attempts=MAX_ATTEMPTS
    )
    await _run_daemon(quick_settings(sqlite_url), emu)
    async with engine.connect() as db:
        images = (await db.execute(select(Image))).all()
    assert [r.state for r in images] == ["stored"] * 3
    for row in images:
        with PILImage.open(tmp_path / "data" / row.path) as stored:
            assert stored.size == (1920, 1080)  # not the 1024 of the default size


async def test_a_task_with_a_malformed_payload_fails_once_for_good_naming_the_field(
    emu: RunningEmulator, engine: AsyncEngine, sqlite_url: str, quick_settings: Any
) -> None:
    settings = quick_settings(sqlite_url, max_attempts=5)
    bbox = (2.0, 48.0, 2.01, 48.01)
    report = await submit_mapillary(
        engine, MapillaryCampaign("region", bbox=bbox), max_attempts=MAX_ATTEMPTS
    )
    broken = [
        NewTask(TILE, "broken:tile", {"bbox": "north of here", "query": "x"}),
        NewTask(SEQUENCE, "broken:sequence", {"query": "no id"}),
        NewTask(IDS, "broken:ids", {"items": [{"seq": "s1"}]}),
    ]
    assert (
        await enqueue_tasks(engine, report.campaign_id, broken, default_max_attempts=MAX_ATTEMPTS)
        == 3
    )
    await _run_daemon(settings, emu)

    async with engine.connect() as db:
        rows = {
            r.dedupe_key: r
            for r in await db.execute(select(Task).where(Task.dedupe_key.startswith("broken:")))
        }
        stored = (await campaign_settings(engine))[report.campaign_id]
    expected = {
        "broken:tile": "bbox",
        "broken:sequence": "sequence_id",
        "broken:ids": "items.0.id",
    }
    for key, field_name in expected.items():
        row = rows[key]
        assert (row.state, row.attempts, row.reason) == ("failed", 1, "bad_payload"), key
        assert f"payload: {field_name}:" in row.last_error, row.last_error
    assert stored["bbox"] == list(bbox)  # the region is kept with the campaign

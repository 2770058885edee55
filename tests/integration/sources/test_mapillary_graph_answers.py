"""MapillarySource against Graph's harder answers, over real HTTP with the emulator: paged
collections, refusals that are or are not about a box's size, throttling codes, outages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from mly_harness import TOKEN, emulator_stats, make_source, quick_http, run_chain, stored_ids
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from harvester.emulator import EmulatorConfig, RunningEmulator, Warts, start_emulator
from harvester.emulator.mapillary_world import DENSE_CORE
from harvester.http import HttpClient
from harvester.sources.base import TaskView
from harvester.sources.mapillary import MapillaryCampaign, submit_mapillary

SECRET = TOKEN.rsplit("|", 1)[1]
LON, LAT = DENSE_CORE
CORE_TILE = (LON - 0.003, LAT - 0.003, LON + 0.003, LAT + 0.003)  # legal: sides under 0.01


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with quick_http() as client:
        yield client


async def _emulator(**warts: Any) -> RunningEmulator:
    config = EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), warts=Warts(**warts))
    return await start_emulator(config)


async def _dump(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        rows = [
            (await connection.execute(text(f"SELECT * FROM {table}"))).all()
            for table in ("campaigns", "tasks", "images", "image_hits")
        ]
    return str(rows)


async def test_a_sequence_listed_in_three_pages_yields_every_image_and_never_the_pages_token(
    engine: AsyncEngine, http: HttpClient
) -> None:
    """Graph writes the token into `paging.next`: the pages are asked for by their cursor,
    the token staying in the header, so no log line and no stored field holds it."""
    probe = await _emulator()
    sequence_id = probe.world.mapillary_sequence_pairs()[0][0]
    truth = [im.id for im in probe.world.mapillary_sequence(sequence_id)]
    await probe.close()
    per_page = -(-len(truth) // 3)
    assert 2 * per_page < len(truth)  # three pages, the last one not empty
    emu = await _emulator(mapillary_page_size=per_page)
    try:
        campaign = MapillaryCampaign("paged", sequences=(sequence_id,))
        report = await submit_mapillary(engine, campaign, max_attempts=MAX_ATTEMPTS)
        results: list[dict[str, object]] = []
        with capture_logs() as logs:
            await run_chain(engine, make_source(http, emu), results)
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    assert sorted(await stored_ids(engine, report.campaign_id)) == sorted(truth)
    assert results[0]["pages"] == 3 and "capped" not in results[0]
    listing = stats["endpoints"]["mapillary.image_ids"]
    assert listing["total"] == 3 and stats["token_in_url"] == 0
    shown = f"{logs} {results} {await _dump(engine)}"
    assert SECRET not in shown and "access_token" not in shown


async def test_a_tile_answered_in_pages_is_read_to_its_last_page_not_cut(
    http: HttpClient,
) -> None:
    emu = await _emulator(mapillary_page_size=150)
    try:
        truth = {im.id for im in emu.world.mapillary_images_in_bbox(CORE_TILE)}
        assert 3 * 150 < len(truth) < 1500  # several pages, not refused as too dense
        task = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
        expansion = await make_source(http, emu).expand(task, {})
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    assert {image.provider_id for image in expansion.images} == truth
    pages = -(-len(truth) // 150)
    assert not expansion.follow_up and expansion.result["pages"] == pages
    assert stats["endpoints"]["mapillary.images"]["total"] == pages

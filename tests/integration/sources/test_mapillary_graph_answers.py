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

from harvester.emulator import EmulatorConfig, Faults, RunningEmulator, Warts, start_emulator
from harvester.emulator.mapillary_world import DENSE_CORE
from harvester.http import (
    CircuitBreaker,
    FieldRetiredError,
    HttpClient,
    HttpSettings,
    PermanentHttpError,
    ServiceUnavailableError,
    TooMuchDataError,
    TransientHttpError,
    UnavailableError,
)
from harvester.sources.base import ImageView, TaskView
from harvester.sources.mapillary import (
    BATCH_IDS,
    MapillaryCampaign,
    MapillarySource,
    submit_mapillary,
)
from harvester.sources.mapillary_tiles import PER_SIDE_TILE

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


async def test_a_search_refused_for_anything_but_the_box_size_fails_and_teaches_no_side(
    http: HttpClient,
) -> None:
    """A 400 about a field (retired from the API) fails the tile as itself, at once: it
    is not re-cut tile after tile, nor does it shrink the tiles of the rest of the run."""
    emu = await _emulator(mapillary_retired_fields=frozenset({"thumb_1024_url"}))
    source = make_source(http, emu)
    try:
        task = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
        with pytest.raises(PermanentHttpError) as caught:
            await source.expand(task, {})
        calls = (await emulator_stats(emu))["endpoints"]["mapillary.images"]["total"]
        wide = (LON - 0.025, LAT - 0.025, LON + 0.025, LAT + 0.025)  # sides over 0.01
        later = await source.expand(TaskView(2, 1, "mapillary_tile", {"bbox": list(wide)}, 1), {})
    finally:
        await emu.close()
    assert isinstance(caught.value, FieldRetiredError) and caught.value.reason == "http_400"
    assert caught.value.field == "thumb_1024_url" and calls == 1
    # The wide box is still searched at the area reading's size, refused as too large,
    # and cut under the per-side one: the field's refusal taught nothing.
    assert later.result["why"] == "refused" and later.result["side"] == PER_SIDE_TILE


async def test_a_tile_refused_as_too_large_that_cannot_be_cut_again_fails(
    http: HttpClient,
) -> None:
    emu = await _emulator(bbox_limit=0.001)  # a stricter service than any tile side we try
    try:
        task = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
        halves = await make_source(http, emu).expand(task, {})
        assert halves.result["why"] == "refused" and len(halves.follow_up) == 4
        part = halves.follow_up[0].payload
        with pytest.raises(TooMuchDataError) as caught:
            await make_source(http, emu).expand(TaskView(2, 1, "mapillary_tile", part, 1), {})
    finally:
        await emu.close()
    assert caught.value.reason == "too_much_data" and caught.value.status == 400


@pytest.mark.parametrize(
    ("codes", "transient"),
    [((341, 368, 80001, 80014), False), ((-2,), True)],
    ids=["throttling-codes", "is-transient"],
)
async def test_graph_throttles_beyond_the_classic_codes_are_waited_out_not_failed(
    codes: tuple[int, ...], transient: bool
) -> None:
    """Graph's error-handling guide throttles with 341 and 368 as well as 4, 17 and 613,
    its business use case limits with 80000-80014, and marks other retryable errors
    `is_transient`: each is tried again, so the sequence comes whole."""
    faults = Faults(
        body_rate_limit_rate=0.4,
        body_rate_limit_codes=codes,
        body_rate_limit_transient=transient,
        scope=frozenset({"api"}),
    )
    config = EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), faults=faults)
    emu = await start_emulator(config)
    patient = HttpSettings(max_attempts=8, backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        sequence_id = emu.world.mapillary_sequence_pairs()[0][0]
        truth = {im.id for im in emu.world.mapillary_sequence(sequence_id)}
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
        async with HttpClient(patient) as client:
            expansion = await make_source(client, emu).expand(task, {})
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    assert {image.provider_id for image in expansion.images} == truth
    assert stats["body_rate_limit"] > 0


async def test_a_tile_timed_out_at_the_gateway_is_cut_after_a_retry_while_the_api_answers() -> None:
    """A 504 for one heavy box while the service answers: cut into quadrants after one
    retry, as a timeout is, before the box's own answers open the breaker (3 in a row).
    Once the breaker is open the outage is everyone's: tiles wait for it, uncut."""
    emu = await _emulator(dense_timeout_above=400)  # the tile holds 711, each quadrant < 260
    quick = {"probe_after_s": 0.05, "max_probe_interval_s": 0.05, "max_pause_s": 0.5}
    breaker = CircuitBreaker("mapillary", **quick)
    patient = HttpSettings(max_attempts=5, backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        truth = {im.id for im in emu.world.mapillary_images_in_bbox(CORE_TILE)}
        async with HttpClient(patient) as client:
            source = make_source(client, emu, breaker=breaker)
            found, whys = await _expand_all(source, CORE_TILE)
            timeouts = (await emulator_stats(emu))["gateway_timeout"]
            for _ in range(3):
                breaker.record(ServiceUnavailableError("down", url="x", status=503), probe=False)
            with pytest.raises(ServiceUnavailableError):
                await _expand_all(source, CORE_TILE)
    finally:
        await emu.close()
    assert found == truth and whys.count("unavailable") == 1
    assert timeouts == 2 and breaker.opened == 1  # opened by the outage alone


async def test_an_html_page_for_a_tile_search_is_retried_not_taken_for_a_heavy_box(
    http: HttpClient,
) -> None:
    """A portal's page with a 200 says nothing of the box: no cut (which would ask again for
    four boxes, and four more, as long as the page stands in the API's place)."""
    faults = Faults(html_page_rate=1.0, scope=frozenset({"api"}))
    emu = await start_emulator(EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), faults=faults))
    try:
        task = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
        with pytest.raises(TransientHttpError) as caught:
            await make_source(http, emu).expand(task, {})
        pages = (await emulator_stats(emu))["html_page"]
    finally:
        await emu.close()
    # Raised as transient: the queue tries the task again later, the box whole.
    assert caught.value.reason == "bad_response" and pages == 1


async def _expand_all(
    source: MapillarySource, box: tuple[float, float, float, float]
) -> tuple[set[str], list[object]]:
    """Every image of a tile and the tasks it is cut into; why each task was cut."""
    pending = [TaskView(1, 1, "mapillary_tile", {"bbox": list(box)}, 1)]
    found: set[str] = set()
    whys: list[object] = []
    while pending:
        expansion = await source.expand(pending.pop(), {})
        found |= {image.provider_id for image in expansion.images}
        whys.append(expansion.result.get("why"))
        pending += [TaskView(2, 1, t.kind, t.payload, 1) for t in expansion.follow_up]
    return found, whys


@pytest.mark.parametrize("multi_get", [True, False], ids=["multi-get", "entities"])
async def test_listed_images_refused_for_anything_but_being_gone_fail_the_task_not_the_rows(
    http: HttpClient, multi_get: bool
) -> None:
    """Only "no such object" (Graph code 100 subcode 33, 803, HTTP 404/410) makes a row
    skipped as unavailable, which is final: a field the API retired fails the task, to be
    tried again or seen, and no image is written off for it."""
    emu = await _emulator(
        mapillary_multiget=multi_get, mapillary_retired_fields=frozenset({"thumb_1024_url"})
    )
    try:
        sequence_id = emu.world.mapillary_sequence_pairs()[0][0]
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
        with pytest.raises(PermanentHttpError) as caught:
            await make_source(http, emu).expand(task, {})
    finally:
        await emu.close()
    assert isinstance(caught.value, FieldRetiredError) and caught.value.reason == "http_400"


async def test_a_thumbnail_refresh_refused_for_a_field_fails_the_row_not_skips_it(
    http: HttpClient,
) -> None:
    emu = await _emulator(mapillary_retired_fields=frozenset({"thumb_1024_url"}))
    try:
        image_id = emu.world.mapillary.images[0].id
        raw = {"harvester_thumb_field": "thumb_1024_url"}
        with pytest.raises(PermanentHttpError) as caught:
            await make_source(http, emu).fetch(ImageView(7, 1, "mapillary", image_id, None, raw))
    finally:
        await emu.close()
    assert not isinstance(caught.value, UnavailableError) and caught.value.reason == "http_400"


async def _tile_and_sequence(source: MapillarySource, sequence_id: str) -> list[Any]:
    tile = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
    sequence = TaskView(2, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
    return [await source.expand(tile, {}), await source.expand(sequence, {})]


def _refused(stats: dict[str, Any], endpoint: str) -> int:
    return int(stats["endpoints"].get(endpoint, {}).get("retired_field", 0))


async def test_a_retired_optional_field_is_dropped_for_the_run_not_the_harvest(
    http: HttpClient,
) -> None:
    """Graph withdrew `creator` for years (openstreetmap/iD#10136), refusing any request
    naming it: the tile search is asked again at once without it, and the sequence's
    `?ids=` after it never names it; the same images come, their rows without an owner."""
    probe = await _emulator()
    sequence_id = probe.world.mapillary_sequence_pairs()[0][0]
    try:
        before = await _tile_and_sequence(make_source(http, probe), sequence_id)
    finally:
        await probe.close()
    emu = await _emulator(mapillary_retired_fields=frozenset({"creator"}))
    try:
        with capture_logs() as logs:
            after = await _tile_and_sequence(make_source(http, emu), sequence_id)
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    for old, new in zip(before, after, strict=True):
        assert [i.provider_id for i in new.images] == [i.provider_id for i in old.images]
        assert any(i.record["owner"] for i in old.images)
        assert not any(i.record["owner"] or "creator" in i.record["raw"] for i in new.images)
    assert len(after[0].images) > 100 and len(after[1].images) > 1
    assert _refused(stats, "mapillary.images") == 1 and _refused(stats, "mapillary.ids") == 0
    warned = [e for e in logs if e["event"] == "mapillary_field_retired"]
    assert warned == [{"event": "mapillary_field_retired", "field": "creator",
                       "log_level": "warning"}]  # fmt: skip


@pytest.mark.parametrize("multi_get", [True, False], ids=["multi-get", "entities"])
async def test_a_sequence_asks_its_records_again_without_a_retired_optional_field(
    http: HttpClient, multi_get: bool
) -> None:
    """The multi-get is refused once, then asked without the field; where only entities
    answer, those of the first batch already asked for are each refused once, no more."""
    emu = await _emulator(
        mapillary_multiget=multi_get, mapillary_retired_fields=frozenset({"creator"})
    )
    try:
        sequence_id = emu.world.mapillary_sequence_pairs()[0][0]
        truth = [im.id for im in emu.world.mapillary_sequence(sequence_id)]
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
        expansion = await make_source(http, emu).expand(task, {})
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    assert sorted(i.provider_id for i in expansion.images) == sorted(truth)
    assert not any(i.skip_reason or i.record["owner"] for i in expansion.images)
    if multi_get:
        assert _refused(stats, "mapillary.ids") == 1 and _refused(stats, "mapillary.entity") == 0
    else:
        assert 1 <= _refused(stats, "mapillary.entity") <= min(len(truth), BATCH_IDS)


async def test_a_pano_only_search_keeps_to_panoramas_with_is_pano_retired(
    http: HttpClient,
) -> None:
    """Without `is_pano` the filter still tells a panorama by its camera_type; both gone,
    nothing could vouch for one, and the search fails as itself rather than let flat
    pictures in or keep none."""
    campaign = {"pano_only": True}
    task = TaskView(1, 1, "mapillary_tile", {"bbox": list(CORE_TILE)}, 1)
    emus = [await _emulator(mapillary_retired_fields=frozenset(retired))
            for retired in ((), {"is_pano"}, {"is_pano", "camera_type"})]  # fmt: skip
    try:
        kept = [await make_source(http, emu).expand(task, campaign) for emu in emus[:2]]
        with pytest.raises(FieldRetiredError) as caught:
            await make_source(http, emus[2]).expand(task, campaign)
        stats = await emulator_stats(emus[2])
    finally:
        for emu in emus:
            await emu.close()
    ids = [[i.provider_id for i in expansion.images] for expansion in kept]
    assert ids[0] and ids[1] == ids[0]
    assert all(i.record["is_pano"] for i in kept[1].images)
    assert caught.value.field == "is_pano" and caught.value.reason == "http_400"
    assert _refused(stats, "mapillary.images") == 2  # camera_type dropped, then is_pano refused

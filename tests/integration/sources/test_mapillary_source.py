"""MapillarySource against the emulator over real HTTP, into a real database.

Ground truth comes from the emulator's world (every image in a box, every image of a
sequence), so a harvest that silently loses images to the 2,000 cap fails here.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from clocks import FakeClock
from defaults import MAX_ATTEMPTS
from local_server import serving
from mly_harness import BURST, RATE, TOKEN, quick_http
from mly_harness import emulator_stats as _stats
from mly_harness import endpoint_totals as _endpoint_totals
from mly_harness import make_source as _source
from mly_harness import refusing_multi_get as _refusing_multi_get
from mly_harness import run_chain as _run_chain
from mly_harness import sequence_ids as _sequence_ids
from mly_harness import stored_ids as _stored_ids
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.models import Image, ImageHit, License
from harvester.emulator import EmulatorConfig, Faults, RunningEmulator, Warts, start_emulator
from harvester.emulator.config import MAPILLARY_DELETED_ANSWERS
from harvester.emulator.mapillary_world import DENSE_CORE
from harvester.emulator.stats import key_label
from harvester.errors import InputError
from harvester.http import (
    HttpClient,
    HttpSettings,
    InvalidCredentials,
    PermanentHttpError,
    RateLimitedError,
    TokenBucket,
    TransientHttpError,
    UnavailableError,
)
from harvester.sources.base import ImageView, TaskView
from harvester.sources.mapillary import (
    MapillaryCampaign,
    MapillarySource,
    submit_mapillary,
)
from harvester.sources.mapillary_tiles import MAX_AREA
from harvester.storage.layout import relative_path


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    emu = await start_emulator(EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), url_ttl_s=600))
    yield emu
    await emu.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with quick_http() as client:
        yield client


async def test_a_dense_region_over_the_area_limit_is_harvested_completely(
    engine: AsyncEngine, emulator: RunningEmulator, http: HttpClient
) -> None:
    world = emulator.world
    bbox = world.mapillary_dense_bbox()
    truth = {im.id for im in world.mapillary_images_in_bbox(bbox)}
    assert (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) > MAX_AREA and len(truth) > 2000

    report = await submit_mapillary(
        engine, MapillaryCampaign("brussels", bbox=bbox), max_attempts=MAX_ATTEMPTS
    )
    runs = await _run_chain(engine, _source(http, emulator))

    ids = await _stored_ids(engine, report.campaign_id)
    assert len(ids) == len(set(ids)) and set(ids) == truth
    assert runs > report.tasks_added  # some tile came back full and was split
    async with engine.connect() as connection:
        image = (await connection.execute(select(Image).where(Image.provider_id == ids[0]))).one()
        licence = (await connection.execute(select(License.name))).scalars().all()
    source_image = world.mapillary.by_id[image.provider_id]
    assert image.group_name == source_image.sequence == image.sequence_id
    planned = relative_path(image.provider, image.group_name, image.shard, image.file_name)
    assert (
        str(planned)
        == f"mapillary/{source_image.sequence}/{image.shard:05d}/{image.provider_id}.jpg"
    )
    assert image.path is None, "not stored yet, so no path"
    assert image.license_id == "CC-BY-SA-4.0" and licence == ["CC BY-SA 4.0"]
    assert image.owner_name == source_image.creator_username
    again = await submit_mapillary(
        engine, MapillaryCampaign("brussels", bbox=bbox), max_attempts=MAX_ATTEMPTS
    )
    assert again.tasks_added == 0


async def test_a_box_too_dense_to_search_is_cut_into_quadrants_not_retried(
    engine: AsyncEngine, http: HttpClient
) -> None:
    # Graph answers a dense box with HTTP 500 code 1 "reduce the amount of data": the
    # same request fails again, so it is no outage to retry or to open the breaker for.
    config = EmulatorConfig(
        mapillary_tokens=frozenset({TOKEN}), warts=Warts(dense_refusal_above=400)
    )
    emu = await start_emulator(config)
    try:
        world = emu.world
        bbox = world.mapillary_dense_bbox()
        truth = {im.id for im in world.mapillary_images_in_bbox(bbox)}
        report = await submit_mapillary(
            engine, MapillaryCampaign("dense", bbox=bbox), max_attempts=MAX_ATTEMPTS
        )
        results: list[dict[str, Any]] = []
        await _run_chain(engine, _source(http, emu), results)
        stats = await _stats(emu)
    finally:
        await emu.close()
    assert set(await _stored_ids(engine, report.campaign_id)) == truth
    dense = [r for r in results if r.get("why") == "dense"]
    assert dense and all(r["split"] == 4 for r in dense)
    refused = stats["too_dense"]
    assert refused == len(dense)  # each dense box asked once: no retries


async def test_a_sequence_is_fetched_in_id_batches_not_one_request_per_image(
    engine: AsyncEngine, emulator: RunningEmulator, http: HttpClient
) -> None:
    sequence_id = emulator.world.mapillary_sequence_pairs()[0][0]
    truth = [im.id for im in emulator.world.mapillary_sequence(sequence_id)]
    report = await submit_mapillary(
        engine,
        MapillaryCampaign("seq", sequences=(sequence_id, sequence_id)),
        max_attempts=MAX_ATTEMPTS,
    )
    assert report.tasks_added == 1
    await _run_chain(engine, _source(http, emulator))

    assert sorted(await _stored_ids(engine, report.campaign_id)) == sorted(truth)
    totals = _endpoint_totals(await _stats(emulator))
    assert totals == {"mapillary.image_ids": 1, "mapillary.ids": math.ceil(len(truth) / 50)}


async def test_listed_ids_are_found_by_their_entities_where_the_multi_get_is_refused(
    http: HttpClient,
) -> None:
    """Graph's `?ids=` is not in Mapillary's own documentation: where it is refused, every
    listed image is still found (by its entity), a deleted one is still unavailable, and
    after the first refusal the batches go to the entities straight away."""
    sequence_id, listed = _sequence_ids(60)
    emu = await _refusing_multi_get(mapillary_deleted=frozenset({listed[7]}))
    try:
        items = [{"id": i, "seq": sequence_id} for i in listed]
        task = TaskView(1, 1, "mapillary_ids", {"items": items}, 1)
        expansion = await _source(http, emu).expand(task, {"size": "256"})
        totals = _endpoint_totals(await _stats(emu))
    finally:
        await emu.close()
    found = {i.provider_id: i for i in expansion.images}
    assert sorted(found) == sorted(listed)
    assert found[listed[7]].skip_reason is not None and found[listed[7]].source_url is None
    kept = [i for i in found.values() if i.provider_id != listed[7]]
    assert all(i.source_url and i.skip_reason is None for i in kept)
    assert expansion.result["missing"] == 1
    # One refused batch, halved to its first id, then one entity call per listed id.
    assert totals["mapillary.entity"] == len(listed)
    assert totals["mapillary.ids"] <= 12


async def test_entities_standing_in_for_a_refused_multi_get_are_asked_for_together(
    http: HttpClient,
) -> None:
    """Where `?ids=` is refused, a batch's entities are requested at once, each still paced
    by the limiter: the emulator holds every answer until all of them are in flight (calls
    made one after another never get there and each waits out the latency). The deleted
    one is missing alone, and the images keep the listed order."""
    _, listed = _sequence_ids(6)
    emu = await _refusing_multi_get(mapillary_deleted=frozenset({listed[3]}))
    clock = FakeClock()
    limiter = TokenBucket(RATE, 1, clock=clock)
    source = MapillarySource(
        http,
        api_url=emu.mapillary_api_url,
        token=SecretStr(TOKEN),
        search_limiter=limiter,
        entity_limiter=limiter,
    )

    def task(ids: list[str]) -> TaskView:
        return TaskView(1, 1, "mapillary_ids", {"items": [{"id": i} for i in ids]}, 1)

    try:
        await source.expand(task(listed[:1]), {"size": "256"})  # learns `?ids=` is refused
        admin = f"{emu.base_url}/_emulator"
        hold = {"latency_ms": "2000", "overlap": str(len(listed) - 1), "scope": "api"}
        async with aiohttp.ClientSession() as session:
            await (await session.post(f"{admin}/faults", params=hold)).release()
            await (await session.post(f"{admin}/stats/reset")).release()
        began = clock.now
        expansion = await source.expand(task(listed[1:]), {"size": "256"})
        stats = await _stats(emu)
    finally:
        await emu.close()
    entity = stats["endpoints"]["mapillary.entity"]
    assert entity["total"] == len(listed) - 1 and "mapillary.ids" not in stats["endpoints"]
    assert entity["max_in_flight"] == len(listed) - 1
    assert clock.now - began >= (len(listed) - 2) / RATE - 1e-9  # one token at a time
    assert [i.provider_id for i in expansion.images] == listed[1:]
    gone = [i.provider_id for i in expansion.images if i.skip_reason is not None]
    assert gone == [listed[3]] and expansion.result["missing"] == 1
    assert all(i.source_url for i in expansion.images if i.provider_id != listed[3])


async def test_a_long_rate_limit_met_in_the_entity_fallback_fails_the_task_with_it(
    http: HttpClient,
) -> None:
    """Entities asked for together fail the task with the error one of them met, as a call
    made alone would (the queue reads its Retry-After), not wrapped in an ExceptionGroup."""
    emu = await _refusing_multi_get(mapillary_limit_in_body=False)
    listed = [{"id": i} for i in _sequence_ids(4)[1]]
    source = _source(http, emu)
    try:
        await source.expand(TaskView(1, 1, "mapillary_ids", {"items": listed[:1]}, 1), {})
        async with aiohttp.ClientSession() as session:
            url = f"{emu.base_url}/_emulator/faults?rate_429=1&retry_after_s=600&scope=api"
            await (await session.post(url)).release()
        with pytest.raises(RateLimitedError) as caught:
            await source.expand(TaskView(2, 1, "mapillary_ids", {"items": listed}, 1), {})
    finally:
        await emu.close()
    assert caught.value.retry_after == 600


async def test_a_sequence_csv_goes_in_with_its_malformed_line_reported(
    engine: AsyncEngine, emulator: RunningEmulator, http: HttpClient, tmp_path: Path
) -> None:
    sequence_id = emulator.world.mapillary_sequence_pairs()[1][0]
    images = emulator.world.mapillary_sequence(sequence_id)
    lines = ["sequence_id,image_id,latitude,longitude"]
    lines += [f"{im.sequence},{im.id},{im.lat},{im.lon}" for im in images]
    lines.insert(5, f"{sequence_id},not-an-id,1,2")  # becomes line 6 of the file
    path = tmp_path / "tsukuba.csv"
    path.write_text("\n".join(lines) + "\n")

    report = await submit_mapillary(
        engine, MapillaryCampaign("csv", sequence_csv=path), max_attempts=MAX_ATTEMPTS
    )
    assert report.problems == ("tsukuba.csv line 6: image id must be a number, got 'not-an-id'",)
    await _run_chain(engine, _source(http, emulator))
    assert sorted(await _stored_ids(engine, report.campaign_id)) == sorted(im.id for im in images)


async def test_a_pairs_csv_keeps_database_and_query_roles_for_each_pair(
    engine: AsyncEngine, emulator: RunningEmulator, http: HttpClient, tmp_path: Path
) -> None:
    world = emulator.world
    db_seq, q_seq = world.mapillary_sequence_pairs()[0]
    both = world.mapillary_sequence(db_seq), world.mapillary_sequence(q_seq)
    pairs = list(zip(*both, strict=True))[:120]  # one path travelled twice: equal lengths
    path = tmp_path / "pairs.csv"
    path.write_text(  # no header line: the other form the seed's files come in
        "".join(
            f"{d.sequence},{q.sequence},{d.id},{q.id},{d.lat},{d.lon},{q.lat},{q.lon}\n"
            for d, q in pairs
        )
    )
    report = await submit_mapillary(
        engine, MapillaryCampaign("pairs", pairs_csv=path), max_attempts=MAX_ATTEMPTS
    )
    assert report.tasks_added == 2 and report.problems == ()  # 240 ids: two chunks
    await _run_chain(engine, _source(http, emulator))

    async with engine.connect() as connection:
        hits = (
            await connection.execute(
                select(Image.provider_id, Image.group_name, ImageHit.role, ImageHit.detail).join(
                    ImageHit, ImageHit.image_id == Image.id
                )
            )
        ).all()
    by_id = {pid: (group, role, detail) for pid, group, role, detail in hits}
    assert len(by_id) == 240
    for line, (d, q) in enumerate(pairs, start=1):
        assert by_id[d.id] == (db_seq, "database", {"pair": line, "other": q.id})
        assert by_id[q.id] == (q_seq, "query", {"pair": line, "other": d.id})


async def test_pano_only_keeps_spherical_images_from_sequences_and_regions(
    emulator: RunningEmulator, http: HttpClient
) -> None:
    world = emulator.world
    source = _source(http, emulator)
    settings = {"pano_only": True, "size": "256", "min_side": 100}
    pano_seq, flat_seq = (
        world.mapillary_sequence_pairs()[0][0],
        world.mapillary_sequence_pairs()[2][0],
    )
    assert world.mapillary_sequence(pano_seq)[0].is_pano
    assert not world.mapillary_sequence(flat_seq)[0].is_pano
    for seq, expected in ((pano_seq, len(world.mapillary_sequence(pano_seq))), (flat_seq, 0)):
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": seq}, 1)
        assert len((await source.expand(task, settings)).images) == expected

    lon, lat = DENSE_CORE  # over 2,000 images, but far fewer panoramas
    box = (lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)
    truth = {im.id for im in world.mapillary_images_in_bbox(box, is_pano=True)}
    assert 0 < len(truth) < 2000 < len(world.mapillary_images_in_bbox(box))
    pending = [TaskView(2, 1, "mapillary_tile", {"bbox": list(box)}, 1)]
    images, whys = [], []
    while pending:
        expansion = await source.expand(pending.pop(), settings)
        images += expansion.images
        whys.append(expansion.result.get("why"))
        pending += [TaskView(3, 1, t.kind, t.payload, 1) for t in expansion.follow_up]
    assert {i.provider_id for i in images} == truth and len(images) == len(truth)
    assert all(i.record["is_pano"] for i in images)
    assert "cap" not in whys  # the filter went to the search: no tile came back full


async def test_a_capture_date_range_goes_to_the_search_in_its_documented_form(
    emulator: RunningEmulator, http: HttpClient
) -> None:
    """start/end_captured_at as the docs write them (whole seconds: the emulator refuses a
    fraction), both end days whole, nothing outside them."""
    world = emulator.world
    source = _source(http, emulator)
    settings = {
        "min_captured_at": "2021-03-01",
        "max_captured_at": "2021-10-31",
        "size": "256",
        "min_side": 100,
    }
    lon, lat = DENSE_CORE
    box = (lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005)
    start, end = 1_614_556_800_000, 1_635_724_800_000  # 2021-03-01, 2021-11-01 UTC
    truth = {
        im.id
        for im in world.mapillary_images_in_bbox(
            box, start_captured_at=start, end_captured_at=end - 1
        )
    }
    assert 0 < len(truth) < len(world.mapillary_images_in_bbox(box))
    pending = [TaskView(2, 1, "mapillary_tile", {"bbox": list(box)}, 1)]
    images = []
    while pending:
        expansion = await source.expand(pending.pop(), settings)
        images += expansion.images
        pending += [TaskView(3, 1, t.kind, t.payload, 1) for t in expansion.follow_up]
    assert {i.provider_id for i in images} == truth and len(images) == len(truth)


async def test_an_expired_thumbnail_url_is_refreshed_on_fetch(
    emulator: RunningEmulator, http: HttpClient
) -> None:
    source = _source(http, emulator)
    sequence_id = emulator.world.mapillary_sequence_pairs()[3][0]
    task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
    found = (await source.expand(task, {"size": "256"})).images[0]
    image = ImageView(7, 1, "mapillary", found.provider_id, found.source_url, found.record["raw"])
    assert (await source.fetch(image)).data[:2] == b"\xff\xd8"
    before = _endpoint_totals(await _stats(emulator)).get("mapillary.entity", 0)
    assert before == 0  # a valid URL needs no entity call

    async with aiohttp.ClientSession() as session:
        await (await session.post(f"{emulator.base_url}/_emulator/clock?advance=601")).release()
        async with session.get(found.source_url or "") as stale:
            assert stale.status == 403
    assert (await source.fetch(image)).data[:2] == b"\xff\xd8"
    assert _endpoint_totals(await _stats(emulator))["mapillary.entity"] == 1
    assert source.page_url(image) == f"https://www.mapillary.com/app/?pKey={found.provider_id}"


async def test_an_unknown_image_on_refresh_is_a_permanent_failure(
    emulator: RunningEmulator, http: HttpClient
) -> None:
    image = ImageView(1, 1, "mapillary", "1", None, {"harvester_thumb_field": "thumb_256_url"})
    with pytest.raises(PermanentHttpError):
        await _source(http, emulator).fetch(image)


@pytest.mark.parametrize("answer", MAPILLARY_DELETED_ANSWERS)
async def test_an_image_deleted_after_it_was_listed_is_unavailable_on_fetch(
    emulator: RunningEmulator, http: HttpClient, answer: str
) -> None:
    """However the entity says "gone" (a Graph error, a 404, or only its id back)."""
    sequence_id = emulator.world.mapillary_sequence_pairs()[3][0]
    task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
    found = (await _source(http, emulator).expand(task, {"size": "256"})).images[0]
    # The same world, where that image has since been deleted.
    warts = Warts(mapillary_deleted=frozenset({found.provider_id}), mapillary_deleted_entity=answer)
    later = await start_emulator(
        EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), url_ttl_s=600, warts=warts)
    )
    try:
        url = (found.source_url or "").replace(emulator.base_url, later.base_url)
        image = ImageView(7, 1, "mapillary", found.provider_id, url, found.record["raw"])
        with pytest.raises(UnavailableError) as caught:
            await _source(http, later).fetch(image)
    finally:
        await later.close()
    assert caught.value.reason == "unavailable"


async def test_requests_stay_within_the_configured_rate(
    emulator: RunningEmulator, http: HttpClient
) -> None:
    source = _source(http, emulator, rate=RATE)
    for sequence_id, _ in emulator.world.mapillary_sequence_pairs()[:4]:
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
        await source.expand(task, {})
    stats = (await _stats(emulator))["keys"][key_label(TOKEN)]
    assert stats["total"] > RATE + BURST  # enough traffic for the limit to matter
    assert stats["max_1s"] <= RATE + BURST
    assert stats["status_429"] == 0


async def test_the_token_never_reaches_errors_or_the_database(
    engine: AsyncEngine, emulator: RunningEmulator, http: HttpClient
) -> None:
    wrong = "MLY|9999|wrong-token-abcdef0123456789"
    task = TaskView(1, 1, "mapillary_tile", {"bbox": [4.36, 50.86, 4.37, 50.87]}, 1)
    with pytest.raises(InvalidCredentials) as caught:
        await _source(http, emulator, token=wrong).expand(task, {})
    shown = f"{caught.value} {caught.value!r} {caught.value.url} {caught.value.__cause__!r}"
    assert "wrong-token" not in shown and "9999" not in shown

    sequence_id = emulator.world.mapillary_sequence_pairs()[4][0]
    await submit_mapillary(
        engine, MapillaryCampaign("secret", sequences=(sequence_id,)), max_attempts=MAX_ATTEMPTS
    )
    await _run_chain(engine, _source(http, emulator))
    async with engine.connect() as connection:
        dump = ""
        for table in ("campaigns", "tasks", "images", "image_hits", "licenses"):
            dump += str((await connection.execute(text(f"SELECT * FROM {table}"))).all())
    assert sequence_id in dump and "s3cr3t" not in dump


async def test_graph_server_errors_surface_as_transient(http: HttpClient) -> None:
    faults = Faults(error_5xx_rate=1.0, scope=frozenset({"api"}))
    emu = await start_emulator(EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), faults=faults))
    try:
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": "x"}, 1)
        with pytest.raises(TransientHttpError):
            await _source(http, emu).expand(task, {})
    finally:
        await emu.close()


async def test_an_html_page_in_the_apis_place_is_worth_another_try(http: HttpClient) -> None:
    """A proxy's or a portal's page with a 200 is not Mapillary's answer: the task is tried
    again later, not failed for good (Flickr's answer is read so too)."""
    faults = Faults(html_page_rate=1.0, scope=frozenset({"api"}))
    emu = await start_emulator(EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), faults=faults))
    try:
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": "x"}, 1)
        with pytest.raises(TransientHttpError) as caught:
            await _source(http, emu).expand(task, {})
        assert caught.value.reason == "bad_response" and TOKEN not in str(caught.value)
    finally:
        await emu.close()


async def test_a_search_refused_for_permission_fails_instead_of_cutting_the_box(
    http: HttpClient,
) -> None:
    async def images(request: web.Request) -> web.Response:
        error = {"message": "Application does not have permission for this action",
                 "type": "OAuthException", "code": 10, "fbtrace_id": "A1"}  # fmt: skip
        return web.json_response({"error": error}, status=403)

    app = web.Application()
    app.router.add_get("/images", images)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    source = MapillarySource(
        http,
        api_url=f"http://127.0.0.1:{port}",
        token=SecretStr(TOKEN),
        search_limiter=TokenBucket(100, 2),
        entity_limiter=TokenBucket(100, 2),
    )
    payload = {"bbox": [4.35, 50.85, 4.355, 50.855]}
    try:
        with pytest.raises(PermanentHttpError) as caught:
            await source.expand(TaskView(1, 1, "mapillary_tile", payload, 1), {})
    finally:
        await runner.cleanup()
    assert caught.value.status == 403  # not read as a box too big, re-cut until it is tiny


async def test_a_submit_needs_exactly_one_input_and_a_usable_list(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="exactly one"):
        await submit_mapillary(engine, MapillaryCampaign("none"), max_attempts=MAX_ATTEMPTS)
    with pytest.raises(InputError, match="exactly one"):
        await submit_mapillary(
            engine,
            MapillaryCampaign("two", bbox=(1, 1, 2, 2), sequences=("s",)),
            max_attempts=MAX_ATTEMPTS,
        )
    with pytest.raises(InputError, match="--size"):
        await submit_mapillary(
            engine,
            MapillaryCampaign("size", sequences=("s",), size="640"),
            max_attempts=MAX_ATTEMPTS,
        )
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b,c,d\n")
    with pytest.raises(InputError, match=r"junk\.csv line 1"):
        await submit_mapillary(
            engine, MapillaryCampaign("junk", sequence_csv=junk), max_attempts=MAX_ATTEMPTS
        )
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM campaigns"))).scalar() == 0


async def test_a_tile_whose_search_times_out_is_cut_into_quadrants() -> None:
    # Every Graph answer comes after the client has given up on it.
    faults = Faults(latency_ms=2000, scope=frozenset({"api"}))
    emu = await start_emulator(EmulatorConfig(mapillary_tokens=frozenset({TOKEN}), faults=faults))
    impatient = HttpSettings(
        max_attempts=1, sock_read_timeout_s=0.2, total_timeout_s=0.4, backoff_initial_s=0.01
    )
    box = [4.360, 50.860, 4.368, 50.868]
    try:
        async with HttpClient(impatient) as client:
            task = TaskView(1, 1, "mapillary_tile", {"bbox": box}, 1)
            expansion = await _source(client, emu).expand(task, {})
    finally:
        await emu.close()
    assert expansion.result["why"] == "timeout" and not expansion.images
    parts = [t.payload["bbox"] for t in expansion.follow_up]
    assert len(parts) == 4 and all(t.kind == "mapillary_tile" for t in expansion.follow_up)
    assert (min(p[0] for p in parts), min(p[1] for p in parts)) == (box[0], box[1])
    assert (max(p[2] for p in parts), max(p[3] for p in parts)) == (box[2], box[3])


async def test_one_poisoned_record_costs_its_bad_fields_not_the_page(
    http: HttpClient, engine: AsyncEngine
) -> None:
    def record(image_id: str, **fields: Any) -> dict[str, Any]:
        point = {"type": "Point", "coordinates": [4.352, 50.852]}
        return {"id": image_id, "captured_at": 1_600_000_000_000, "compass_angle": 10.0,
                "geometry": point, "sequence": "seqA", "width": 2048, "height": 1536,
                "creator": {"id": "7", "username": "ann"},
                "thumb_1024_url": f"http://cdn.test/{image_id}.jpg", **fields}  # fmt: skip

    poisoned = record(
        "2", captured_at=1e30, compass_angle="abc", computed_compass_angle=1e30,
        width=10**12, height="1.5e12", camera_type=["spherical"], is_pano={"a": 1},
        sequence="s\x00q", geometry={"coordinates": [[1], "x"]}, computed_geometry="abc",
        creator={"id": "u" * 300, "username": "an\x00n\ud800"}, junk={"deep": ["\x00"]},
    )  # fmt: skip
    page = {"data": [record("1"), "123", poisoned, record("3")]}

    async def images(request: web.Request) -> web.Response:
        return web.json_response(page)

    app = web.Application()
    app.router.add_get("/images", images)
    async with serving(app) as base:
        source = MapillarySource(
            http,
            api_url=base,
            token=SecretStr(TOKEN),
            search_limiter=TokenBucket(100, 2),
            entity_limiter=TokenBucket(100, 2),
        )
        payload = {"bbox": [4.35, 50.85, 4.355, 50.855]}
        expansion = await source.expand(TaskView(1, 1, "mapillary_tile", payload, 1), {})

    assert [image.provider_id for image in expansion.images] == ["1", "2", "3"]
    assert expansion.result["malformed"] == 1  # "123": an id where a record belongs
    campaign = await ensure_campaign(engine, "poison", "mapillary", {})
    added = await add_images(
        engine, campaign, "mapillary", "q", expansion.images, max_attempts=MAX_ATTEMPTS
    )
    assert added.new == 3
    async with engine.connect() as connection:
        chosen = select(Image.__table__).where(Image.provider_id == "2")
        row = (await connection.execute(chosen)).one()
    assert (row.captured_at, row.heading, row.source_width, row.source_height) == (None,) * 4
    assert (row.lat, row.lon, row.owner, row.sequence_id, row.is_pano) == (None,) * 4 + (False,)
    assert row.owner_name == "ann\ufffd" and row.group_name == "no-sequence"
    assert row.raw["junk"] == {"deep": [""]} and row.raw["sequence"] == "sq"


@pytest.mark.parametrize("share", [0.0, 1.0])
async def test_a_reconstruction_far_from_the_cameras_fix_gives_way_to_the_camera(
    http: HttpClient, share: float
) -> None:
    """Mapillary's computed positions are at times kilometres off (a bad merge): such an
    image is placed where its camera said, facing its compass angle, not where the
    reconstruction put it; sound reconstructions are still preferred to the camera."""
    sequence_id, _ = _sequence_ids(0)
    config = EmulatorConfig(
        mapillary_tokens=frozenset({TOKEN}),
        warts=Warts(mapillary_wild_computed_share=share),
    )
    emu = await start_emulator(config)
    try:
        task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
        expansion = await _source(http, emu).expand(task, {"size": "256"})
        truth = {im.id: im for im in emu.world.mapillary_sequence(sequence_id)}
    finally:
        await emu.close()
    assert sorted(i.provider_id for i in expansion.images) == sorted(truth)
    reconstructed = 0
    for image in expansion.images:
        im, row = truth[image.provider_id], image.record
        if im.computed is None or share:
            expected = (im.lon, im.lat, im.compass_angle)
        else:
            expected = im.computed
        reconstructed += im.computed is not None
        assert (row["lon"], row["lat"], row["heading"]) == expected
        assert ("harvester_position" in row["raw"]) == bool(share and im.computed)
    assert reconstructed > 0

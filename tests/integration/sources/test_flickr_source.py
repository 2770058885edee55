"""The Flickr source against the emulator over real HTTP, and its window chain in a real DB."""

from __future__ import annotations

import calendar
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from clocks import FakeClock
from defaults import MAX_ATTEMPTS
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_settings
from harvester.db.catalog import add_images, upsert_licenses
from harvester.db.enqueue import enqueue_tasks
from harvester.db.migrate import upgrade
from harvester.db.models import Image, ImageHit, License, Task
from harvester.db.queue import Outcome, Queue
from harvester.db.session import create_engine
from harvester.emulator import (
    EmulatorConfig,
    Faults,
    FlickrPhoto,
    Outage,
    RunningEmulator,
    Warts,
    WorldSize,
    start_emulator,
)
from harvester.http import (
    Destinations,
    HttpClient,
    HttpSettings,
    InvalidCredentials,
    PermanentHttpError,
    ServiceUnavailableError,
    TokenBucket,
    TransientHttpError,
    UnavailableError,
)
from harvester.sources.base import ImageView, TaskView
from harvester.sources.flickr import (
    EXTRAS,
    FlickrCampaign,
    FlickrSource,
    submit_flickr,
)
from harvester.sources.flickr_parse import NO_URL
from harvester.worker.fetching import http_failure

KEY = "flickr-test-key-0123456789"
PLAIN = WorldSize(flickr_gif_share=0, flickr_hidden_original_share=0)
RATE = 20.0
END = date(2023, 12, 31)


def ts(year: int, month: int = 1, day: int = 1) -> int:
    return calendar.timegm((year, month, day, 0, 0, 0))


class RecordingHttp(HttpClient):
    """The real client, noting the search windows it asked for."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        super().__init__(settings)
        self.searches: list[tuple[str, int, int, int]] = []

    async def get_text(
        self, url: str, *, params: Mapping[str, str] | None = None, **options: Any
    ) -> str:
        if params and params.get("method") == "flickr.photos.search":
            self.searches.append(
                (
                    params["text"],
                    int(params["min_upload_date"]),
                    int(params["max_upload_date"]) + 1,
                    int(params["page"]),
                )
            )
        return await super().get_text(url, params=params, **options)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    # Every original public unless it has a Large, none a GIF: the expected size of each
    # photo follows from has_large alone (test_flickr_sizes covers the Medium fallbacks).
    running = await start_emulator(
        EmulatorConfig(flickr_keys=frozenset({KEY}), flickr_rate_per_s=RATE, world=PLAIN)
    )
    yield running
    await running.close()


@pytest.fixture
async def http() -> AsyncIterator[RecordingHttp]:
    async with RecordingHttp(HttpSettings(max_attempts=2, backoff_initial_s=0.01)) as client:
        yield client


def make_source(
    http: HttpClient, emu: RunningEmulator, key: str | None = KEY, rate: float = RATE
) -> FlickrSource:
    return FlickrSource(
        http,
        api_url=emu.flickr_api_url,
        api_key=SecretStr(key) if key else None,
        limiter=TokenBucket(rate, 1),
    )


def task(query: str, start: int, end: int, kind: str = "flickr_window") -> TaskView:
    return TaskView(1, 1, kind, {"query": query, "start": start, "end": end}, 1)


def truth(emu: RunningEmulator, query: str, start: int, end: int, **kw: Any) -> list[FlickrPhoto]:
    return emu.world.flickr_search_truth(
        text=query, accuracy=6, min_upload=start, max_upload=end - 1, **kw
    )


async def key_stats(emu: RunningEmulator) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.base_url + "/_emulator/stats") as resp,
    ):
        stats: dict[str, Any] = await resp.json()
    (label,) = [k for k in stats["keys"] if k != "anonymous"]
    return dict(stats["keys"][label])


# -- one window --------------------------------------------------------------------------


async def test_a_window_expands_to_exactly_the_emulators_ground_truth(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
    start, end = ts(2021, 3), ts(2021, 9)
    expansion = await make_source(http, emu).expand(task("bridge", start, end), settings)
    ids = [image.provider_id for image in expansion.images]
    assert len(ids) == len(set(ids))
    assert set(ids) == {p.id for p in truth(emu, "bridge", start, end)}
    assert expansion.result["action"] == "read" and expansion.result["next"][0] == end
    assert expansion.query == "bridge" and all(i.group == "bridge" for i in expansion.images)


async def test_a_blank_total_is_a_bad_response_while_nothing_matched_is_an_empty_window(
    http: RecordingHttp,
) -> None:
    """Each query's first search answers `"total": ""`, pages 0, no photos (flickrapi #109):
    not "nothing here" but an answer to ask again, which then holds the truth; a query
    nothing matches ("0" once asked again) still reads as an empty window, widened past."""
    warts = Warts(flickr_blank_total_share=1.0)
    emu = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY}), warts=warts))
    try:
        settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
        source = make_source(http, emu)
        start, end = ts(2021, 3), ts(2021, 9)
        for query in ("bridge", "no-such-word-anywhere"):
            with pytest.raises(TransientHttpError, match="total that is no number") as caught:
                await source.expand(task(query, start, end), settings)
            assert caught.value.reason == "bad_response"
        again = await source.expand(task("bridge", start, end), settings)
        assert {i.provider_id for i in again.images} == {
            p.id for p in truth(emu, "bridge", start, end)
        }
        empty = await source.expand(task("no-such-word-anywhere", start, end), settings)
        assert empty.images == [] and (empty.result["total"], empty.result["found"]) == (0, 0)
        assert empty.result["next"][1] - end > end - start
    finally:
        await emu.close()


async def test_a_campaign_over_1024_px_takes_large_2048_or_the_original_by_their_own_secrets(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    """Sizes from Large 1600 up each have a secret of their own (misc.urls): the URL search
    hands out is taken as it is, never built from the photo's `secret`."""
    settings = FlickrCampaign("c", ("bridge",), max_upload=END, max_side=2048).settings()
    start, end = ts(2021, 3), ts(2021, 9)
    source = make_source(http, emu)
    expansion = await source.expand(task("bridge", start, end), settings)
    photos = emu.world.flickr_by_id
    longest = {i.provider_id: max(photos[i.provider_id].o_width, photos[i.provider_id].o_height)
               for i in expansion.images}  # fmt: skip
    public = [i for i in expansion.images if photos[i.provider_id].original_public]
    large_2048 = [i for i in public if longest[i.provider_id] > 2048]
    between = [i for i in public if 1024 < longest[i.provider_id] <= 2048]
    assert large_2048 and between
    for image in large_2048:
        photo = photos[image.provider_id]
        assert image.source_url and image.source_url.endswith("_k.jpg")
        assert photo.secret not in image.source_url and photo.originalsecret not in image.source_url
    assert all(i.source_url and "_o." in i.source_url for i in between)
    for image in large_2048[:3]:
        body = await source.fetch(
            ImageView(1, 1, "flickr", image.provider_id, image.source_url, None)
        )
        assert body.data[:2] == b"\xff\xd8"


async def test_bbox_and_licence_filters_reach_the_search(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    bbox = (2.0, 48.0, 3.0, 49.5)
    campaign = FlickrCampaign("c", ("beach",), bbox=bbox, licenses=("4", "5"), max_upload=END)
    start, end = ts(2012), ts(2023)
    expansion = await make_source(http, emu).expand(task("beach", start, end), campaign.settings())
    expected = truth(emu, "beach", start, end, bbox=bbox, licenses=frozenset({4, 5}))
    assert expected and {i.provider_id for i in expansion.images} == {p.id for p in expected}


async def test_a_crowded_window_is_shrunk_without_being_paged(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("sunset",), max_upload=END).settings()
    start, end = ts(2022), ts(2024)
    expansion = await make_source(http, emu).expand(task("sunset", start, end), settings)
    assert expansion.images == [] and len(http.searches) == 1
    assert expansion.result["action"] == "shrink" and expansion.result["total"] > 800
    (follow,) = expansion.follow_up
    assert follow.payload["start"] == start and follow.payload["end"] < end


async def _window_where_duplicates_bite(emu: RunningEmulator) -> tuple[int, int]:
    """A window of ~1,499 sunsets whose plain paging returns repeats (checked on the wire)."""
    photos = truth(emu, "sunset", ts(2004), ts(2024))
    async with aiohttp.ClientSession() as session:
        for first in range(0, 400, 37):
            start, end = photos[first].dateupload, photos[first + 1499].dateupload
            ids: list[str] = []
            for page in range(1, 7):
                params = {
                    "method": "flickr.photos.search", "api_key": KEY, "format": "json",
                    "nojsoncallback": "1", "text": "sunset", "has_geo": "1", "accuracy": "6",
                    "media": "photos", "sort": "date-posted-asc", "extras": EXTRAS,
                    "min_upload_date": str(start), "max_upload_date": str(end - 1),
                    "per_page": "250", "page": str(page),
                }  # fmt: skip
                async with session.get(emu.flickr_api_url, params=params) as resp:
                    ids += [p["id"] for p in (await resp.json())["photos"]["photo"]]
            if len(ids) != len(set(ids)):
                return start, end
    raise AssertionError("the emulator's duplicate bug never showed in these windows")


async def test_a_window_where_the_duplicate_bug_bites_still_yields_its_truth_once(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    emu.state.config.flickr_rate_per_s = None
    start, end = await _window_where_duplicates_bite(emu)
    settings = FlickrCampaign("c", ("sunset",), target_per_window=750, max_upload=END).settings()
    source = make_source(http, emu, rate=1000)
    expansion = await source.expand(task("sunset", start, end), settings)
    ids = [image.provider_id for image in expansion.images]
    assert len(ids) == len(set(ids))
    assert set(ids) == {p.id for p in truth(emu, "sunset", start, end)}
    assert expansion.result["duplicates"] == 0 and expansion.result["splits"] >= 1


async def test_negative_terms_are_applied_and_counted(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("castle",), ("paris", "rome"), max_upload=END).settings()
    start, end = ts(2019), ts(2023)
    expansion = await make_source(http, emu).expand(task("castle", start, end), settings)
    every = truth(emu, "castle", start, end)
    kept = [p for p in every if not {"paris", "rome"} & p.tokens]
    assert {i.provider_id for i in expansion.images} == {p.id for p in kept}
    assert expansion.result["negatives_removed"] == len(every) - len(kept) > 0


async def test_small_originals_are_skipped_with_a_reason_before_any_download(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("street",), max_upload=END).settings()
    start, end = ts(2020), ts(2020, 9)
    expansion = await make_source(http, emu).expand(task("street", start, end), settings)
    by_id = {i.provider_id: i for i in expansion.images}
    small = {
        p.id
        for p in truth(emu, "street", start, end)
        if not p.has_large and min(p.o_width, p.o_height) < 500
    }
    assert small and {pid for pid, i in by_id.items() if i.skip_reason} == small
    reasons = [by_id[pid].skip_reason or "" for pid in small]
    assert all("below the minimum side of 500 px" in reason for reason in reasons)
    large = {p.id for p in truth(emu, "street", start, end) if p.has_large}
    assert all("_b.jpg" in (by_id[pid].source_url or "") for pid in large)
    assert all("_o." in (i.source_url or "") for pid, i in by_id.items() if pid not in large)


async def test_a_bad_key_is_a_permanent_error_that_never_shows_the_key(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    wrong = "wrong-key-abcdef0123456789"
    settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
    with pytest.raises(InvalidCredentials) as caught:
        await make_source(http, emu, key=wrong).expand(task("bridge", ts(2020), ts(2021)), settings)
    assert isinstance(caught.value, PermanentHttpError)
    assert wrong not in str(caught.value) and wrong not in caught.value.url
    assert "Flickr error 100" in str(caught.value)


async def test_no_key_fails_permanently_without_calling_flickr(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
    with pytest.raises(PermanentHttpError):
        await make_source(http, emu, key=None).expand(task("bridge", ts(2020), ts(2021)), settings)
    assert http.searches == []


async def test_a_query_naming_a_url_flickr_holds_as_abused_is_the_querys_refusal(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    """Code 116, "Bad URL found", is about an argument's URL, and the query's text is the
    only argument an operator writes: `query_refused`, the query to change, not this
    client's request (`request_refused`)."""
    query = "bridge see www.spam.example/deals"
    settings = FlickrCampaign("c", (query,), max_upload=END).settings()
    with pytest.raises(PermanentHttpError) as caught:
        await make_source(http, emu).expand(task(query, ts(2020), ts(2021)), settings)
    assert caught.value.reason == "query_refused"
    assert "Flickr error 116" in str(caught.value)
    lenient = await start_emulator(
        EmulatorConfig(
            flickr_keys=frozenset({KEY}), world=PLAIN, warts=Warts(flickr_abused_hosts=frozenset())
        )
    )
    try:
        found = await make_source(http, lenient).expand(task(query, ts(2020), ts(2021)), settings)
    finally:
        await lenient.close()
    assert found.result["action"] == "read"


async def test_flickr_outages_surface_as_transient_errors_for_the_queue(
    http: RecordingHttp,
) -> None:
    down = Faults(error_5xx_rate=1.0, scope=frozenset({"api"}))
    broken = await start_emulator(EmulatorConfig(faults=down))
    try:
        settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
        with pytest.raises(TransientHttpError):
            await make_source(http, broken, rate=1000).expand(
                task("bridge", ts(2020), ts(2021)), settings
            )
    finally:
        await broken.close()


@pytest.mark.parametrize("code", [105, 10, 201, 0])
async def test_every_code_flickr_says_it_is_down_with_is_transient(
    http: RecordingHttp, code: int
) -> None:
    """105 and 10 (the search API down) are documented; 201 (sent with an HTTP 400) and 0
    say "Sorry, the Flickr API service is not currently available." in the wild: a retry
    later, not a failed task."""
    outage = Outage("flickr", 0, 3600)
    warts = Warts(outages=(outage,), flickr_down_codes=(code,))
    broken = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY}), warts=warts))
    try:
        settings = FlickrCampaign("c", ("bridge",), max_upload=END).settings()
        with pytest.raises(TransientHttpError) as caught:
            await make_source(http, broken, rate=1000).expand(
                task("bridge", ts(2020), ts(2021)), settings
            )
    finally:
        await broken.close()
    assert isinstance(caught.value, ServiceUnavailableError)  # counted by the breaker too


async def test_flickr_code_105_is_retried_after_a_growing_back_off() -> None:
    calls = 0

    async def rest(request: web.Request) -> web.Response:
        """Flickr says code 105 ("service unavailable") twice, then answers."""
        nonlocal calls
        calls += 1
        if calls <= 2:
            return web.json_response({"stat": "fail", "code": 105, "message": "unavailable"})
        row = {"id": 4, "name": "Attribution License", "url": "https://cc.example/by/2.0/"}
        return web.json_response({"licenses": {"license": [row]}, "stat": "ok"})

    app = web.Application()
    app.router.add_get("/services/rest/", rest)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    clock = FakeClock()
    settings = HttpSettings(backoff_initial_s=0.5, backoff_max_s=8.0)
    try:
        async with HttpClient(settings, clock=clock) as http:
            source = FlickrSource(
                http,
                api_url=f"http://127.0.0.1:{port}/services/rest/",
                api_key=SecretStr(KEY),
                limiter=TokenBucket(RATE, 1),
            )
            expansion = await source.expand(
                TaskView(1, 1, "flickr_licenses", {}, 1), FlickrCampaign("c", ("x",)).settings()
            )
    finally:
        await runner.cleanup()
    assert expansion.licenses and calls == 3
    # the HTTP client's own equal-jitter back-off: attempt n waits in [b/2, b], b = 0.5 * 2^(n-1)
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0


async def test_the_licences_task_returns_flickrs_licences(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    expansion = await make_source(http, emu).expand(
        TaskView(1, 1, "flickr_licenses", {}, 1), FlickrCampaign("c", ("x",)).settings()
    )
    assert ("4", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/") in (
        expansion.licenses
    )
    assert ("11", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/") in (
        expansion.licenses
    )
    assert {row[0] for row in expansion.licenses} == {str(i) for i in range(17)}


async def test_fetch_downloads_the_row_url_and_page_url_names_the_photo(
    emu: RunningEmulator, http: RecordingHttp
) -> None:
    settings = FlickrCampaign("c", ("glacier",), max_upload=END).settings()
    source = make_source(http, emu)
    expansion = await source.expand(task("glacier", ts(2016), ts(2024)), settings)
    found = next(i for i in expansion.images if i.skip_reason is None)
    view = ImageView(1, 1, "flickr", found.provider_id, found.source_url, found.record["raw"])
    data = (await source.fetch(view)).data
    assert data[:2] == b"\xff\xd8" or data[:4] == b"\x89PNG"
    owner = found.record["owner"]
    assert source.page_url(view) == f"https://www.flickr.com/photos/{owner}/{found.provider_id}"


@pytest.mark.parametrize("answer", ["placeholder", "404", "410"])
async def test_a_deleted_photo_is_unavailable_however_the_cdn_says_so(
    http: RecordingHttp, answer: str
) -> None:
    warts = Warts(deleted_share=0.3, flickr_deleted_answer=answer)
    emu = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY}), warts=warts))
    try:
        settings = FlickrCampaign("c", ("glacier",), max_upload=END).settings()
        source = make_source(http, emu)
        expansion = await source.expand(task("glacier", ts(2016), ts(2024)), settings)
        gone = [
            i
            for i in expansion.images
            if i.skip_reason is None and emu.state.deletions.flickr(i.provider_id)
        ]
        assert gone
        view = ImageView(1, 1, "flickr", gone[0].provider_id, gone[0].source_url, None)
        with pytest.raises(UnavailableError, match="deleted or made private"):
            await source.fetch(view)
    finally:
        await emu.close()


async def test_a_deleted_photo_sent_to_a_placeholder_on_a_host_not_allowed_is_unavailable(
    http: RecordingHttp,
) -> None:
    """Flickr's placeholder lives on Yahoo's hosts (l.yimg.com's GIF once, s.yimg.com's PNG):
    a redirect there that the image hosts refuse still says "deleted", not host_not_allowed,
    and the placeholder is never fetched."""
    placeholder = "https://l.yimg.com/g/images/photo_unavailable.gif"
    warts = Warts(deleted_share=0.3, flickr_placeholder_url=placeholder)
    emu = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY}), warts=warts))
    try:
        settings = FlickrCampaign("c", ("glacier",), max_upload=END).settings()
        hosts = Destinations.provider("flickr", ["*.staticflickr.com"], emu.flickr_api_url)
        source = FlickrSource(
            http,
            api_url=emu.flickr_api_url,
            api_key=SecretStr(KEY),
            limiter=TokenBucket(RATE, 1),
            destinations=hosts,
        )
        expansion = await source.expand(task("glacier", ts(2016), ts(2024)), settings)
        gone = next(
            i
            for i in expansion.images
            if i.skip_reason is None and emu.state.deletions.flickr(i.provider_id)
        )
        view = ImageView(1, 1, "flickr", gone.provider_id, gone.source_url, None)
        with pytest.raises(UnavailableError, match="placeholder"):
            await source.fetch(view)
    finally:
        await emu.close()


# -- the chain of windows in a real database ---------------------------------------------


async def run_chain(
    engine: AsyncEngine,
    source: FlickrSource,
    *,
    now: datetime | None = None,
    crash_after: int | None = None,
    retry: bool = False,
) -> int:
    """What the daemon does with Flickr tasks, one at a time; may 'die' mid-task. With
    `retry`, a transient error fails the task as the daemon's run_task does, and the queue's
    wall clock (a fake one) jumps an hour, its longest back-off, when only waiting is left."""
    ahead = timedelta()
    queue = Queue(engine, Task, clock=lambda: (now or datetime.now(UTC)) + ahead)
    settings = await campaign_settings(engine)
    ran = 0
    while True:
        rows = await queue.claim("test", 1, 60, kinds=sorted(source.kinds))
        if not rows:
            if not retry or not await _queued(engine):
                return ran
            ahead += timedelta(hours=1)
            continue
        (row,) = rows
        view = TaskView(
            row.id, row.campaign_id, row.kind, row.payload, row.attempts, row.max_attempts
        )
        try:
            expansion = await source.expand(view, settings[row.campaign_id])
        except TransientHttpError as exc:
            if not retry:
                raise
            await queue.fail("test", [http_failure(row.id, exc)])
            continue
        if crash_after is not None and ran == crash_after:
            return ran  # queried, never recorded: the lease is left to expire
        await add_images(
            engine,
            row.campaign_id,
            "flickr",
            expansion.query,
            expansion.images,
            max_attempts=MAX_ATTEMPTS,
        )
        await upsert_licenses(engine, "flickr", expansion.licenses)
        await enqueue_tasks(
            engine, row.campaign_id, expansion.follow_up, default_max_attempts=MAX_ATTEMPTS
        )
        await queue.finish("test", [Outcome(row.id, "done", {"result": expansion.result})])
        ran += 1


async def _queued(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        count = select(func.count()).select_from(Task).where(Task.state == "queued")
        return int((await db.execute(count)).scalar_one())


def expected_hits(
    emu: RunningEmulator, queries: Sequence[str], negatives: set[str], start: int, end: int
) -> set[tuple[str, str]]:
    return {
        (p.id, q) for q in queries for p in truth(emu, q, start, end) if not negatives & p.tokens
    }


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_the_chain_stores_every_matching_photo_once_within_the_key_rate(
    emu: RunningEmulator, http: RecordingHttp, sqlite_engine: AsyncEngine
) -> None:
    engine, queries, negatives = sqlite_engine, ("sunset", "castle", "lighthouse"), {"tokyo"}
    campaign = FlickrCampaign(
        "multi", queries, ("Tokyo",), min_upload=date(2019, 1, 1), max_upload=END
    )
    report = await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
    assert report.tasks_added == 4
    await run_chain(engine, make_source(http, emu))
    start, end = ts(2019), ts(2024)
    want = expected_hits(emu, queries, negatives, start, end)
    async with engine.connect() as db:
        rows = (await db.execute(select(Image.provider_id, Image.skip_reason))).all()
        hits = (
            await db.execute(select(Image.provider_id, ImageHit.query).join_from(ImageHit, Image))
        ).all()
        shards = (
            await db.execute(
                select(func.count()).select_from(Image).group_by(Image.group_name, Image.shard)
            )
        ).scalars()
        tasks = (await db.execute(select(Task.state, Task.payload))).all()
        licences = (await db.execute(select(func.count()).select_from(License))).scalar_one()
    ids = [r.provider_id for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == {pid for pid, _ in want}
    assert {(h.provider_id, h.query) for h in hits} == want
    assert max(shards) <= 1000 and licences == 17
    assert all(state == "done" for state, _ in tasks)
    assert {p["end"] for _, p in tasks if "end" in p} >= {ts(2024)}
    photos = emu.world.flickr_by_id
    small = {
        pid
        for pid in ids
        if not photos[pid].has_large and min(photos[pid].o_width, photos[pid].o_height) < 500
    }
    assert {r.provider_id for r in rows if r.skip_reason} == small
    assert NO_URL not in {r.skip_reason for r in rows}
    stats = await key_stats(emu)
    assert stats["status_429"] == 0 and stats["max_1s"] <= RATE + 1


FLAWED = {
    "blank_total": Warts(flickr_blank_total_share=1.0),
    "empty_page": Warts(flickr_empty_page_share=1.0),
    # ~400 photos a window counted as ~800: pages 3 and 4 of 250 list nothing, every time.
    "overcount": Warts(flickr_total_overcount=400),
}


@pytest.mark.parametrize("flaw", sorted(FLAWED))
async def test_a_flawed_search_answer_never_leaves_a_window_short_of_its_ground_truth(
    sqlite_engine: AsyncEngine, flaw: str
) -> None:
    """Flickr's blank total (stat ok, `"total": ""`, pages 0, no photos: flickrapi #109) is a
    bad answer, not a window's end: its task fails as `bad_response` and is retried after its
    back-off. A page answered empty before the last is asked again; one that stays empty with
    the last page empty too is a total that counted photos no page lists: the window ends
    there, read whole, on its first try, and the query's chain goes on."""
    config = EmulatorConfig(flickr_keys=frozenset({KEY}), warts=FLAWED[flaw], world=PLAIN)
    emu = await start_emulator(config)
    try:
        campaign = FlickrCampaign(
            "flawed", ("sunset",), min_upload=date(2021, 1, 1), max_upload=END
        )
        await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
        async with RecordingHttp() as http:
            await run_chain(sqlite_engine, make_source(http, emu, rate=1000), retry=True)
        async with sqlite_engine.connect() as db:
            hits = (
                await db.execute(
                    select(Image.provider_id, ImageHit.query).join_from(ImageHit, Image)
                )
            ).all()
            tasks = (
                await db.execute(
                    select(Task.state, Task.attempts, Task.payload, Task.result).where(
                        Task.kind == "flickr_window"
                    )
                )
            ).all()
        want = expected_hits(emu, ("sunset",), set(), ts(2021), ts(2024))
        assert {(h.provider_id, h.query) for h in hits} == want
        assert {t.state for t in tasks} == {"done"}
        assert max(t.payload["end"] for t in tasks) == ts(2024)
        reads = [t for t in tasks if t.result["action"] == "read"]
        for t in reads:
            window = truth(emu, "sunset", t.payload["start"], t.payload["end"])
            assert t.result["found"] == len(window), t.payload
        retried = [t for t in reads if t.attempts > 1]
        asked = Counter(http.searches)
        if flaw == "blank_total":
            assert retried
        else:
            assert not retried and max(asked.values()) == 2  # an empty page asked twice
        ended = [t for t in reads if t.result.get("short_ends")]
        assert bool(ended) == (flaw == "overcount")
        assert not any(t.result.get("holes") for t in reads)
    finally:
        await emu.close()


async def test_a_hole_in_a_window_is_retried_and_passed_over_on_the_last_try(
    sqlite_engine: AsyncEngine,
) -> None:
    """A page that stays empty while the last page lists photos is a hole: `bad_response`
    on every try but the task's last, which reads the pages around it and says so in its
    result, so the query's next windows are still asked."""
    config = EmulatorConfig(flickr_keys=frozenset({KEY}), world=PLAIN)
    emu = await start_emulator(config)
    try:
        campaign = FlickrCampaign("holed", ("sunset",), min_upload=date(2021, 1, 1), max_upload=END)
        await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
        async with HoledHttp(page=1) as http:
            await run_chain(sqlite_engine, make_source(http, emu, rate=1000), retry=True)
        async with sqlite_engine.connect() as db:
            tasks = (
                await db.execute(
                    select(
                        Task.state, Task.attempts, Task.max_attempts, Task.payload, Task.result
                    ).where(Task.kind == "flickr_window")
                )
            ).all()
        assert {t.state for t in tasks} == {"done"}
        assert max(t.payload["end"] for t in tasks) == ts(2024)
        holed = [t for t in tasks if t.result.get("holes")]
        assert holed and all(t.attempts == t.max_attempts for t in holed)
        for t in holed:
            window = truth(emu, "sunset", t.payload["start"], t.payload["end"])
            assert t.result["found"] == len(window) - 250, t.payload  # page 1 never listed
        assert all(t.attempts == 1 for t in tasks if not t.result.get("holes"))
    finally:
        await emu.close()


class HoledHttp(RecordingHttp):
    """The real client, but page `page` of every search with more pages comes back empty."""

    def __init__(self, page: int) -> None:
        super().__init__()
        self.page = page

    async def get_text(
        self, url: str, *, params: Mapping[str, str] | None = None, **options: Any
    ) -> str:
        text = await super().get_text(url, params=params, **options)
        if not params or params.get("method") != "flickr.photos.search":
            return text
        body = json.loads(text)
        if int(params["page"]) == self.page and body["photos"]["pages"] > self.page:
            body["photos"]["photo"] = []
        return json.dumps(body)


async def test_a_campaign_from_the_epoch_asks_its_first_window_from_one_second_after(
    emu: RunningEmulator, sqlite_engine: AsyncEngine
) -> None:
    """min_upload_date=0 is no limit to Flickr (its PHP reads "0" as not given), and a geo
    query with no limit sees only the last 12 hours: the first window asks from 1."""
    emu.state.config.flickr_rate_per_s = None
    campaign = FlickrCampaign(
        "epoch", ("sunset",), min_upload=date(1970, 1, 1), max_upload=date(2009, 12, 31)
    )
    await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
    async with RecordingHttp() as http:
        await run_chain(sqlite_engine, make_source(http, emu, rate=1000))
    assert min(start for _, start, _, _ in http.searches) == 1
    async with sqlite_engine.connect() as db:
        hits = (
            await db.execute(select(Image.provider_id, ImageHit.query).join_from(ImageHit, Image))
        ).all()
    want = expected_hits(emu, ("sunset",), set(), 1, ts(2010))
    assert want and {(h.provider_id, h.query) for h in hits} == want


async def test_a_rerun_after_a_crash_does_not_query_finished_windows(
    emu: RunningEmulator, engine: AsyncEngine
) -> None:
    emu.state.config.flickr_rate_per_s = None
    queries = ("castle", "bridge")
    campaign = FlickrCampaign("crashy", queries, min_upload=date(2016, 1, 1), max_upload=END)
    async with RecordingHttp() as first:
        await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        await run_chain(engine, make_source(first, emu, rate=1000), crash_after=6)
    async with engine.connect() as db:
        done = {
            (p["query"], p["start"], p["end"])
            for p in (await db.execute(select(Task.payload).where(Task.state == "done"))).scalars()
            if "query" in p
        }
    assert len(done) >= 4
    async with RecordingHttp() as second:
        again = await submit_flickr(engine, campaign, max_attempts=MAX_ATTEMPTS)
        assert again.tasks_added == 0
        later = datetime.now(UTC) + timedelta(minutes=5)  # the dead worker's lease is over
        await run_chain(engine, make_source(second, emu, rate=1000), now=later)
    assert not {(q, s, e) for q, s, e, _ in second.searches} & done
    start, end = ts(2016), ts(2024)
    async with engine.connect() as db:
        hits = (
            await db.execute(select(Image.provider_id, ImageHit.query).join_from(ImageHit, Image))
        ).all()
        states = set((await db.execute(select(Task.state))).scalars())
    assert {(h.provider_id, h.query) for h in hits} == expected_hits(
        emu, queries, set(), start, end
    )
    assert states == {"done"}


async def test_resubmitting_a_campaign_adds_no_tasks(
    emu: RunningEmulator, sqlite_engine: AsyncEngine
) -> None:
    campaign = FlickrCampaign("again", ("bridge", "castle"), max_upload=END)
    first = await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
    second = await submit_flickr(sqlite_engine, campaign, max_attempts=MAX_ATTEMPTS)
    assert first.tasks_added == 3 and second.tasks_added == 0
    assert first.campaign_id == second.campaign_id
    settings = (await campaign_settings(sqlite_engine))[first.campaign_id]
    assert (settings["max_side"], settings["min_side"], settings["quality"]) == (1024, 500, 90)


async def test_resubmitting_on_a_later_day_keeps_the_first_windows(
    sqlite_engine: AsyncEngine,
) -> None:
    campaign = FlickrCampaign("recent", ("bridge",), min_upload=date(2023, 12, 20))
    first = await submit_flickr(
        sqlite_engine, campaign, today=date(2023, 12, 31), max_attempts=MAX_ATTEMPTS
    )
    later = await submit_flickr(
        sqlite_engine, campaign, today=date(2024, 1, 9), max_attempts=MAX_ATTEMPTS
    )
    assert first.tasks_added == 2 and later.tasks_added == 0
    assert later.detail["upload_range"] == ["2023-12-20", "2023-12-31"]

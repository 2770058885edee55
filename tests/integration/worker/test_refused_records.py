"""A value the database refuses is no outage: the row holding it fails alone, as bad_record,
and the daemon neither tries it for ever (PostgreSQL refused the whole batch of outcomes
at each try) nor stops (SQLite's driver raised outside SQLAlchemy), while every other row
is recorded. Text quoting a server's answer is made storable first; an outage met while a
task is expanded is still waited out."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from defaults import MAX_ATTEMPTS
from local_server import serving
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.migrate import upgrade
from harvester.db.models import Campaign, Image, Task
from harvester.db.session import create_engine
from harvester.emulator import EmulatorConfig, RunningEmulator, start_emulator
from harvester.errors import DatabaseUnavailable
from harvester.outcomes import Failure, Outcome, Result
from harvester.sources.flickr import FlickrCampaign, submit_flickr
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker import jobs
from harvester.worker.context import Context, open_context
from harvester.worker.daemon import Daemon, run_daemon

KEY = "flickr-refused-key-0123456789"
# JSON's "\ud800" decodes to a lone surrogate, which neither driver can encode.
SURROGATE = "\ud800"
WINTER = {"min_upload": date(2023, 1, 1), "max_upload": date(2023, 3, 31)}


async def _tasks(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(Task).order_by(Task.id))).all())


@pytest.fixture
async def flickr_quoting_a_surrogate() -> AsyncIterator[str]:
    """A Flickr API whose search fails with a message holding a lone surrogate (an invalid
    key when the text is "refused key"); its licences answer as usual."""

    async def rest(request: web.Request) -> web.Response:
        if request.query.get("method") == "flickr.photos.licenses.getInfo":
            rows = [{"id": "4", "name": "Attribution License", "url": ""}]
            return web.json_response({"licenses": {"license": rows}, "stat": "ok"})
        code = 100 if request.query.get("text") == "refused key" else 2  # 100: invalid key
        return web.json_response({"stat": "fail", "code": code, "message": f"No {SURROGATE}"})

    app = web.Application()
    app.router.add_get("/services/rest/", rest)
    async with serving(app) as base_url:
        yield f"{base_url}/services/rest/"


async def _search(engine: AsyncEngine, settings: Any, query: str) -> list[Any]:
    """The tasks of a Flickr campaign for `query`, once a daemon has done all it could."""
    await submit_flickr(
        engine, FlickrCampaign(query, (query,), **WINTER), max_attempts=MAX_ATTEMPTS
    )
    await asyncio.wait_for(run_daemon(settings, until_idle=True), 60)
    return await _tasks(engine)


async def test_a_task_failure_quoting_a_lone_surrogate_is_stored_with_its_reason(
    database_url: str, engine: AsyncEngine, quick_settings: Any, flickr_quoting_a_surrogate: str
) -> None:
    settings = quick_settings(
        database_url, flickr_api_url=flickr_quoting_a_surrogate, flickr_api_key=KEY
    )
    tasks = await _search(engine, settings, "glacier")
    assert [(t.kind, t.state, t.reason) for t in tasks] == [
        ("flickr_licenses", "done", None),
        ("flickr_window", "failed", "query_refused"),  # Flickr code 2: unknown user
    ], [(t.kind, t.state, t.reason, t.last_error) for t in tasks]
    assert "Flickr error 2: No \ufffd" in tasks[1].last_error


async def test_a_key_refused_with_a_lone_surrogate_pauses_its_campaign(
    database_url: str, engine: AsyncEngine, quick_settings: Any, flickr_quoting_a_surrogate: str
) -> None:
    settings = quick_settings(
        database_url, flickr_api_url=flickr_quoting_a_surrogate, flickr_api_key=KEY
    )
    windows = [
        t for t in await _search(engine, settings, "refused key") if t.kind != "flickr_licenses"
    ]
    assert [(t.state, t.reason) for t in windows] == [("failed", "invalid_key")]
    async with engine.connect() as connection:
        paused = (
            await connection.execute(select(Campaign.paused_reason, Campaign.paused_message))
        ).all()
    assert [reason for reason, _ in paused] == ["invalid_key"]
    assert "No \ufffd" in paused[0][1]


async def test_image_outcomes_no_database_stores_fail_those_images_alone_as_bad_record(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
) -> None:
    listing = tmp_path / "list.csv"
    rows = emulator.world.url_list(8, base_url=emulator.base_url, hostile=False)
    with listing.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["url", "id"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    await submit_urls(engine, UrlCampaign("refused", listing), max_attempts=MAX_ATTEMPTS)
    failing, oversized = rows[2]["id"], rows[5]["id"]

    async with open_context(quick_settings(database_url), engine) as ctx:
        daemon = Daemon(ctx, until_idle=True)
        run_image = daemon.images.runner

        async def poisoned(ctx: Context, row: Any) -> Result:
            result = await run_image(ctx, row)
            if row.provider_id.endswith(f":{failing}"):
                return Failure(row.id, "gone", retryable=False, reason=f"http_{SURROGATE}")
            if row.provider_id.endswith(f":{oversized}") and isinstance(result, Outcome):
                return Outcome(row.id, result.state, {**result.values, "bytes": 2**70})
            return result

        daemon.images.runner = poisoned
        counters = await asyncio.wait_for(daemon.run(), 60)

    async with engine.connect() as connection:
        images = (await connection.execute(select(Image).order_by(Image.id))).all()
    states = {r.provider_id.rpartition(":")[2]: (r.state, r.reason) for r in images}
    assert states.pop(failing) == ("failed", "bad_record")
    assert states.pop(oversized) == ("failed", "bad_record")
    assert set(states.values()) == {("stored", None)}, states
    # The progress counts say what the database recorded, not what the jobs ended with.
    shown = counters.as_dict()
    assert (shown["images_stored"], shown["images_failed"]) == (len(states), 2), shown


async def test_found_images_no_database_stores_fail_that_task_alone_as_bad_record(
    postgres_url: str, quick_settings: Any
) -> None:
    """A Flickr query over 500 characters: image_hits.query, varchar(500), cannot hold it."""
    emulator = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY})))
    settings = quick_settings(
        postgres_url, flickr_api_url=emulator.flickr_api_url, flickr_api_key=KEY
    )
    long_query = "glacier " + " ".join(f"-not{i}" for i in range(100))
    engine = create_engine(postgres_url)
    try:
        await upgrade(engine)
        await submit_flickr(
            engine,
            FlickrCampaign("long", (long_query, "waterfall"), **WINTER),
            max_attempts=MAX_ATTEMPTS,
        )
        await asyncio.wait_for(run_daemon(settings, until_idle=True), 60)
        tasks = await _tasks(engine)
    finally:
        await engine.dispose()
        await emulator.close()
    windows = {t.payload["query"]: t for t in tasks if t.kind == "flickr_window"}
    refused = windows.pop(long_query)
    assert (refused.state, refused.reason, refused.retryable) == ("failed", "bad_record", False)
    assert "too long" in refused.last_error
    assert {t.state for t in windows.values()} == {"done"}


async def test_an_outage_while_a_task_expands_is_waited_out_not_a_failure(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    quick_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = await start_emulator(EmulatorConfig(flickr_keys=frozenset({KEY})))
    settings = quick_settings(
        sqlite_url, flickr_api_url=emulator.flickr_api_url, flickr_api_key=KEY
    )
    add_images = jobs.add_images
    outages: list[bool] = []

    async def cut_once(*args: Any, **kwargs: Any) -> Any:
        if not outages:
            outages.append(True)
            cut = OperationalError("INSERT INTO images", {}, ConnectionRefusedError(111))
            raise DatabaseUnavailable(str(cut)) from cut  # as harvester.db wraps it
        return await add_images(*args, **kwargs)

    monkeypatch.setattr(jobs, "add_images", cut_once)
    try:
        await submit_flickr(
            sqlite_engine,
            FlickrCampaign("outage", ("glacier",), **WINTER),
            max_attempts=MAX_ATTEMPTS,
        )
        await asyncio.wait_for(run_daemon(settings, until_idle=True), 60)
    finally:
        await emulator.close()
    assert outages
    assert {(t.state, t.reason) for t in await _tasks(sqlite_engine)} == {("done", None)}

"""JSON columns hold what either database can store, whichever statement writes them.

A lone surrogate (a file name's undecodable byte, JSON's "\\udc00") is escaped by the
JSON encoder, which SQLite stores and PostgreSQL's jsonb refuses with a long DBAPIError;
jsonb also refuses "\\u0000" and NaN. Each is cleaned as it is bound, on both alike.
"""

from __future__ import annotations

import math

from defaults import MAX_ATTEMPTS
from sqlalchemy import JSON, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import Base, Campaign, ImageHit, Task
from harvester.db.queue import Outcome, Queue
from harvester.db.storable import StorableJson
from harvester.records import FoundImage, NewTask

HOSTILE = {"file\udcff.csv": ["a\x00b", "\ud800", math.nan], "n": math.inf}
CLEANED = {"file\ufffd.csv": ["ab", "\ufffd", None], "n": None}


async def test_a_campaign_whose_settings_hold_a_lone_surrogate_is_the_same_when_resubmitted(
    engine: AsyncEngine,
) -> None:
    settings = {"source_file": "list\udcff.csv", "sequences": ["s\udcff"]}
    campaign = await ensure_campaign(engine, "c", "mapillary", settings)
    assert await ensure_campaign(engine, "c", "mapillary", settings) == campaign
    async with engine.connect() as connection:
        stored = (await connection.execute(select(Campaign.settings))).scalar_one()
    assert stored == {"source_file": "list\ufffd.csv", "sequences": ["s\ufffd"]}


def test_every_json_column_is_storable_json() -> None:
    kinds = {
        f"{table.name}.{column.name}": column.type
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON)
    }
    assert len(kinds) == 6, sorted(kinds)  # settings, payload, result, frame, raw, detail
    assert [name for name, kind in kinds.items() if not isinstance(kind, StorableJson)] == []


async def test_json_written_by_insert_update_and_an_outcome_batch_is_cleaned_alike(
    engine: AsyncEngine,
) -> None:
    campaign = await ensure_campaign(engine, "c", "urls", {"x": HOSTILE})
    async with engine.begin() as connection:
        await connection.execute(update(Campaign).values(settings={"y": HOSTILE}))
    await enqueue_tasks(
        engine, campaign, [NewTask("probe", "k", HOSTILE)], default_max_attempts=MAX_ATTEMPTS
    )
    found = FoundImage("1", "g", "1.jpg", "http://cdn/1.jpg", hit_detail=HOSTILE)
    await add_images(engine, campaign, "urls", "q", [found], max_attempts=MAX_ATTEMPTS)
    queue = Queue(engine, Task)
    (task,) = await queue.claim("a", 1, 30)
    # On PostgreSQL one statement of arrays, jsonb[] among them; on SQLite an executemany.
    assert await queue.finish("a", [Outcome(task.id, "done", {"result": HOSTILE})]) == {
        task.id: "done"
    }
    async with engine.connect() as connection:
        settings = (await connection.execute(select(Campaign.settings))).scalar_one()
        row = (await connection.execute(select(Task.payload, Task.result))).one()
        detail = (await connection.execute(select(ImageHit.detail))).scalar_one()
    assert settings == {"y": CLEANED}
    assert (row.payload, row.result, detail) == (CLEANED, CLEANED, CLEANED)


async def test_a_none_in_a_json_column_is_json_null_as_before(engine: AsyncEngine) -> None:
    campaign = await ensure_campaign(engine, "c", "urls", {})
    await enqueue_tasks(
        engine, campaign, [NewTask("probe", "k")], default_max_attempts=MAX_ATTEMPTS
    )
    queue = Queue(engine, Task)
    (task,) = await queue.claim("a", 1, 30)
    await queue.finish("a", [Outcome(task.id, "done", {"result": None})])
    async with engine.connect() as connection:
        is_null = select(Task.result.is_(None)).where(Task.id == task.id)
        assert (
            await connection.execute(is_null)
        ).scalar_one() is False  # JSON null, not SQL NULL: what `result` held before it was typed

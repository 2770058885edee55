"""Claims while a campaign is paused: only the others' rows, oldest due first, and on
PostgreSQL at a cost that does not grow with the paused campaign's queued rows (counted in
index entries read, not in milliseconds: the machine may be shared)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from defaults import MAX_ATTEMPTS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign, pause_campaign
from harvester.db.enqueue import enqueue_tasks
from harvester.db.migrate import upgrade
from harvester.db.models import Task
from harvester.db.queue import Queue
from harvester.db.session import create_engine
from harvester.records import NewTask

# Queued rows of campaign :c, all due :age ago (the paused one's are older: due sooner).
FILL = """
INSERT INTO tasks (campaign_id, kind, payload, state, dedupe_key, attempts, max_attempts,
                   not_before, created_at, updated_at)
SELECT CAST(:c AS bigint), 'probe', '{}', 'queued', 'c' || CAST(:c AS text) || ':' || g, 0, 3,
       now() - CAST(:age AS interval), now(), now()
FROM generate_series(1, :n) g
"""


async def test_a_claim_takes_only_campaigns_not_paused_oldest_due_first(engine: AsyncEngine):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    paused = await ensure_campaign(engine, "paused", "flickr", {})
    running = await ensure_campaign(engine, "running", "flickr", {})
    other = await ensure_campaign(engine, "other", "flickr", {})
    for campaign, offset in ((paused, 0), (running, 10), (other, 5)):
        tasks = [NewTask("probe", f"{campaign}:{i}", {"i": i}) for i in range(4)]
        await enqueue_tasks(
            engine,
            campaign,
            tasks,
            now=start + timedelta(seconds=offset),
            default_max_attempts=MAX_ATTEMPTS,
        )
    await pause_campaign(engine, "paused")
    queue = Queue(engine, Task, clock=lambda: start + timedelta(hours=1))

    first = await queue.claim("w", 6, 60)
    rest = await queue.claim("w", 6, 60)

    assert Counter(row.campaign_id for row in first) == {other: 4, running: 2}
    assert Counter(row.campaign_id for row in rest) == {running: 2}
    assert await queue.claim("w", 6, 60) == []


async def _fill(url: str, paused_rows: int) -> None:
    """A paused campaign holding ``paused_rows`` queued rows due before 1,000 of a running one."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE campaigns, tasks CASCADE"))
            for c, name, paused_at in ((1, "paused", "now()"), (2, "running", "NULL")):
                await connection.execute(
                    text(
                        "INSERT INTO campaigns (id, name, provider, settings, created_at, "
                        f"paused_at) VALUES ({c}, '{name}', 'flickr', '{{}}', now(), {paused_at})"
                    )
                )
            await connection.execute(
                text(FILL), {"c": 1, "n": paused_rows, "age": timedelta(hours=2)}
            )
            await connection.execute(text(FILL), {"c": 2, "n": 1000, "age": timedelta(hours=1)})
            await connection.execute(text("ANALYZE tasks"))
    finally:
        await engine.dispose()


async def _entries_read(url: str) -> int:
    """Index entries read on `tasks` so far, as the statistics collector counts them."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname = 'tasks'")
            )
            return int(found.scalar_one() or 0)
    finally:
        await engine.dispose()


async def _claim_reads(url: str, paused_rows: int) -> int:
    """Index entries one real claim of 100 rows reads with that paused campaign."""
    await _fill(url, paused_rows)
    before = await _entries_read(url)
    engine = create_engine(url)
    try:
        rows = await Queue(engine, Task).claim("w", 100, 60)
    finally:
        await engine.dispose()  # its server process ends and hands its counts in
    assert [row.campaign_id for row in rows] == [2] * 100
    async with asyncio.timeout(30):  # the counts arrive after the connection closes
        while (after := await _entries_read(url)) == before:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
    return after - before


async def test_a_paused_campaigns_queued_rows_cost_a_claim_nothing_on_postgres(
    postgres_url: str,
):
    engine = create_engine(postgres_url)
    await upgrade(engine)
    await engine.dispose()
    few = await _claim_reads(postgres_url, 2_000)
    many = await _claim_reads(postgres_url, 40_000)
    # Filtering the paused campaign out of one index scan reads each of its queued rows.
    assert many < 1_000 and few < 1_000, (few, many)

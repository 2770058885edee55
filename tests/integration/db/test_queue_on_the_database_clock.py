"""The image queue on the clock daemons use (PostgreSQL's own, the host's on SQLite): the
claim that sees an expired lease takes its rows back in the same call, and outcomes
set only the columns they name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.models import Image, ImageState
from harvester.db.queue import Failure, Outcome, Queue
from harvester.records import FoundImage


async def _rows(engine: AsyncEngine) -> dict[int, Any]:
    async with engine.connect() as connection:
        return {row.id: row for row in await connection.execute(select(Image))}


async def test_a_dead_owners_image_rows_come_back_in_the_next_claim_and_outcomes_keep_the_rest(
    engine: AsyncEngine,
):
    campaign = await ensure_campaign(engine, "c", "urls", {})
    found = [
        FoundImage(f"p{i}", "g", f"{i}.jpg", f"https://example.org/{i}.jpg", {"owner": "ann"})
        for i in range(4)
    ]
    await add_images(engine, campaign, "urls", "q", found)
    queue = Queue(engine, Image)
    held = await queue.claim("dead", 3, 300)
    assert [(r.lease_owner, r.owner, r.attempts) for r in held] == [("dead", "ann", 1)] * 3
    assert await queue.expire_leases_of(["dead"]) == 3

    taken = await queue.claim("alive", 10, 300)

    assert len(taken) == 4 and queue.rescued == 3
    assert {r.id: r.attempts for r in taken} == {
        r.id: 2 if r.id in {h.id for h in held} else 1 for r in taken
    }
    assert {(r.lease_owner, r.owner, r.state) for r in taken} == {("alive", "ann", "running")}
    stored, skipped, gone, slow = (r.id for r in taken)
    await queue.finish(
        "alive",
        [
            Outcome(stored, ImageState.STORED, {"bytes": 10}),
            Outcome(skipped, ImageState.SKIPPED, {"skip_reason": "small", "reason": "small"}),
        ],
    )
    await queue.fail(
        "alive",
        [
            Failure(gone, "HTTP 404", retryable=False, reason="http_404"),
            Failure(slow, "timed out", retryable=True, reason="timeout"),
        ],
    )
    assert await queue.claim("late", 10, 300) == []  # the retry is backed off
    rows = await _rows(engine)
    assert (rows[stored].state, rows[stored].bytes) == ("stored", 10)
    assert (rows[skipped].state, rows[skipped].reason) == ("skipped", "small")
    assert (rows[gone].state, rows[gone].reason) == ("failed", "http_404")
    assert (rows[slow].state, rows[slow].reason) == ("queued", "timeout")
    for row_id in (stored, skipped, gone):
        row = rows[row_id]
        assert (row.finished_by, row.lease_owner, row.owner) == ("alive", None, "ann")
        assert row.finished_at is not None and row.updated_at >= row.finished_at
    assert rows[slow].finished_at is None and rows[slow].not_before > rows[slow].updated_at

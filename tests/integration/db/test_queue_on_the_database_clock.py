"""The image queue on the clock daemons use (PostgreSQL's own, the host's on SQLite): the
claim that sees an expired lease takes its rows back in the same call, and outcomes
set only the columns they name, also when the rows of a batch name different ones (on
PostgreSQL one statement for the batch)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from defaults import MAX_ATTEMPTS
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.models import Image, ImageState
from harvester.db.queue import Failure, Outcome, Queue
from harvester.records import FoundImage


async def _rows(engine: AsyncEngine) -> dict[int, Any]:
    async with engine.connect() as connection:
        return {row.id: row for row in await connection.execute(select(Image))}


async def add_owned_images(engine: AsyncEngine, n: int) -> None:
    """n queued image rows of a URL-list campaign, each owned by "ann"."""
    campaign = await ensure_campaign(engine, "c", "urls", {})
    found = [
        FoundImage(f"p{i}", "g", f"{i}.jpg", f"https://example.org/{i}.jpg", {"owner": "ann"})
        for i in range(n)
    ]
    await add_images(engine, campaign, "urls", "q", found, max_attempts=MAX_ATTEMPTS)


async def test_a_dead_owners_image_rows_come_back_in_the_next_claim_and_outcomes_keep_the_rest(
    engine: AsyncEngine,
):
    await add_owned_images(engine, 4)
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


STORED = {
    "path": "urls/g/00000/0.jpg",
    "width": 1024,
    "height": 768,
    "source_width": 4000,
    "source_height": 3000,
    "sha256": "a" * 64,
    "phash": "0f" * 8,
    "bytes": 181_000,
    "source_sha256": "b" * 64,
    "frame": {"top": 12, "right": 0, "bottom": 9, "left": 0},
    "last_error": None,
}
CAPTURED = datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)


async def _json_is_sql_null(engine: AsyncEngine) -> dict[int, bool]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(Image.id, Image.frame.is_(None)))
        return {row_id: bool(null) for row_id, null in rows}


async def test_a_batch_of_mixed_outcomes_sets_each_rows_own_columns_and_skips_a_lost_lease(
    engine: AsyncEngine,
):
    await add_owned_images(engine, 8)
    queue = Queue(engine, Image)
    ids = sorted(row.id for row in await queue.claim("w", 8, 300))
    stored, skipped, duplicate, null_frame, partial, lost, gone, later = ids
    async with engine.begin() as connection:
        await connection.execute(
            update(Image)
            .where(Image.id == partial)
            .values(frame={"old": [1, 2]}, title="kept", skip_reason="earlier")
        )
        await connection.execute(  # another daemon holds it now
            update(Image).where(Image.id == lost).values(lease_owner="other", title="theirs")
        )
    before = await _rows(engine)

    await queue.finish(
        "w",
        [
            Outcome(stored, ImageState.STORED, STORED),
            Outcome(skipped, ImageState.SKIPPED, {"reason": "too_small", "skip_reason": "small"}),
            Outcome(
                duplicate,
                ImageState.SKIPPED,
                {
                    "duplicate_of": stored,
                    "source_sha256": "b" * 64,
                    "reason": "duplicate",
                    "skip_reason": f"identical bytes already stored as image {stored}",
                },
            ),
            Outcome(null_frame, ImageState.STORED, {"bytes": 5, "frame": None, "is_pano": True}),
            Outcome(partial, ImageState.STORED, {"bytes": 7, "captured_at": CAPTURED}),
            Outcome(lost, ImageState.STORED, {"bytes": 99, "frame": {"top": 1}}),
        ],
    )
    left = await queue.fail(
        "w",
        [
            Failure(gone, "HTTP 404", retryable=False, reason="http_404"),
            Failure(later, "timed out", retryable=True, reason="timeout"),
            Failure(lost, "HTTP 500", retryable=False, reason="http_500"),
        ],
    )

    rows = await _rows(engine)
    assert left == {gone: "failed", later: "queued"}
    assert rows[lost] == before[lost]  # every column as the other daemon left it
    assert {k: getattr(rows[stored], k) for k in STORED} == STORED
    assert (rows[stored].state, rows[stored].reason, rows[stored].retryable) == (
        "stored",
        None,
        None,
    )
    assert (rows[skipped].state, rows[skipped].reason, rows[skipped].skip_reason) == (
        "skipped",
        "too_small",
        "small",
    )
    assert (rows[skipped].path, rows[skipped].frame, rows[skipped].bytes) == (None, None, None)
    assert (rows[duplicate].duplicate_of, rows[duplicate].source_sha256) == (stored, "b" * 64)
    assert (rows[duplicate].reason, rows[duplicate].state) == ("duplicate", "skipped")
    assert (rows[null_frame].bytes, rows[null_frame].frame, rows[null_frame].is_pano) == (
        5,
        None,
        True,
    )
    assert (rows[partial].bytes, rows[partial].captured_at) == (7, CAPTURED)
    assert (rows[partial].frame, rows[partial].title, rows[partial].skip_reason) == (
        {"old": [1, 2]},
        "kept",
        "earlier",
    )
    # A None given to a JSON column is stored as JSON null (as one UPDATE a row stored it);
    # a column no outcome named stays SQL NULL.
    nulls = await _json_is_sql_null(engine)
    assert (nulls[null_frame], nulls[skipped], nulls[stored]) == (False, True, False)
    assert (rows[gone].state, rows[gone].reason, rows[gone].last_error) == (
        "failed",
        "http_404",
        "HTTP 404",
    )
    assert (rows[later].state, rows[later].reason, rows[later].finished_at) == (
        "queued",
        "timeout",
        None,
    )
    for row_id in (stored, skipped, duplicate, null_frame, partial, gone):
        row = rows[row_id]
        assert (row.finished_by, row.lease_owner, row.lease_expires_at) == ("w", None, None)
        assert row.finished_at is not None and row.updated_at == row.finished_at
        assert (row.owner, row.source_url) == ("ann", before[row_id].source_url)


async def test_a_batch_whose_rows_all_set_a_json_column_to_none_stores_json_null(
    engine: AsyncEngine,
):
    # Columns NULL in every row of a batch are set to NULL in the statement, not sent as
    # arrays: a JSON column's None must still be JSON null, as when rows differ.
    await add_owned_images(engine, 2)
    queue = Queue(engine, Image)
    ids = [row.id for row in await queue.claim("w", 2, 300)]

    await queue.finish("w", [Outcome(i, ImageState.STORED, {"frame": None}) for i in ids])

    assert await _json_is_sql_null(engine) == {i: False for i in ids}
    rows = await _rows(engine)
    assert {(rows[i].lease_owner, rows[i].lease_expires_at, rows[i].reason) for i in ids} == {
        (None, None, None)
    }


async def test_claimed_times_are_aware_utc_whatever_the_sessions_time_zone(
    engine: AsyncEngine,
):
    # On asyncpg the times are taken as the driver gives them, with no conversion of ours.
    await add_owned_images(engine, 1)
    (claimed,) = await Queue(engine, Image).claim("w", 1, 300)
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET TIME ZONE 'Asia/Kolkata'")
        (row,) = await connection.execute(select(Image).where(Image.id == claimed.id))
    for moment in (claimed.lease_expires_at, row.created_at, row.lease_expires_at):
        assert moment is not None and moment.tzinfo is UTC
    assert row.lease_expires_at == claimed.lease_expires_at


async def test_outcome_text_a_database_refuses_is_stored_cleaned_from_one_batch(
    engine: AsyncEngine,
):
    # On PostgreSQL a batch's values go as one array a column, typed as the column is: the
    # column's type cleans each value in it, as it does a value bound alone.
    await add_owned_images(engine, 2)
    queue = Queue(engine, Image)
    skipped, failed = sorted(row.id for row in await queue.claim("w", 2, 300))
    why = {"reason": "too_small", "skip_reason": "too_small: \x00\ud800 320x240"}
    await queue.finish("w", [Outcome(skipped, ImageState.SKIPPED, why)])
    await queue.fail("w", [Failure(failed, "HTTP 500: \x00\udcff", retryable=False)])

    rows = await _rows(engine)
    assert (rows[skipped].state, rows[skipped].skip_reason) == (
        "skipped",
        "too_small: \ufffd 320x240",
    )
    assert (rows[failed].state, rows[failed].last_error) == ("failed", "HTTP 500: \ufffd")

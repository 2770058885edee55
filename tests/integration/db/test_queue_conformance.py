"""The queue's guarantees, proven on a real SQLite file and a real Postgres alike."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign, pause_campaign
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import Image, Task
from harvester.db.queue import Failure, Outcome, Queue, RetryPolicy
from harvester.db.queue_claims import LEASE_LOST
from harvester.db.session import HeldConnection
from harvester.records import NewTask


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _campaign(engine: AsyncEngine) -> int:
    return await ensure_campaign(engine, "c1", "flickr", {})


async def _tasks(engine: AsyncEngine, n: int, clock: FakeClock, max_attempts: int = 3) -> int:
    campaign = await _campaign(engine)
    tasks = [NewTask("probe", f"k{i}", {"i": i}, max_attempts) for i in range(n)]
    return await enqueue_tasks(
        engine, campaign, tasks, now=clock(), default_max_attempts=MAX_ATTEMPTS
    )


async def _row(engine: AsyncEngine, task_id: int) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(select(Task).where(Task.id == task_id))).one()


async def test_enqueue_with_a_known_dedupe_key_is_a_no_op(engine: AsyncEngine, clock: FakeClock):
    assert await _tasks(engine, 3, clock) == 3
    assert await _tasks(engine, 3, clock) == 0
    async with engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(Task))).scalar() == 3


async def test_claim_leases_each_row_once_and_counts_the_attempt(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 5, clock)
    queue = Queue(engine, Task, clock=clock)
    first = await queue.claim("a", 3, 30)
    second = await queue.claim("b", 3, 30)
    assert len(first) == 3 and len(second) == 2
    assert not {r.id for r in first} & {r.id for r in second}
    assert all(r.attempts == 1 and r.state == "running" for r in [*first, *second])
    assert all(r.lease_expires_at == clock() + timedelta(seconds=30) for r in first)
    assert await queue.claim("c", 3, 30) == []


async def test_expired_lease_is_reclaimed_by_another_worker(engine: AsyncEngine, clock: FakeClock):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("dead", 1, 10)
    clock.advance(5)
    assert await queue.heartbeat("dead", [row.id], 10) == {row.id}
    clock.advance(9)
    assert await queue.claim("other", 1, 10) == []  # heartbeat kept it alive
    clock.advance(2)
    (again,) = await queue.claim("other", 1, 10)
    assert again.id == row.id and again.attempts == 2 and again.lease_owner == "other"
    assert await queue.heartbeat("dead", [row.id], 10) == set()
    await queue.done("dead", [row.id])  # the old owner's late finish changes nothing
    assert (await _row(engine, row.id)).state == "running"
    await queue.done("other", [row.id])
    assert (await _row(engine, row.id)).state == "done"


async def test_a_finish_returns_only_the_rows_whose_lease_it_still_held(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 2, clock)
    queue = Queue(engine, Task, clock=clock)
    lost, kept = await queue.claim("a", 2, 10)
    clock.advance(5)
    assert await queue.heartbeat("a", [kept.id], 10) == {kept.id}
    clock.advance(6)  # a's lease on `lost` ran out: b takes the row
    assert [r.id for r in await queue.claim("b", 2, 10)] == [lost.id]
    outcomes = [Outcome(lost.id, "done", {"result": {"by": "a"}}), Outcome(kept.id, "done")]
    assert await queue.finish("a", outcomes) == {kept.id: "done"}
    row = await _row(engine, lost.id)
    assert (row.state, row.lease_owner, row.result) == ("running", "b", None)  # not applied
    assert (await _row(engine, kept.id)).state == "done"
    by_b = [Outcome(lost.id, "done", {"result": {"by": "b"}})]
    assert await queue.finish("b", by_b) == {lost.id: "done"}
    row = await _row(engine, lost.id)
    assert (row.state, row.finished_by, row.result) == ("done", "b", {"by": "b"})
    assert await queue.finish("a", outcomes) == {}  # nothing of a's is held any more


async def test_a_failure_of_a_row_taken_over_meanwhile_is_not_counted_by_the_loser(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 2, clock)
    queue = Queue(engine, Task, clock=clock)
    lost, kept = await queue.claim("a", 2, 10)
    failures = [
        Failure(lost.id, "HTTP 503", retryable=True),
        Failure(kept.id, "HTTP 404", retryable=False),
    ]
    async with engine.connect() as other:
        await other.begin()
        # b's claim of `lost` (its lease ran out), not committed yet. On PostgreSQL a reads
        # the row as its own, its UPDATE waits for b's row lock, then finds b's lease; on
        # SQLite a's BEGIN IMMEDIATE waits for b's commit, then a reads b's lease.
        await other.execute(
            update(Task)
            .where(Task.id == lost.id)
            .values(lease_owner="b", attempts=Task.attempts + 1)
        )
        failing = asyncio.create_task(queue.fail("a", failures))
        if engine.dialect.name == "postgresql":
            await _until_a_statement_waits_for_a_lock(engine, failing)
        await other.commit()
    assert await failing == {kept.id: "failed"}  # b's row is b's to count
    row = await _row(engine, lost.id)
    assert (row.state, row.lease_owner, row.attempts, row.last_error) == ("running", "b", 2, None)


async def _until_a_statement_waits_for_a_lock(
    engine: AsyncEngine, running: asyncio.Task[Any]
) -> None:
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(30):
        while not running.done():
            async with engine.connect() as connection:
                if (await connection.execute(waiting)).scalar_one():
                    return
            await asyncio.sleep(0.01)


async def test_claimable_is_true_exactly_when_a_claim_would_lease_a_row(
    engine: AsyncEngine, clock: FakeClock
):
    held = HeldConnection(engine)
    try:
        queue = Queue(engine, Task, clock=clock)
        images = Queue(engine, Image, clock=clock)
        assert not await queue.claimable(held) and not await images.claimable(held)
        await _tasks(engine, 1, clock)
        assert await queue.claimable(held) and not await images.claimable(held)
        (row,) = await queue.claim("w", 1, 10)
        assert not await queue.claimable(held)  # leased, and the lease holds
        clock.advance(11)
        assert await queue.claimable(held)  # the lease ran out: a claim rescues the row
        (again,) = await queue.claim("w2", 1, 10)
        assert again.id == row.id
        await queue.fail("w2", [Failure(row.id, "HTTP 503", retryable=True)])
        assert not await queue.claimable(held)  # backed off: due later
        assert await queue.claim("w3", 1, 10) == []
        clock.advance(86_400)
        assert await queue.claimable(held)
        assert len(await queue.claim("w3", 1, 10)) == 1
        await queue.done("w3", [row.id])
        assert not await queue.claimable(held)
        real = Queue(engine, Task)  # on PostgreSQL the statement reads the database's clock
        assert not await real.claimable(held)
        assert await _tasks(engine, 2, clock) == 1  # due at the fake clock's time, long past
        assert await real.claimable(held)
    finally:
        await held.close()


async def test_lease_expiring_on_the_last_attempt_fails_the_row(
    engine: AsyncEngine, clock: FakeClock
):
    campaign = await _campaign(engine)
    await enqueue_tasks(
        engine,
        campaign,
        [NewTask("probe", "poison", {}, 1)],
        now=clock(),
        default_max_attempts=MAX_ATTEMPTS,
    )
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("w", 1, 10)
    clock.advance(11)
    assert await queue.claim("w2", 1, 10) == []
    failed = await _row(engine, row.id)
    assert failed.state == "failed" and failed.last_error == LEASE_LOST


async def test_retryable_failures_back_off_exponentially_then_fail(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock, max_attempts=3)
    policy = RetryPolicy(base_seconds=10, max_seconds=1000, jitter=0.25)
    queue = Queue(engine, Task, clock=clock, policy=policy, rng=random.Random(1))
    for attempt, base in [(1, 10), (2, 20)]:
        (row,) = await queue.claim("w", 1, 60)
        assert row.attempts == attempt
        await queue.fail("w", [Failure(row.id, "HTTP 503", retryable=True)])
        queued = await _row(engine, row.id)
        wait = (queued.not_before - clock()).total_seconds()
        assert queued.state == "queued" and queued.last_error == "HTTP 503"
        assert base * 0.75 <= wait <= base * 1.25
        clock.advance(wait - 1)
        assert await queue.claim("w", 1, 60) == []  # not before its back-off
        clock.advance(1)
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "HTTP 503", retryable=True)])
    final = await _row(engine, row.id)
    assert final.state == "failed" and final.attempts == 3
    assert final.last_error == "HTTP 503 (gave up after 3 attempts)"


async def test_retry_after_sets_a_floor_on_the_back_off(engine: AsyncEngine, clock: FakeClock):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock, policy=RetryPolicy(base_seconds=1))
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "429", retryable=True, retry_after=300)])
    assert (await _row(engine, row.id)).not_before >= clock() + timedelta(seconds=300)


async def test_a_throttled_failure_defers_its_row_without_spending_an_attempt(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock, max_attempts=2)
    queue = Queue(engine, Task, clock=clock, policy=RetryPolicy(base_seconds=1, max_seconds=8))
    for throttles in range(1, 6):  # more 429s than max_attempts allows failures
        (row,) = await queue.claim("w", 1, 60)
        assert row.attempts == 1  # each throttled try gave its attempt back
        throttled = Failure(row.id, "429", retryable=True, retry_after=120, throttled=True)
        assert await queue.fail("w", [throttled]) == {row.id: "queued"}
        queued = await _row(engine, row.id)
        assert (queued.attempts, queued.throttles) == (0, throttles)
        assert queued.not_before >= clock() + timedelta(seconds=120)  # as long as it asked
        clock.advance(121)
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "HTTP 500", retryable=True)])
    clock.advance(121)
    (row,) = await queue.claim("w", 1, 60)  # a real failure still counts, as before
    await queue.fail("w", [Failure(row.id, "HTTP 500", retryable=True)])
    final = await _row(engine, row.id)
    assert (final.state, final.attempts, final.throttles) == ("failed", 2, 5)


async def test_throttles_have_a_budget_of_their_own_and_a_requeue_restores_it(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock, max_throttles=3)
    for _ in range(3):
        clock.advance(3600)
        (row,) = await queue.claim("w", 1, 60)
        await queue.fail("w", [Failure(row.id, "429", retryable=True, throttled=True)])
    final = await _row(engine, row.id)
    assert (final.state, final.attempts, final.throttles) == ("failed", 0, 3)
    assert final.last_error == "429 (gave up after 3 throttled tries)"
    assert (await queue.requeue(campaign_id=final.campaign_id)).total() == 1
    assert (await _row(engine, row.id)).throttles == 0


async def test_permanent_failure_fails_at_once_with_its_reason(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "HTTP 404 Not Found", retryable=False)])
    final = await _row(engine, row.id)
    assert (final.state, final.last_error, final.attempts) == ("failed", "HTTP 404 Not Found", 1)


async def test_cancel_and_requeue(engine: AsyncEngine, clock: FakeClock):
    await _tasks(engine, 4, clock)
    queue = Queue(engine, Task, clock=clock)
    claimed = await queue.claim("w", 2, 60)
    await queue.fail("w", [Failure(claimed[0].id, "bad", retryable=False)])
    assert await queue.cancel(campaign_id=1) == 3  # one running, two queued
    assert await queue.claim("w", 10, 60) == []
    assert (await queue.requeue(campaign_id=1)).total() == 1
    (again,) = await queue.claim("w", 10, 60)
    assert again.id == claimed[0].id and again.attempts == 1
    # The cancelled row that was running keeps its lease: it may still be at work.
    assert (await queue.requeue(campaign_id=1, in_states=["failed", "cancelled"])).total() == 2
    clock.advance(61)
    assert (await queue.requeue(campaign_id=1, in_states=["failed", "cancelled"])).total() == 1


async def test_release_hands_rows_back_without_spending_an_attempt(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 2, clock)
    queue = Queue(engine, Task, clock=clock)
    rows = await queue.claim("w", 2, 60)
    await queue.release("w", [r.id for r in rows])
    again = await queue.claim("w2", 2, 60)
    assert sorted(r.id for r in again) == sorted(r.id for r in rows)
    assert all(r.attempts == 1 for r in again)


async def test_a_hostile_retry_after_backs_off_without_overflowing(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "429", retryable=True, retry_after=1e300)])
    queued = await _row(engine, row.id)
    assert queued.state == "queued"
    assert queued.not_before <= clock() + timedelta(days=8)


async def test_a_failure_records_its_reason_code_and_is_logged_once_when_final(
    engine: AsyncEngine, clock: FakeClock
):
    from structlog.testing import capture_logs

    await _tasks(engine, 2, clock, max_attempts=1)
    queue = Queue(engine, Task, clock=clock)
    gone, slow = await queue.claim("w", 2, 60)
    with capture_logs() as logs:
        await queue.fail(
            "w",
            [
                Failure(gone.id, "HTTP 404 from x", retryable=False, reason="http_404"),
                Failure(slow.id, "timed out", retryable=True, reason="timeout"),
            ],
        )
    rows = {r.id: r for r in [await _row(engine, gone.id), await _row(engine, slow.id)]}
    assert (rows[gone.id].reason, rows[gone.id].retryable) == ("http_404", False)
    assert (rows[slow.id].reason, rows[slow.id].retryable) == ("timeout", True)
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert sorted((e["task_id"], e["reason"]) for e in failed) == sorted(
        [(gone.id, "http_404"), (slow.id, "timeout")]
    )


async def test_a_requeue_keeps_the_reason_and_counts_itself(engine: AsyncEngine, clock: FakeClock):
    await _tasks(engine, 1, clock)
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("w", 1, 60)
    await queue.fail("w", [Failure(row.id, "HTTP 404", retryable=False, reason="http_404")])
    assert (await queue.requeue(campaign_id=1)).total() == 1
    again = await _row(engine, row.id)
    assert (again.state, again.attempts, again.requeues) == ("queued", 0, 1)
    assert (again.reason, again.last_error) == ("http_404", "HTTP 404")
    await queue.claim("w", 1, 60)
    await queue.done("w", [row.id])
    done = await _row(engine, row.id)
    assert (done.state, done.reason, done.requeues) == ("done", None, 1)


async def test_a_lease_lost_on_the_last_attempt_fails_as_lease_lost(
    engine: AsyncEngine, clock: FakeClock
):
    await _tasks(engine, 1, clock, max_attempts=1)
    queue = Queue(engine, Task, clock=clock)
    (row,) = await queue.claim("w", 1, 60)
    clock.advance(61)
    await queue.claim("w2", 1, 60)
    final = await _row(engine, row.id)
    assert (final.state, final.reason, final.retryable) == ("failed", "lease_lost", True)


async def test_image_rows_are_claimed_rescued_and_kept_from_a_paused_campaign(
    engine: AsyncEngine, clock: FakeClock
):
    paused = await ensure_campaign(engine, "paused", "urls", {})
    running = await ensure_campaign(engine, "running", "urls", {})
    rows = [
        {
            "campaign_id": campaign,
            "provider": "urls",
            "provider_id": f"{campaign}-{i}",
            "group_name": "g",
            "shard": 0,
            "file_name": f"{campaign}-{i}",
            "not_before": clock(),
            "created_at": clock(),
            "updated_at": clock(),
        }
        for campaign in (paused, running)
        for i in range(3)
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(Image), rows)
    queue = Queue(engine, Image, clock=clock)
    (first,) = await queue.claim("dead", 1, 10)  # the oldest: the to-be-paused campaign's
    await pause_campaign(engine, "paused")
    clock.advance(11)  # its lease ran out: rescued, but its campaign is paused now
    claimed = await queue.claim("live", 10, 10)
    assert first.campaign_id == paused and queue.rescued == 1
    assert sorted(r.provider_id for r in claimed) == [f"{running}-{i}" for i in range(3)]
    assert all(r.lease_owner == "live" and r.state == "running" for r in claimed)
    assert all(r.lease_expires_at == clock() + timedelta(seconds=10) for r in claimed)

"""The job queue: claim, lease, heartbeat, finish, fail, over `tasks` and `images` alike.

Delivery is at least once: a row whose worker dies is claimed again once its lease
expires. Effects are made idempotent by the callers (deterministic paths, upserts), so a
row may run more than once but its effect happens once. The statements are in
`queue_claims` (claim, rescue) and `queue_outcomes` (ending leases with their outcomes).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from harvester.backoff import Backoff
from harvester.db.clock import WallClock, shared_now, utcnow
from harvester.db.models import ImageState, QueueModel, Task, TaskState, states_of
from harvester.db.queue_claims import (
    LEASE_LOST,
    LEASE_LOST_REASON,
    PAUSED_CAMPAIGNS,
    claim_template,
    claim_values,
    one_statement_claim,
    one_statement_values,
    rescue_template,
)
from harvester.db.queue_outcomes import (
    AT_DATABASE_NOW,
    ids_written,
    release_batches,
    run_batches,
)
from harvester.db.session import HeldConnection, read_connection, statement_connection, transaction
from harvester.outcomes import Failure as Failure
from harvester.outcomes import Outcome as Outcome

# A claimed row as the worker sees it, the columns `queue_claims.CLAIMED` names (code
# outside db/ does not import SQLAlchemy).
QueueRow = Row[Any]

MAX_WAIT_S = 7 * 86_400.0
# Throttled tries (429s, Retry-Afters) a row may be deferred by in one round. They back off
# as attempts do, so at the default back-off (5 s doubling to an hour) 50 span some 40 hours:
# a server throttling for longer than that is refusing, not asking for time.
MAX_THROTTLES = 50
# -- Could a claim lease a row? A due queued row, or an expired lease (the claim rescues it):
# each half one probe of a partial index (ix_<table>_claimable, ix_<table>_leased).
_CLAIMABLE = (
    "SELECT EXISTS (SELECT 1 FROM {table} WHERE state = 'queued' AND not_before <= {now}) OR "
    "EXISTS (SELECT 1 FROM {table} WHERE state = 'running' AND lease_expires_at < {now})"
)

log = structlog.get_logger("harvester.queue")


class _LeaseLost(Exception):
    """A batch of outcomes not all of whose rows were still held: rolled back."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter, so retries of one outage do not arrive together."""

    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    jitter: float = 0.25

    def delay(self, attempts: int, rng: random.Random) -> float:
        spread = (1 - self.jitter, 1 + self.jitter)
        return Backoff(self.base_seconds, self.max_seconds, spread).delay(attempts, rng)


class Queue:
    """One queue table (tasks or images) seen through the lease protocol."""

    def __init__(
        self,
        engine: AsyncEngine,
        model: QueueModel,
        *,
        clock: WallClock = utcnow,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        max_retry_after_s: float = MAX_WAIT_S,
        max_throttles: int = MAX_THROTTLES,
    ) -> None:
        self.engine = engine
        self.max_retry_after_s = max_retry_after_s
        self.max_throttles = max_throttles
        self.model = model
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.states = states_of(model)
        self._done_state = TaskState.DONE if model is Task else ImageState.STORED
        self.rescued = 0  # expired leases this queue took back, for metrics
        # PostgreSQL claims in one statement, on the database's clock unless a test gave one.
        self._one_statement = engine.dialect.name == "postgresql"
        self._server_clock = self._one_statement and clock is utcnow

    async def _now(self, connection: AsyncConnection) -> datetime:
        return await shared_now(connection, self.clock)

    async def claimable(self, held: HeldConnection) -> bool:
        """Whether a claim could lease a row now (it may still find none: a paused campaign's
        rows, another daemon's claim first). One read on a held connection, ~0.05 ms of CPU:
        on an empty queue, polled every second for each table, the claim's own transaction
        (BEGIN IMMEDIATE, rescue, paused campaigns, claim, COMMIT) cost ~1.5 ms."""
        table = self.model.__tablename__
        if self._server_clock:
            rows = await held.fetch(_CLAIMABLE.format(table=table, now="now()"), [])
        else:
            column = self.model.__table__.c.not_before
            process = column.type.dialect_impl(self.engine.dialect).bind_processor(
                self.engine.dialect
            )
            now = self.clock()
            value = process(now) if process is not None else now
            if held.dialect == "sqlite":
                rows = await held.fetch(_CLAIMABLE.format(table=table, now="?"), [value, value])
            else:
                rows = await held.fetch(_CLAIMABLE.format(table=table, now="$1"), [value])
        return bool(rows[0][0])

    async def claim(
        self, owner: str, limit: int, lease_seconds: float, *, kinds: Sequence[str] = ()
    ) -> Sequence[Row[Any]]:
        """Lease up to `limit` due rows to `owner`, rescuing expired leases first (on
        PostgreSQL: when the claim saw one, then claiming again for the room left)."""
        if self._one_statement:
            return await self._claim_in_one_statement(owner, limit, lease_seconds, kinds)
        async with transaction(self.engine) as connection:
            now = await self._now(connection)
            model = self.model
            rescued = (await connection.execute(rescue_template(model), {"b_now": now})).all()
            self.rescued += len(rescued)
            paused = (await connection.execute(PAUSED_CAMPAIGNS)).scalars().all()
            per_campaign = connection.dialect.name == "postgresql"
            template = claim_template(model, bool(kinds), bool(paused), per_campaign=per_campaign)
            values = claim_values(now, limit, owner, lease_seconds, kinds, paused)
            rows = (await connection.execute(template, values)).all()
        self._log_failed(
            (r.id, r.campaign_id, LEASE_LOST_REASON, LEASE_LOST)
            for r in rescued
            if r.state == self.states.FAILED
        )
        return sorted(rows, key=lambda row: row.id)

    async def _claim_in_one_statement(
        self, owner: str, limit: int, lease_seconds: float, kinds: Sequence[str]
    ) -> Sequence[Row[Any]]:
        """One round trip while no lease has expired; when the claim saw one, the rescue
        runs and, if the batch is not full, a second claim takes what it queued again."""
        rows, expired = await self._claim_once(owner, limit, lease_seconds, kinds)
        if expired:
            rescued = await self._rescue()
            if rescued and len(rows) < limit:
                more, _ = await self._claim_once(owner, limit - len(rows), lease_seconds, kinds)
                rows.extend(more)
        return sorted(rows, key=lambda row: row.id)

    async def _claim_once(
        self, owner: str, limit: int, lease_seconds: float, kinds: Sequence[str]
    ) -> tuple[list[Row[Any]], bool]:
        statement = one_statement_claim(
            self.model, limit, bool(kinds), server_clock=self._server_clock
        )
        values = one_statement_values(owner, lease_seconds, kinds)
        if not self._server_clock:
            values["b_now"] = self.clock()
        async with statement_connection(self.engine) as connection:
            found = (await connection.execute(statement, values)).all()
        leased = [row for row in found if row.id is not None]
        return leased, len(leased) < len(found)  # the row of NULLs: a lease has expired

    async def _rescue(self) -> int:
        """Take expired leases back (one statement); rows out of attempts fail."""
        template = rescue_template(self.model, server_clock=self._server_clock)
        values = {} if self._server_clock else {"b_now": self.clock()}
        async with statement_connection(self.engine) as connection:
            rescued = (await connection.execute(template, values)).all()
        self.rescued += len(rescued)
        self._log_failed(
            (r.id, r.campaign_id, LEASE_LOST_REASON, LEASE_LOST)
            for r in rescued
            if r.state == self.states.FAILED
        )
        return len(rescued)

    def _log_failed(self, rows: Iterable[tuple[int, int, str | None, str | None]]) -> None:
        """One line per row that failed for good, once its transaction has committed."""
        event, key = (
            ("task_failed", "task_id") if self.model is Task else ("image_failed", "image_id")
        )
        for row_id, campaign_id, reason, error in rows:
            log.warning(event, **{key: row_id}, campaign_id=campaign_id, reason=reason, error=error)

    async def expire_leases_of(self, owners: Sequence[str]) -> int:
        """End the leases of owners known to be dead, so the next claim rescues their rows."""
        if not owners:
            return 0
        model, states = self.model, self.states
        async with transaction(self.engine) as connection:
            now = await self._now(connection)
            result = await connection.execute(
                update(model)
                .where(model.state == states.RUNNING, model.lease_owner.in_(owners))
                .values(lease_expires_at=now - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)

    async def lease_owners(self) -> set[str]:
        async with read_connection(self.engine) as connection:
            rows = await connection.execute(
                select(self.model.lease_owner)
                .where(self.model.state == self.states.RUNNING)
                .distinct()
            )
            return {owner for (owner,) in rows if owner}

    async def heartbeat(self, owner: str, ids: Sequence[int], lease_seconds: float) -> set[int]:
        """Extend the leases still held by `owner`; returns the ids it still holds."""
        if not ids:
            return set()
        model, states = self.model, self.states
        opened = statement_connection if self._one_statement else transaction
        async with opened(self.engine) as connection:
            now = func.now() if self._server_clock else await self._now(connection)
            result = await connection.execute(
                update(model)
                .where(model.id.in_(ids), model.lease_owner == owner, model.state == states.RUNNING)
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
                .returning(model.id)
                .execution_options(synchronize_session=False)
            )
            return set(result.scalars().all())

    async def finish(self, owner: str, outcomes: Sequence[Outcome]) -> dict[int, str]:
        """Record final states in one transaction; rows leased by someone else are left alone.
        Returns the state each row written is left in, by id: a row whose lease was lost is
        absent, so its outcome is not counted (the new owner's will be). On PostgreSQL the
        batch is one statement that reads the database's clock itself, commits on its own
        and returns the ids it wrote; SQLite's is told how many it wrote."""
        if not outcomes:
            return {}
        now = None if self._server_clock else self.clock()
        # A row that ends well sheds the code of an earlier failure; a skip names its own.
        changes = [
            {
                "reason": None,
                "retryable": None,
                **outcome.values,
                "state": outcome.state,
                "finished_at": AT_DATABASE_NOW if now is None else now,
                "b_id": outcome.id,
            }
            for outcome in outcomes
        ]
        written = await self._release(owner, now, changes)
        left_as: dict[int, str] = {}
        for outcome in outcomes:  # a row named twice keeps its first outcome, as written
            if outcome.id in written:
                left_as.setdefault(outcome.id, str(outcome.state))
        return left_as

    async def _release(
        self, owner: str, now: datetime | None, changes: list[dict[str, Any]]
    ) -> set[int]:
        """End `owner`'s leases with these changes; returns the ids of the rows written."""
        if not self._one_statement:
            return await self._release_on_sqlite(owner, now, changes)
        batches = release_batches(self.model, owner, now, changes, arrays=True)
        alone = len(batches) == 1  # one statement is atomic by itself on PostgreSQL
        async with (statement_connection if alone else transaction)(self.engine) as connection:
            return await ids_written(connection, batches)

    async def _release_on_sqlite(
        self, owner: str, now: datetime | None, changes: list[dict[str, Any]]
    ) -> set[int]:
        """An executemany says how many rows it wrote, not which. All of them (no lease
        lost, nearly always) is the answer at no cost; fewer, and the batch is rolled back
        and written again for the rows still held, read first under the same write lock
        (BEGIN IMMEDIATE), so none changes hands in between."""
        model = self.model
        ids = {change["b_id"] for change in changes}
        batches = release_batches(model, owner, now, changes, arrays=False)
        try:
            async with transaction(self.engine) as connection:
                if await run_batches(connection, batches) < len(ids):
                    raise _LeaseLost  # rolls the batch back
        except _LeaseLost:
            async with transaction(self.engine) as connection:
                found = await connection.execute(
                    select(model.id).where(model.id.in_(ids), model.lease_owner == owner)
                )
                held = set(found.scalars())
                mine = [change for change in changes if change["b_id"] in held]
                batches = release_batches(model, owner, now, mine, arrays=False)
                await run_batches(connection, batches)
            return held
        return ids

    async def done(self, owner: str, ids: Sequence[int]) -> None:
        await self.finish(owner, [Outcome(row_id, self._done_state) for row_id in ids])

    async def fail(self, owner: str, failures: Sequence[Failure]) -> dict[int, str]:
        """Back off retryable failures; fail for good the permanent and the exhausted ones.
        Returns the state each row written is left in (queued again or failed), by id: as
        in `finish`, a row whose lease was lost is absent, so its failure is not counted."""
        if not failures:
            return {}
        model, states = self.model, self.states
        columns: list[Any] = [
            model.id,
            model.campaign_id,
            model.attempts,
            model.max_attempts,
            model.throttles,
        ]
        if self._server_clock:  # the clock read with the rows, not in a round trip of its own
            columns.append(func.now().label("now"))
        async with transaction(self.engine) as connection:
            found = await connection.execute(
                select(*columns).where(
                    model.id.in_([f.id for f in failures]),
                    model.lease_owner == owner,
                    model.state == states.RUNNING,
                )
            )
            held = {row.id: row for row in found}
            if not held:  # every lease was lost: the rows are someone else's now
                return {}
            now = next(iter(held.values())).now if self._server_clock else self.clock()
            changes = [
                {**self._failure_values(f, held[f.id], now), "b_id": f.id}
                for f in failures
                if f.id in held  # otherwise the lease was lost: the row is someone else's now
            ]
            batches = release_batches(self.model, owner, now, changes, arrays=self._one_statement)
            if self._one_statement:  # a lease taken over since the read is not written
                written = await ids_written(connection, batches)
                changes = [change for change in changes if change["b_id"] in written]
            else:  # the read and the writes hold SQLite's write lock: no lease changed hands
                await run_batches(connection, batches)
        self._log_failed(
            (c["b_id"], held[c["b_id"]].campaign_id, c["reason"], c["last_error"])
            for c in changes
            if c["state"] == self.states.FAILED
        )
        return {change["b_id"]: str(change["state"]) for change in changes}

    def _failure_values(self, failure: Failure, held: Row[Any], now: datetime) -> dict[str, Any]:
        """The columns a failure leaves its row with. A throttled one (the server asked for
        time) gives its attempt back and counts a throttle instead, so a CDN's 429s defer a
        row, for as long as max_throttles back-offs, and never fail it in max_attempts."""
        states = self.states
        why: dict[str, Any] = {"reason": failure.reason, "retryable": failure.retryable}
        message = failure.error
        if not failure.retryable:
            return {**why, "state": states.FAILED, "last_error": message, "finished_at": now}
        tries = held.attempts
        if failure.throttled:
            tries = held.throttles + 1
            why.update(attempts=max(held.attempts - 1, 0), throttles=tries)
            if tries >= self.max_throttles:
                error = f"{message} (gave up after {tries} throttled tries)"
                return {**why, "state": states.FAILED, "last_error": error, "finished_at": now}
        elif tries >= held.max_attempts:
            error = f"{message} (gave up after {tries} attempts)"
            return {**why, "state": states.FAILED, "last_error": error, "finished_at": now}
        asked = min(failure.retry_after or 0.0, self.max_retry_after_s)  # a hostile one is capped
        wait = max(self.policy.delay(tries, self.rng), asked)
        return {
            **why,
            "state": states.QUEUED,
            "last_error": message,
            "not_before": now + timedelta(seconds=wait),
        }

    async def release(self, owner: str, ids: Sequence[int]) -> None:
        """Hand unfinished rows back on shutdown; the attempt they used is given back."""
        if not ids:
            return
        model, states = self.model, self.states
        async with transaction(self.engine) as connection:
            now = await self._now(connection)
            await connection.execute(
                update(model)
                .where(model.id.in_(ids), model.lease_owner == owner, model.state == states.RUNNING)
                .values(
                    state=states.QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=func.max(model.attempts - 1, 0)
                    if connection.dialect.name == "sqlite"
                    else func.greatest(model.attempts - 1, 0),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )

    async def cancel(self, *, campaign_id: int | None = None, ids: Sequence[int] = ()) -> int:
        """Cancel queued and running rows; a running one may still finish and be recorded."""
        model, states = self.model, self.states
        statement = update(model).where(model.state.in_([states.QUEUED, states.RUNNING]))
        statement = _scope(statement, model, campaign_id, ids)
        async with transaction(self.engine) as connection:
            now = await self._now(connection)
            result = await connection.execute(
                statement.values(state=states.CANCELLED, updated_at=now).execution_options(
                    synchronize_session=False
                )
            )
            return int(result.rowcount)

    async def requeue(
        self,
        *,
        campaign_id: int | None = None,
        ids: Sequence[int] = (),
        in_states: Sequence[str] = (ImageState.FAILED,),
        reasons: Sequence[str] = (),
        retryable_only: bool = False,
        dry_run: bool = False,
    ) -> Counter[str | None]:
        """Queue finished rows again; returns how many of each reason code (would be) requeued.

        `retryable_only` keeps failures that were permanent (a 404, not an image) where
        they are; cancelled rows were never failures and always qualify. The history
        stays: `requeues` counts the times, `reason` and `last_error` keep the last failure
        until the next attempt's outcome replaces them; `attempts` starts afresh.
        """
        model, states = self.model, self.states
        where: list[ColumnElement[bool]] = [model.state.in_(in_states)]
        if reasons:
            where.append(model.reason.in_(reasons))
        if retryable_only:
            where.append(or_(model.state == states.CANCELLED, model.retryable.is_(True)))
        async with transaction(self.engine) as connection:
            now = await self._now(connection)
            # A cancelled row still leased may be running: it is not resumed until its lease ends.
            where.append(or_(model.lease_owner.is_(None), model.lease_expires_at < now))
            if dry_run:
                picked = _scope(select(model.reason), model, campaign_id, ids).where(*where)
                return Counter((await connection.execute(picked)).scalars().all())
            statement = _scope(update(model), model, campaign_id, ids).where(*where)
            result = await connection.execute(
                statement.values(
                    state=states.QUEUED,
                    attempts=0,
                    throttles=0,
                    requeues=model.requeues + 1,
                    not_before=now,
                    finished_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .returning(model.reason)
                .execution_options(synchronize_session=False)
            )
            return Counter(result.scalars().all())


def _scope(statement: Any, model: QueueModel, campaign_id: int | None, ids: Sequence[int]) -> Any:
    if campaign_id is not None:
        statement = statement.where(model.campaign_id == campaign_id)
    if ids:
        statement = statement.where(model.id.in_(ids))
    return statement

"""The job queue: claim, lease, heartbeat, finish, fail, over `tasks` and `images` alike.

Delivery is at least once: a row whose worker dies is claimed again once its lease
expires. Effects are made idempotent by the callers (deterministic paths, upserts), so a
row may run more than once but its effect happens once.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    ARRAY,
    Boolean,
    Integer,
    Interval,
    Row,
    Select,
    String,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import cloned_traverse

from harvester.backoff import Backoff
from harvester.db.clock import CLOCK_SKEW, WallClock, shared_now, utcnow
from harvester.db.models import Campaign, Image, ImageState, Task, TaskState
from harvester.db.session import insert_for, read_connection, statement_connection, transaction
from harvester.outcomes import Failure as Failure
from harvester.outcomes import Outcome as Outcome
from harvester.records import NewTask

QueueModel = type[Task] | type[Image]
# A claimed row as the worker sees it (code outside db/ does not import SQLAlchemy).
QueueRow = Row[Any]

RESCUE_BATCH = 1000
MAX_WAIT_S = 7 * 86_400.0
LEASE_LOST = "lease expired on the last attempt (the worker died or hung)"
LEASE_LOST_REASON = "lease_lost"

log = structlog.get_logger("harvester.queue")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter, so retries of one outage do not arrive together."""

    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    jitter: float = 0.25

    def delay(self, attempts: int, rng: random.Random) -> float:
        spread = (1 - self.jitter, 1 + self.jitter)
        return Backoff(self.base_seconds, self.max_seconds, spread).delay(attempts, rng)


async def enqueue_tasks(
    engine: AsyncEngine,
    campaign_id: int,
    tasks: Iterable[NewTask],
    *,
    default_max_attempts: int = 5,
    now: datetime | None = None,
) -> int:
    """Insert tasks; one whose dedupe_key exists already is a no-op. Returns rows inserted."""
    moment = now or utcnow()
    rows = [
        {
            "campaign_id": campaign_id,
            "kind": task.kind,
            "payload": dict(task.payload),
            "dedupe_key": task.dedupe_key,
            "state": TaskState.QUEUED,
            "max_attempts": task.max_attempts or default_max_attempts,
            "not_before": moment - CLOCK_SKEW,
            "created_at": moment,
            "updated_at": moment,
        }
        for task in tasks
    ]
    if not rows:
        return 0
    async with transaction(engine) as connection:
        statement = (
            insert_for(connection, Task)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(Task.id)
        )
        inserted = await connection.execute(statement, rows)
        return len(inserted.all())


def states_of(model: QueueModel) -> type[TaskState] | type[ImageState]:
    """The state enum of a queue table (both share queued/running/failed/cancelled)."""
    return TaskState if model is Task else ImageState


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
    ) -> None:
        self.engine = engine
        self.max_retry_after_s = max_retry_after_s
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
            paused = (await connection.execute(_PAUSED)).scalars().all()
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
        statement = one_statement_claim(self.model, bool(kinds), server_clock=self._server_clock)
        values = one_statement_values(owner, limit, lease_seconds, kinds)
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

    async def finish(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        """Record final states in one transaction; rows leased by someone else are left alone.
        On PostgreSQL the batch is one statement that reads the database's clock itself and
        commits on its own."""
        if not outcomes:
            return
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
        batches = self._release_batches(owner, now, changes)
        if not self._one_statement:
            async with transaction(self.engine) as connection:  # SQLite
                await self._run_batches(connection, batches)
            return
        alone = len(batches) == 1  # one statement is atomic by itself on PostgreSQL
        async with (statement_connection if alone else transaction)(self.engine) as connection:
            await self._run_batches(connection, batches)

    async def _release_with(
        self, connection: AsyncConnection, owner: str, now: datetime, changes: list[dict[str, Any]]
    ) -> None:
        await self._run_batches(connection, self._release_batches(owner, now, changes))

    def _release_batches(
        self, owner: str, now: datetime | None, changes: list[dict[str, Any]]
    ) -> list[tuple[Any, Any]]:
        """End the leases of `owner` on these rows, setting their columns: on PostgreSQL one
        statement for the batch (`release_from_arrays`), on SQLite one `executemany` for
        each set of columns rows name. A value that is AT_DATABASE_NOW, and `updated_at`
        when `now` is None, is the statement's now()."""
        rows = []
        for change in changes:
            row = {
                **change,
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": AT_DATABASE_NOW if now is None else now,
            }
            if change.get("finished_at") is not None:
                row["finished_by"] = owner
            rows.append(row)
        if self._one_statement:
            return self._array_batches(owner, rows)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_columns[tuple(sorted(row))].append({**row, "b_owner": owner})
        batches: list[tuple[Any, Any]] = []
        for columns, batch in by_columns.items():
            at_now = tuple(c for c in columns if batch[0][c] is AT_DATABASE_NOW)
            for params in batch:
                for column in at_now:
                    del params[column]
            batches.append((release_statement(self.model, at_now), batch))
        return batches

    def _array_batches(
        self, owner: str, rows: list[dict[str, Any]]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """The rows as one array a column, for `release_from_arrays`: one statement for all
        rows that set the same columns to now() (every row of a batch, in practice). A row
        named twice keeps its first change, as when each row was an UPDATE of its own (the
        first ended the lease the second looked for)."""
        first: dict[int, dict[str, Any]] = {}
        for row in rows:
            first.setdefault(row["b_id"], row)
        by_now: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in first.values():
            by_now[tuple(sorted(c for c, v in row.items() if v is AT_DATABASE_NOW))].append(row)
        batches = []
        for at_now, group in by_now.items():
            columns = sorted({c for row in group for c in row} - {"b_id", *at_now})
            partial = tuple(c for c in columns if any(c not in row for row in group))
            params: dict[str, Any] = {"b_owner": owner, "b_ids": [row["b_id"] for row in group]}
            for column in columns:
                params[f"b_v_{column}"] = [row.get(column) for row in group]
            for column in partial:
                params[f"b_s_{column}"] = [column in row for row in group]
            statement = release_from_arrays(self.model, tuple(columns), partial, at_now)
            batches.append((statement, params))
        return batches

    @staticmethod
    async def _run_batches(connection: AsyncConnection, batches: list[tuple[Any, Any]]) -> None:
        for statement, batch in batches:
            await connection.execute(statement, batch)

    async def done(self, owner: str, ids: Sequence[int]) -> None:
        await self.finish(owner, [Outcome(row_id, self._done_state) for row_id in ids])

    async def fail(self, owner: str, failures: Sequence[Failure]) -> dict[int, str]:
        """Back off retryable failures; fail for good the permanent and the exhausted ones.
        Returns the state each row is left in (queued again or failed), by id."""
        if not failures:
            return {}
        model, states = self.model, self.states
        columns: list[Any] = [model.id, model.campaign_id, model.attempts, model.max_attempts]
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
                {
                    **self._failure_values(f, held[f.id].attempts, held[f.id].max_attempts, now),
                    "b_id": f.id,
                }
                for f in failures
                if f.id in held  # otherwise the lease was lost: the row is someone else's now
            ]
            await self._release_with(connection, owner, now, changes)
        self._log_failed(
            (c["b_id"], held[c["b_id"]].campaign_id, c["reason"], c["last_error"])
            for c in changes
            if c["state"] == self.states.FAILED
        )
        return {change["b_id"]: str(change["state"]) for change in changes}

    def _failure_values(
        self, failure: Failure, attempts: int, max_attempts: int, now: datetime
    ) -> dict[str, Any]:
        states = self.states
        why = {"reason": failure.reason, "retryable": failure.retryable}
        if not failure.retryable:
            return {**why, "state": states.FAILED, "last_error": failure.error, "finished_at": now}
        if attempts >= max_attempts:
            error = f"{failure.error} (gave up after {attempts} attempts)"
            return {**why, "state": states.FAILED, "last_error": error, "finished_at": now}
        asked = min(failure.retry_after or 0.0, self.max_retry_after_s)  # a hostile one is capped
        wait = max(self.policy.delay(attempts, self.rng), asked)
        return {
            **why,
            "state": states.QUEUED,
            "last_error": failure.error,
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


def claim_statement(
    model: QueueModel, values: dict[str, Any], *, per_campaign: bool = False
) -> Any:
    """The claim with `claim_values` bound in (for EXPLAIN); `Queue.claim` runs the template."""
    kinds, paused = "b_kinds" in values, "b_paused" in values
    return _bound(claim_template(model, kinds, paused, per_campaign=per_campaign), values)


def claim_values(
    now: datetime,
    limit: int,
    owner: str,
    lease_seconds: float,
    kinds: Sequence[str] = (),
    paused: Sequence[int] = (),
) -> dict[str, Any]:
    """The claim template's parameters."""
    values = {
        "b_now": now,
        "b_limit": limit,
        "b_owner": owner,
        "b_expires": now + timedelta(seconds=lease_seconds),
    }
    if kinds:
        values["b_kinds"] = list(kinds)
    if paused:
        values["b_paused"] = list(paused)
    return values


@functools.cache
def claim_template(
    model: QueueModel, kinds: bool, paused: bool, *, per_campaign: bool = False
) -> Any:
    """-- The claim: lease the oldest due rows; rows another claimer holds are skipped.
    UPDATE <queue> SET state='running', lease_owner=:owner, attempts=attempts+1, ...
    WHERE id IN (SELECT id FROM <queue> WHERE state='queued' AND not_before <= :now
                 [AND kind IN (:kinds)] [AND campaign_id NOT IN (:paused)]
                 ORDER BY not_before, id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING *
    With ``per_campaign`` (PostgreSQL, some campaign paused) the rows come from
    ``due_rows_per_campaign`` instead.

    Built once per shape and run with `claim_values`: a statement built afresh each claim
    is walked for its cache key and looked up again every time.
    """
    states = states_of(model)
    if paused and per_campaign:
        due = due_rows_per_campaign(model, kinds=kinds)
    else:
        due = due_rows(model)
        if kinds and model is Task:
            due = due.where(Task.kind.in_(bindparam("b_kinds", expanding=True)))
        if paused:
            due = due.where(model.campaign_id.not_in(bindparam("b_paused", expanding=True)))
    return (
        update(model)
        .where(model.id.in_(due.scalar_subquery()))
        .values(
            state=states.RUNNING,
            lease_owner=bindparam("b_owner"),
            lease_expires_at=_moment("b_expires", model),
            attempts=model.attempts + 1,
            updated_at=_moment("b_now", model),
        )
        .returning(*model.__table__.c)
        .execution_options(synchronize_session=False)
    )


# A value that says "the database's now()": the statement sets the column itself.
AT_DATABASE_NOW: Any = object()


@functools.cache
def release_statement(model: QueueModel, at_now: tuple[str, ...] = ()) -> Any:
    """-- An outcome: UPDATE <queue> SET <the batch's columns> [, <at_now columns> = now()]
    WHERE id = :b_id AND lease_owner = :b_owner (run for many rows at once). Built once per
    table and set of columns set to now()."""
    return (
        update(model)
        .where(model.id == bindparam("b_id"), model.lease_owner == bindparam("b_owner"))
        .values({column: func.now() for column in at_now})
        .execution_options(synchronize_session=False)
    )


@functools.cache
def release_from_arrays(
    model: QueueModel,
    columns: tuple[str, ...],
    partial: tuple[str, ...] = (),
    at_now: tuple[str, ...] = (),
) -> Any:
    """-- Outcomes on PostgreSQL: one statement for a batch, each column's values in one
    array (typed as the column is, so JSON arrives as jsonb and NULL stays NULL).
    UPDATE <queue> SET <c> = v.<c>, ...,
           <p> = CASE WHEN v.b_s_<p> THEN v.<p> ELSE <queue>.<p> END, ...,
           <at_now> = now(), ...
    FROM unnest(CAST(:b_ids AS BIGINT[]), CAST(:b_v_<c> AS <type of c>[]), ...,
                CAST(:b_s_<p> AS BOOLEAN[]), ...) AS v(b_id, <c>, ..., b_s_<p>, ...)
    WHERE <queue>.id = v.b_id AND <queue>.lease_owner = :b_owner
    A column <p> that only some rows name keeps its value in the others (v.b_s_<p> is
    false there). One statement costs the server a third of the CPU of 100 one-row
    UPDATEs. Built once per table and shape."""
    table = model.__table__

    def array(name: str, item: Any) -> Any:
        typed = ARRAY(item, dimensions=1)
        return cast(bindparam(name, type_=typed), typed)

    arrays = [
        array("b_ids", table.c.id.type),
        *(array(f"b_v_{c}", table.c[c].type) for c in columns),
        *(array(f"b_s_{c}", Boolean()) for c in partial),
    ]
    names = ["b_id", *columns, *(f"b_s_{c}" for c in partial)]
    rows = func.unnest(*arrays).table_valued(*names).render_derived(name="v")
    values: dict[str, Any] = {
        c: case((rows.c[f"b_s_{c}"], rows.c[c]), else_=table.c[c]) if c in partial else rows.c[c]
        for c in columns
    }
    values.update({c: func.now() for c in at_now})
    return (
        update(model)
        .where(model.id == rows.c.b_id, model.lease_owner == bindparam("b_owner"))
        .values(values)
        .execution_options(synchronize_session=False)
    )


def one_statement_values(
    owner: str, limit: int, lease_seconds: float, kinds: Sequence[str] = ()
) -> dict[str, Any]:
    """The one-statement claim's parameters (and :b_now, for a test's clock)."""
    values: dict[str, Any] = {
        "b_owner": owner,
        "b_limit": limit,
        "b_lease": timedelta(seconds=lease_seconds),
    }
    if kinds:
        values["b_kinds"] = list(kinds)
    return values


@functools.cache
def one_statement_claim(
    model: QueueModel, kinds: bool = False, *, server_clock: bool = True
) -> Any:
    """-- The claim on PostgreSQL in one statement, committed on its own: no BEGIN, clock,
    rescue or paused-campaigns read before it. Rows another claimer holds are skipped; a
    last row of NULLs says some lease has expired (the caller then rescues).
    WITH claimed AS (
      UPDATE <queue> SET state='running', lease_owner=:owner, lease_expires_at=now() + :lease,
             attempts=attempts+1, updated_at=now()
      WHERE id IN (SELECT id FROM (<due_rows>) plain
                     WHERE NOT EXISTS (SELECT FROM campaigns WHERE paused_at IS NOT NULL)
                   UNION ALL
                   SELECT id FROM (<due_rows_per_campaign>) per_campaign
                     WHERE EXISTS (SELECT FROM campaigns WHERE paused_at IS NOT NULL))
      RETURNING *)
    SELECT * FROM claimed
    UNION ALL SELECT NULL, ... WHERE EXISTS (SELECT FROM <queue> WHERE state='running'
                                            AND lease_expires_at < now())
    Each EXISTS on campaigns is a one-time filter, so one picker runs: the plain one while
    no campaign is paused, the per-campaign one otherwise (as `claim_template` chooses).
    With ``server_clock`` false, :b_now (a test's clock) stands for now().
    """
    states = states_of(model)
    now = _now(model, server_clock)
    any_paused = exists().where(Campaign.paused_at.is_not(None))
    plain = due_rows(model, now)
    if kinds and model is Task:
        plain = plain.where(Task.kind.in_(bindparam("b_kinds", expanding=True)))
    plain_rows = plain.subquery("plain")
    per_campaign = due_rows_per_campaign(model, kinds=kinds, now=now).subquery("per_campaign")
    due = union_all(
        select(plain_rows.c.id).where(~any_paused),
        select(per_campaign.c.id).where(any_paused),
    )
    columns = model.__table__.c
    claimed = (
        update(model)
        .where(model.id.in_(due))
        .values(
            state=states.RUNNING,
            lease_owner=bindparam("b_owner"),
            lease_expires_at=now + bindparam("b_lease", type_=Interval()),
            attempts=model.attempts + 1,
            updated_at=now,
        )
        .returning(*columns)
        .cte("claimed")
    )
    expired = exists().where(in_state(model, states.RUNNING), model.lease_expires_at < now)
    return select(claimed).union_all(select(*(null() for _ in columns)).where(expired))


def paused_campaigns() -> Select[Any]:
    """-- Campaigns whose rows no daemon may claim: SELECT id FROM campaigns WHERE paused_at
    IS NOT NULL (a handful of rows; with none paused the claim is the plain one)."""
    return select(Campaign.id).where(Campaign.paused_at.is_not(None))


_PAUSED = paused_campaigns()


def rescue_statement(model: QueueModel, now: datetime) -> Any:
    """The rescue with its moment bound in (for EXPLAIN); `Queue.claim` runs the template."""
    return _bound(rescue_template(model), {"b_now": now})


@functools.cache
def rescue_template(model: QueueModel, *, server_clock: bool = False) -> Any:
    """-- The rescue: expired leases go back to the queue; a row out of attempts fails.
    UPDATE <queue> SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued'
    END, lease_owner=NULL, ... WHERE id IN (SELECT id FROM <queue> WHERE state='running' AND
    lease_expires_at < :now LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING id, campaign_id, state
    With ``server_clock``, :now is the database's now().
    """
    states = states_of(model)
    now = _now(model, server_clock)
    expired = (
        select(model.id)
        .where(in_state(model, states.RUNNING), model.lease_expires_at < now)
        .limit(RESCUE_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    exhausted = model.attempts >= model.max_attempts
    return (
        update(model)
        .where(model.id.in_(expired))
        .values(
            state=case((exhausted, states.FAILED), else_=states.QUEUED),
            last_error=case((exhausted, LEASE_LOST), else_=model.last_error),
            reason=case((exhausted, LEASE_LOST_REASON), else_=model.reason),
            retryable=case((exhausted, True), else_=model.retryable),
            finished_at=case((exhausted, now), else_=None),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(model.id, model.campaign_id, model.state)
        .execution_options(synchronize_session=False)
    )


def _bound(template: Any, values: Mapping[str, Any]) -> Any:
    """A copy of a template with its parameters' values in it, to compile on its own."""

    def bind(parameter: BindParameter[Any]) -> None:
        if parameter.key in values:
            parameter.value = values[parameter.key]
            parameter.required = False

    options = {"maintain_key": True, "detect_subquery_cols": True}
    return cloned_traverse(template, options, {"bindparam": bind})


def _moment(name: str, model: QueueModel) -> Any:
    """A bound moment, typed as the table's times are (aware UTC on both databases)."""
    return bindparam(name, type_=model.__table__.c.updated_at.type)


def _now(model: QueueModel, server_clock: bool) -> Any:
    """The moment a statement runs at: the database's now(), or :b_now (a test's clock)."""
    return func.now() if server_clock else _moment("b_now", model)


def in_state(model: QueueModel, state: str) -> ColumnElement[bool]:
    """`state = '<state>'` with the state written out, not bound: a prepared statement's
    generic plan can then use the partial indexes (`WHERE state = 'queued'`), so PostgreSQL
    need not plan the claim again at each run."""
    return model.state == literal_column(f"'{state}'", String)


def due_rows(model: QueueModel, now: Any = None) -> Select[Any]:
    """The claim's row picker: served by the partial index on (not_before, id) of queued rows."""
    now = _moment("b_now", model) if now is None else now
    return (
        select(model.id)
        .where(in_state(model, states_of(model).QUEUED), model.not_before <= now)
        .order_by(model.not_before, model.id)
        .limit(bindparam("b_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )


def due_rows_per_campaign(
    model: QueueModel, *, kinds: bool = False, now: Any = None
) -> Select[Any]:
    """-- The row picker while a campaign is paused: each campaign not paused gives its own
    oldest due rows (the partial index on (campaign_id, not_before, id) of queued rows),
    merged in due order. Filtering the paused ones out of the plain picker instead walks
    every queued row of theirs that is due sooner, on every claim.
    SELECT due.id FROM campaigns c CROSS JOIN LATERAL (SELECT id, not_before FROM <queue>
        WHERE campaign_id = c.id AND state = 'queued' AND not_before <= :now
        ORDER BY not_before, id LIMIT :limit FOR UPDATE SKIP LOCKED) due
    WHERE c.paused_at IS NULL ORDER BY due.not_before, due.id LIMIT :limit
    """
    picked = select(model.id, model.not_before).where(
        model.campaign_id == Campaign.id,
        in_state(model, states_of(model).QUEUED),
        model.not_before <= (_moment("b_now", model) if now is None else now),
    )
    if kinds and model is Task:
        picked = picked.where(Task.kind.in_(bindparam("b_kinds", expanding=True)))
    limit = bindparam("b_limit", type_=Integer())
    due = (
        picked.order_by(model.not_before, model.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=model)
        .lateral("due")
    )
    return (
        select(due.c.id)
        .select_from(Campaign)
        .join(due, true())
        .where(Campaign.paused_at.is_(None))
        .order_by(due.c.not_before, due.c.id)
        .limit(limit)
    )


def _scope(statement: Any, model: QueueModel, campaign_id: int | None, ids: Sequence[int]) -> Any:
    if campaign_id is not None:
        statement = statement.where(model.campaign_id == campaign_id)
    if ids:
        statement = statement.where(model.id.in_(ids))
    return statement

"""The claim and the rescue, as SQL: which due rows a claimer leases, and how expired
leases go back to the queue. Each statement is built once per shape and run by `Queue`;
the `*_statement` forms bind values in, for EXPLAIN.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Interval,
    Select,
    String,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.visitors import cloned_traverse

from harvester.db.models import Campaign, QueueModel, Task, states_of

RESCUE_BATCH = 1000
LEASE_LOST = "lease expired on the last attempt (the worker died or hung)"
LEASE_LOST_REASON = "lease_lost"


def _text(value: str) -> ColumnElement[str]:
    """A string written into the statement, not bound: part of its text and its plan."""
    return literal_column(f"'{value}'", String)


# -- A statement's one-time filter that turns synchronous_commit off for its own transaction:
# (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL, an InitPlan run once
# per statement (is_local true: it ends with the transaction, the pooled connection keeps
# its setting). Saves the claim its wait for the WAL flush (`one_statement_claim`).
ASYNC_COMMIT = (
    select(func.set_config(_text("synchronous_commit"), _text("off"), true()))
    .scalar_subquery()
    .is_not(None)
)


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
    RETURNING <claimed_columns>
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
        .returning(*claimed_columns(model))
        .execution_options(synchronize_session=False)
    )


def one_statement_values(
    owner: str, lease_seconds: float, kinds: Sequence[str] = ()
) -> dict[str, Any]:
    """The one-statement claim's parameters (and :b_now, for a test's clock); its limit is
    written into the statement (`one_statement_claim`)."""
    values: dict[str, Any] = {
        "b_owner": owner,
        "b_lease": timedelta(seconds=lease_seconds),
    }
    if kinds:
        values["b_kinds"] = list(kinds)
    return values


@functools.cache
def one_statement_claim(
    model: QueueModel, limit: int, kinds: bool = False, *, server_clock: bool = True
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
        AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
      RETURNING <claimed_columns>)
    SELECT * FROM claimed
    UNION ALL SELECT NULL, ... WHERE EXISTS (SELECT FROM <queue> WHERE state='running'
                                            AND lease_expires_at < now())
    Each EXISTS on campaigns is a one-time filter, so one picker runs: the plain one while
    no campaign is paused, the per-campaign one otherwise (as `claim_template` chooses).
    With ``server_clock`` false, :b_now (a test's clock) stands for now().

    The claim commits without waiting for its WAL to reach the disk (`ASYNC_COMMIT`), as
    `SET LOCAL synchronous_commit = off` would, with no round trip of its own: at 2M rows
    the bench's claim p50 went from ~14 to ~10 ms (README, Millions of rows). It is safe
    because a claim lost in a server crash (those of the last 3 x wal_writer_delay at most)
    only gives its rows back to the queue as they were, and an outcome is never durable
    while its claim is lost: outcomes commit synchronously, and a synchronous commit flushes
    the WAL up to its own commit record, which comes after the commit of every claim whose
    lease it saw. A daemon still at work on a lost claim's rows is told by its next
    heartbeat that it holds them no longer and drops them, as after an expired lease.

    The limit is a literal, one statement per batch size (a daemon asks for half a batch
    to a batch): with LIMIT a parameter PostgreSQL plans each claim afresh (~0.6 ms of its
    CPU), since a generic plan must assume any limit; with it written in, the prepared
    statement keeps a generic plan after its fifth run.
    """
    states = states_of(model)
    now = _now(model, server_clock)
    any_paused = exists().where(Campaign.paused_at.is_not(None))
    plain = due_rows(model, now, limit)
    if kinds and model is Task:
        plain = plain.where(Task.kind.in_(bindparam("b_kinds", expanding=True)))
    plain_rows = plain.subquery("plain")
    per_campaign = due_rows_per_campaign(model, kinds=kinds, now=now, limit=limit).subquery(
        "per_campaign"
    )
    due = union_all(
        select(plain_rows.c.id).where(~any_paused),
        select(per_campaign.c.id).where(any_paused),
    )
    columns = claimed_columns(model)
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
        .where(ASYNC_COMMIT)
        .returning(*columns)
        .cte("claimed")
    )
    expired = exists().where(in_state(model, states.RUNNING), model.lease_expires_at < now)
    return select(claimed).union_all(select(*(null() for _ in columns)).where(expired))


# What a claimed row carries: its lease, and what the daemon and its jobs read of it
# (harvester.worker.daemon, harvester.worker.jobs). A job that reads another column adds it
# here. Returning all 50 columns of an image cost a claim of 100 rows 0.17-0.36 ms more of
# the claimer's CPU and ~0.1 ms more of its server's (the two claims alternated, 240 each).
CLAIMED = {
    "images": (
        *("id", "campaign_id", "state", "attempts", "lease_owner", "lease_expires_at"),
        *("provider", "provider_id", "source_url", "raw", "group_name", "shard", "file_name"),
        *("license_id", "title", "tags", "owner", "owner_name"),
        *("lat", "lon", "heading", "captured_at", "captured_local"),
    ),
    "tasks": (
        *("id", "campaign_id", "state", "attempts", "lease_owner", "lease_expires_at"),
        *("kind", "payload", "max_attempts"),
    ),
}


def claimed_columns(model: QueueModel) -> list[Any]:
    """The columns a claim returns (`CLAIMED`), on both databases alike."""
    columns = model.__table__.c
    return [columns[name] for name in CLAIMED[model.__tablename__]]


def paused_campaigns() -> Select[Any]:
    """-- Campaigns whose rows no daemon may claim: SELECT id FROM campaigns WHERE paused_at
    IS NOT NULL (a handful of rows; with none paused the claim is the plain one)."""
    return select(Campaign.id).where(Campaign.paused_at.is_not(None))


# Built once: the claim on SQLite reads it before each claim.
PAUSED_CAMPAIGNS = paused_campaigns()


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
    return model.state == _text(state)


def due_rows(model: QueueModel, now: Any = None, limit: int | None = None) -> Select[Any]:
    """The claim's row picker: served by the partial index on (not_before, id) of queued rows.
    Its limit is :b_limit unless one is written in."""
    now = _moment("b_now", model) if now is None else now
    return (
        select(model.id)
        .where(in_state(model, states_of(model).QUEUED), model.not_before <= now)
        .order_by(model.not_before, model.id)
        .limit(_limit(limit))
        .with_for_update(skip_locked=True)
    )


def due_rows_per_campaign(
    model: QueueModel, *, kinds: bool = False, now: Any = None, limit: int | None = None
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
    due = (
        picked.order_by(model.not_before, model.id)
        .limit(_limit(limit))
        .with_for_update(skip_locked=True, of=model)
        .lateral("due")
    )
    return (
        select(due.c.id)
        .select_from(Campaign)
        .join(due, true())
        .where(Campaign.paused_at.is_(None))
        .order_by(due.c.not_before, due.c.id)
        .limit(_limit(limit))
    )


def _limit(limit: int | None) -> Any:
    """A picker's LIMIT: the literal given, or the :b_limit parameter."""
    return (
        bindparam("b_limit", type_=Integer()) if limit is None else literal_column(str(int(limit)))
    )

"""Rows of both queues as operators see them: list, show one, queue again by reason.

These are the calls behind `harvester jobs ...` and the dashboard's retry button.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, QueueModel, Task
from harvester.db.queue import Queue
from harvester.db.session import read_connection


class JobKind(enum.StrEnum):
    TASK = "task"
    IMAGE = "image"


MODELS: dict[JobKind, QueueModel] = {JobKind.TASK: Task, JobKind.IMAGE: Image}


@dataclass(frozen=True)
class JobLine:
    """One row in `jobs list`: enough to decide what to look at next."""

    kind: JobKind
    id: int
    campaign: str
    state: str
    reason: str | None
    attempts: int
    requeues: int
    updated_at: datetime
    what: str  # a task's kind, an image's provider id
    message: str | None  # the last error, or why it was skipped


async def list_jobs(
    engine: AsyncEngine,
    *,
    campaign_id: int | None = None,
    kinds: Sequence[JobKind] = tuple(JobKind),
    states: Sequence[str] = (),
    reasons: Sequence[str] = (),
    limit: int = 50,
) -> list[JobLine]:
    """The most recently changed rows matching every filter given, newest first."""
    lines: list[JobLine] = []
    async with read_connection(engine) as connection:
        for kind in kinds:
            model = MODELS[kind]
            what = Task.kind if model is Task else Image.provider_id
            message = (
                Task.last_error
                if model is Task
                else func.coalesce(Image.last_error, Image.skip_reason)
            )
            query = (
                select(
                    model.id,
                    Campaign.name,
                    model.state,
                    model.reason,
                    model.attempts,
                    model.requeues,
                    model.updated_at,
                    what.label("what"),
                    message.label("message"),
                )
                .join(Campaign, Campaign.id == model.campaign_id)
                .order_by(model.updated_at.desc(), model.id.desc())
                .limit(limit)
            )
            if campaign_id is not None:
                query = query.where(model.campaign_id == campaign_id)
            if states:
                query = query.where(model.state.in_(states))
            if reasons:
                query = query.where(model.reason.in_(reasons))
            for row in await connection.execute(query):
                lines.append(JobLine(kind, *row))
    lines.sort(key=lambda line: (line.updated_at, line.id), reverse=True)
    return lines[:limit]


async def job_detail(engine: AsyncEngine, kind: JobKind, job_id: int) -> dict[str, Any] | None:
    """Every column of one row, with its campaign's name; None if there is no such row."""
    model = MODELS[kind]
    async with read_connection(engine) as connection:
        found = await connection.execute(
            select(Campaign.name.label("campaign"), *model.__table__.c)
            .join(Campaign, Campaign.id == model.campaign_id)
            .where(model.id == job_id)
        )
        row = found.first()
    if row is None:
        return None
    columns = dict(row._mapping)
    return {"kind": kind.value, **columns}


async def retry_jobs(
    engine: AsyncEngine,
    *,
    campaign_id: int | None = None,
    kinds: Sequence[JobKind] = tuple(JobKind),
    states: Sequence[str] = ("failed",),
    reasons: Sequence[str] = (),
    ids: Sequence[int] = (),
    dry_run: bool = False,
) -> dict[JobKind, Counter[str | None]]:
    """Queue rows again; how many of each reason code, per kind, were (or would be) requeued.

    Unless reasons or ids are named, only failures that were transient go again (a 404
    or a non-image fails the same way each time); cancelled rows always qualify.
    """
    retryable_only = not reasons and not ids
    return {
        kind: await Queue(engine, MODELS[kind]).requeue(
            campaign_id=campaign_id,
            ids=ids,
            in_states=states,
            reasons=reasons,
            retryable_only=retryable_only,
            dry_run=dry_run,
        )
        for kind in kinds
    }

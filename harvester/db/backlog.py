"""'Is anything left to do?', the question a daemon run `--until-idle` asks before it exits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageState, Task, TaskState
from harvester.db.queue_claims import paused_campaigns
from harvester.db.session import read_connection


async def anything_left(engine: AsyncEngine, *, due_by: datetime | None = None) -> bool:
    """Is any row running, or queued (due or backing off until at most ``due_by``) in a
    campaign not paused?

    Rows of a paused campaign wait for `campaigns resume`, and rows due after ``due_by``
    for a later run: neither keeps an `--until-idle` daemon up."""
    async with read_connection(engine) as connection:
        for model, states in ((Task, TaskState), (Image, ImageState)):
            queued = and_(
                model.state == states.QUEUED, model.campaign_id.not_in(paused_campaigns())
            )
            if due_by is not None:
                queued = and_(queued, model.not_before <= due_by)
            found = await connection.execute(
                select(model.id).where(or_(model.state == states.RUNNING, queued)).limit(1)
            )
            if found.first() is not None:
                return True
        return False


async def due_later(engine: AsyncEngine, due_by: datetime) -> int:
    """Queued rows (tasks and images, campaigns not paused) not due until after ``due_by``."""
    async with read_connection(engine) as connection:
        total = 0
        for model, states in ((Task, TaskState), (Image, ImageState)):
            later = and_(
                model.state == states.QUEUED,
                model.not_before > due_by,
                model.campaign_id.not_in(paused_campaigns()),
            )
            total += (await connection.execute(select(func.count()).where(later))).scalar_one()
        return total

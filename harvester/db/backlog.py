"""'Is anything left to do?', the question a daemon run `--until-idle` asks before it exits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageState, Task, TaskState
from harvester.db.session import read_connection


async def anything_left(engine: AsyncEngine) -> bool:
    """Is any row queued (due or backing off) or running, in either queue?"""
    async with read_connection(engine) as connection:
        for model, states in (
            (Task, (TaskState.QUEUED, TaskState.RUNNING)),
            (Image, (ImageState.QUEUED, ImageState.RUNNING)),
        ):
            found = await connection.execute(
                select(model.id).where(model.state.in_(states)).limit(1)
            )
            if found.first() is not None:
                return True
        return False

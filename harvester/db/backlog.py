"""'Is anything left to do?', the question a daemon run `--until-idle` asks before it exits."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageState, Task, TaskState
from harvester.db.queue import paused_campaigns
from harvester.db.session import read_connection


async def anything_left(engine: AsyncEngine) -> bool:
    """Is any row running, or queued (due or backing off) in a campaign not paused?

    Rows of a paused campaign wait for `campaigns resume`: they do not keep an
    `--until-idle` daemon up."""
    async with read_connection(engine) as connection:
        for model, states in ((Task, TaskState), (Image, ImageState)):
            found = await connection.execute(
                select(model.id)
                .where(
                    or_(
                        model.state == states.RUNNING,
                        and_(
                            model.state == states.QUEUED,
                            model.campaign_id.not_in(paused_campaigns()),
                        ),
                    )
                )
                .limit(1)
            )
            if found.first() is not None:
                return True
        return False

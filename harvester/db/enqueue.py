"""Putting tasks on the queue: a task names itself by its dedupe key, so submitting the
same work twice (a rerun, a resumed campaign) adds nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.clock import CLOCK_SKEW, utcnow
from harvester.db.models import Task, TaskState
from harvester.db.session import insert_for, transaction
from harvester.records import NewTask


async def enqueue_tasks(
    engine: AsyncEngine,
    campaign_id: int,
    tasks: Iterable[NewTask],
    *,
    default_max_attempts: int,
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

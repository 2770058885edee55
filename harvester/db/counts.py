"""'How many rows are in each state?', per campaign and task kind: what operators ask first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, ImageState, Task
from harvester.db.session import read_connection


@dataclass
class CampaignStatus:
    name: str
    provider: str
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> state -> count
    images: dict[str, int] = field(default_factory=dict)  # state -> count


async def campaign_counts(engine: AsyncEngine) -> list[CampaignStatus]:
    async with read_connection(engine) as connection:
        campaigns = {
            row.id: CampaignStatus(row.name, row.provider)
            for row in await connection.execute(
                select(Campaign.id, Campaign.name, Campaign.provider).order_by(Campaign.id)
            )
        }
        task_counts = await connection.execute(
            select(Task.campaign_id, Task.kind, Task.state, func.count()).group_by(
                Task.campaign_id, Task.kind, Task.state
            )
        )
        for campaign_id, kind, state, count in task_counts:
            campaigns[campaign_id].tasks.setdefault(kind, {})[state] = count
        image_counts = await connection.execute(
            select(Image.campaign_id, Image.state, func.count()).group_by(
                Image.campaign_id, Image.state
            )
        )
        for campaign_id, state, count in image_counts:
            campaigns[campaign_id].images[state] = count
    return list(campaigns.values())


async def image_states_by_campaign_name(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """(campaign name, image state, count), ordered by name."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Campaign.name, Image.state, func.count())
            .join(Campaign, Campaign.id == Image.campaign_id)
            .group_by(Campaign.name, Image.state)
            .order_by(Campaign.name)
        )
        return [(name, state, count) for name, state, count in rows]


async def unfinished(engine: AsyncEngine) -> tuple[int, int]:
    """(images, tasks) queued or running: work a stopped harvest left for its next run."""
    left = (ImageState.QUEUED, ImageState.RUNNING)
    async with read_connection(engine) as connection:
        counts = [
            (
                await connection.execute(
                    select(func.count()).select_from(model).where(model.state.in_(left))
                )
            ).scalar_one()
            for model in (Image, Task)
        ]
    return counts[0], counts[1]


async def finished_since(engine: AsyncEngine, since: Sequence[datetime]) -> dict[int, list[int]]:
    """Images finished (stored, skipped or failed) per campaign since each moment, by
    the rows' finish times: true across every daemon working the tables."""
    finished = (ImageState.STORED, ImageState.SKIPPED, ImageState.FAILED)
    counts = [
        func.count().filter(Image.finished_at >= moment).label(f"n{i}")
        for i, moment in enumerate(since)
    ]
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Image.campaign_id, *counts)
            .where(Image.state.in_(finished), Image.finished_at >= min(since))
            .group_by(Image.campaign_id)
        )
        return {row[0]: list(row[1:]) for row in rows}


async def reason_counts(
    engine: AsyncEngine, models: Sequence[type[Task] | type[Image]] = (Task, Image)
) -> dict[int, list[tuple[str, str, int]]]:
    """(state, reason code, rows) of failed and skipped rows, tasks and images together
    (or only `models`), per campaign, most frequent first."""
    by_campaign: dict[int, list[tuple[str, str, int]]] = {}
    async with read_connection(engine) as connection:
        for model in models:
            states = (ImageState.FAILED, ImageState.SKIPPED)
            key = (model.campaign_id, model.state, model.reason)
            rows = await connection.execute(
                select(*key, func.count()).where(model.state.in_(states)).group_by(*key)
            )
            for campaign_id, state, reason, count in rows:
                by_campaign.setdefault(campaign_id, []).append((state, reason or "unknown", count))
    for reasons in by_campaign.values():
        reasons.sort(key=lambda r: (-r[2], r[1]))
    return by_campaign


async def newest_phashes(
    engine: AsyncEngine, campaign_id: int, limit: int
) -> list[tuple[int, str]]:
    """(id, hex hash) of the campaign's newest stored images, at most `limit` of them: what
    `status` groups into near-duplicates, a bounded read however large the table is."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Image.id, Image.phash)
            .where(
                Image.campaign_id == campaign_id,
                Image.state == ImageState.STORED,
                Image.phash.is_not(None),
            )
            .order_by(Image.id.desc())
            .limit(limit)
        )
        return [(int(image_id), str(value)) for image_id, value in rows]

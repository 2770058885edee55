"""Campaigns: a named harvest and the settings its images are processed with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.clock import utcnow
from harvester.db.models import Campaign
from harvester.db.session import insert_for, read_connection
from harvester.errors import InputError


async def ensure_campaign(
    engine: AsyncEngine, name: str, provider: str, settings: Mapping[str, Any]
) -> int:
    """Create the campaign, or return the existing one: re-submitting resumes, never forks."""
    if not name.strip():
        raise InputError("a campaign needs a non-empty --campaign name")
    async with engine.begin() as connection:
        await connection.execute(
            insert_for(connection, Campaign)
            .values(name=name, provider=provider, settings=dict(settings), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = (
            await connection.execute(
                select(Campaign.id, Campaign.provider).where(Campaign.name == name)
            )
        ).one()
    if row.provider != provider:
        raise InputError(
            f"campaign {name!r} already exists for provider {row.provider!r}; "
            f"choose another name for a {provider!r} campaign"
        )
    return int(row.id)


async def campaign_settings(engine: AsyncEngine) -> dict[int, dict[str, Any]]:
    async with read_connection(engine) as connection:
        rows = await connection.execute(select(Campaign.id, Campaign.settings))
        return {row.id: dict(row.settings) for row in rows}


async def campaign_id_of(engine: AsyncEngine, name: str) -> int:
    async with read_connection(engine) as connection:
        found = await connection.execute(select(Campaign.id).where(Campaign.name == name))
        campaign_id = found.scalar()
    if campaign_id is None:
        raise InputError(f"no campaign named {name!r}; `harvester status` lists them")
    return int(campaign_id)


async def campaign_names(engine: AsyncEngine) -> dict[int, str]:
    async with read_connection(engine) as connection:
        rows = await connection.execute(select(Campaign.id, Campaign.name))
        return {row.id: row.name for row in rows}

"""What a campaign report counts beyond its stored images: outcomes and queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageHit
from harvester.db.session import read_connection


@dataclass(frozen=True, order=True)
class Counted:
    what: str
    state: str
    count: int


async def outcomes(engine: AsyncEngine, campaign_id: int) -> list[Counted]:
    """The campaign's image rows by state and reason code ('' when there is none)."""
    statement = (
        select(Image.state, Image.reason, func.count())
        .where(Image.campaign_id == campaign_id)
        .group_by(Image.state, Image.reason)
    )
    async with read_connection(engine) as connection:
        rows = (await connection.execute(statement)).all()
    return sorted(Counted(reason or "", state, int(n)) for state, reason, n in rows)


async def per_query(engine: AsyncEngine, campaign_id: int) -> list[Counted]:
    """Images each query of the campaign found, by their state."""
    statement = (
        select(ImageHit.query, Image.state, func.count())
        .join(Image, Image.id == ImageHit.image_id)
        .where(ImageHit.campaign_id == campaign_id)
        .group_by(ImageHit.query, Image.state)
    )
    async with read_connection(engine) as connection:
        rows = (await connection.execute(statement)).all()
    return sorted(Counted(query, state, int(n)) for query, state, n in rows)

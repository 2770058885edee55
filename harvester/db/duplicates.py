"""'Which of these source bytes are stored already, and as which image?'"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image, ImageState
from harvester.db.session import read_connection


async def first_stored_with(engine: AsyncEngine, source_shas: Collection[str]) -> dict[str, int]:
    """Source hash -> the lowest id of a stored image with those bytes (absent if none)."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Image.source_sha256, func.min(Image.id))
            .where(Image.source_sha256.in_(set(source_shas)), Image.state == ImageState.STORED)
            .group_by(Image.source_sha256)
        )
        return {sha: image_id for sha, image_id in rows if sha is not None}

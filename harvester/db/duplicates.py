"""'Which of these source bytes are stored already, and as which image?'

Asked about once per image stored, so it runs on a connection held for it, on the driver
(harvester.db.session.HeldConnection), served by ix_images_source_sha256.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import ImageState
from harvester.db.session import HeldConnection

# -- The lowest id of a stored image with each of these source hashes:
# SELECT source_sha256, min(id) FROM images
# WHERE source_sha256 IN (:hashes) AND state = 'stored' GROUP BY source_sha256
_STORED = f"state = '{ImageState.STORED}' GROUP BY source_sha256"
_FIRST_STORED_SQLITE = "SELECT source_sha256, min(id) FROM images WHERE source_sha256 IN ({}) AND "
_FIRST_STORED_POSTGRES = (
    f"SELECT source_sha256, min(id) FROM images WHERE source_sha256 = ANY($1::text[]) AND {_STORED}"
)


class FirstStored:
    """Source hash -> the lowest id of a stored image with those bytes (absent if none)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._connection = HeldConnection(engine)

    async def __call__(self, source_shas: Collection[str]) -> dict[str, int]:
        shas = sorted(set(source_shas))
        if not shas:
            return {}
        if self._connection.dialect == "sqlite":
            marks = ", ".join("?" * len(shas))
            rows = await self._connection.fetch(_FIRST_STORED_SQLITE.format(marks) + _STORED, shas)
        else:
            rows = await self._connection.fetch(_FIRST_STORED_POSTGRES, [shas])
        return {sha: int(image_id) for sha, image_id in rows}

    async def close(self) -> None:
        await self._connection.close()

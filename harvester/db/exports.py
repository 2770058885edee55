"""What an export reads: stored images of some campaigns, with their licence and every hit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, ImageHit, ImageState, License
from harvester.db.session import read_connection
from harvester.errors import InputError
from harvester.licences import licence_of

# The record columns of an image: everything but the queue's own bookkeeping.
RECORD_COLUMNS = (
    "id", "provider", "provider_id", "group_name", "shard", "file_name", "path",
    "source_url", "source_width", "source_height", "width", "height", "sha256",
    "source_sha256", "bytes", "frame", "lat", "lon", "accuracy", "captured_at",
    "captured_local", "uploaded_at", "heading", "is_pano", "sequence_id", "owner", "owner_name",
    "title", "tags", "license_id", "raw", "phash", "finished_at",
)  # fmt: skip


@dataclass(frozen=True)
class Hit:
    campaign: str
    query: str
    role: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class StoredImage:
    """One stored image as an export sees it: its record, licence and finders."""

    record: dict[str, Any]
    campaign: str  # the campaign whose row it is
    license_name: str | None
    license_url: str | None
    hits: tuple[Hit, ...]

    @property
    def licence(self) -> tuple[str | None, str | None]:
        """The name and URL it is credited and filtered under (harvester.licences)."""
        record = self.record
        return licence_of(
            record["provider"], record["license_id"], self.license_name, self.license_url
        )


async def campaign_ids(engine: AsyncEngine, names: Sequence[str]) -> dict[str, int]:
    """Ids of the named campaigns; an unknown name is an input error naming it."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Campaign.name, Campaign.id).where(Campaign.name.in_(list(names)))
        )
        found = {name: int(campaign_id) for name, campaign_id in rows}
    unknown = [name for name in names if name not in found]
    if unknown:
        raise InputError(
            f"no campaign named {', '.join(map(repr, unknown))}; `harvester status` lists them"
        )
    return found


async def stored_images(
    engine: AsyncEngine, campaigns: Sequence[int], *, newest: int | None = None
) -> list[StoredImage]:
    """Stored images that the campaigns own or found, in (provider, provider_id) order;
    with `newest`, only the campaigns' own, the latest that many (a bounded read)."""
    columns = [getattr(Image, name) for name in RECORD_COLUMNS]
    found_by = select(ImageHit.image_id).where(ImageHit.campaign_id.in_(list(campaigns)))
    statement = (
        select(*columns, Campaign.name.label("campaign"), License.name, License.url)
        .join(Campaign, Campaign.id == Image.campaign_id)
        .outerjoin(
            License,
            and_(License.provider == Image.provider, License.license_id == Image.license_id),
        )
        .where(
            Image.state == ImageState.STORED,
            Image.path.is_not(None),
            or_(Image.campaign_id.in_(list(campaigns)), Image.id.in_(found_by)),
        )
        .order_by(Image.provider, Image.provider_id)
    )
    if newest is not None:
        statement = (
            statement.where(Image.campaign_id.in_(list(campaigns)))
            .order_by(None)
            .order_by(Image.id.desc())
            .limit(newest)
        )
    async with read_connection(engine) as connection:
        rows = (await connection.execute(statement)).all()
        hits = await _hits(connection, [row.id for row in rows])
    return [
        StoredImage(
            record={name: row._mapping[name] for name in RECORD_COLUMNS},
            campaign=row.campaign,
            license_name=row.name,
            license_url=row.url,
            hits=tuple(hits.get(row.id, ())),
        )
        for row in rows
    ]


async def _hits(connection: Any, image_ids: Sequence[int]) -> dict[int, list[Hit]]:
    hits: dict[int, list[Hit]] = defaultdict(list)
    for start in range(0, len(image_ids), 500):
        chunk = image_ids[start : start + 500]
        rows = await connection.execute(
            select(ImageHit.image_id, Campaign.name, ImageHit.query, ImageHit.role, ImageHit.detail)
            .join(Campaign, Campaign.id == ImageHit.campaign_id)
            .where(ImageHit.image_id.in_(chunk))
            .order_by(ImageHit.image_id, Campaign.name, ImageHit.query)
        )
        for image_id, campaign, query, role, detail in rows:
            hits[image_id].append(Hit(campaign, query, role, detail))
    return hits

"""Image rows: one per provider photo, however many queries find it; shard fixed at birth."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.db.clock import CLOCK_SKEW, utcnow
from harvester.db.models import Image, ImageHit, ImageState, License, ShardCounter
from harvester.db.session import insert_for, read_connection, transaction
from harvester.db.storable import Columns, text
from harvester.records import FoundImage
from harvester.storage.layout import shard_of

INSERT_CHUNK = 500


@dataclass
class Added:
    new: int = 0
    known: int = 0
    skipped: int = 0


async def add_images(
    engine: AsyncEngine,
    campaign_id: int,
    provider: str,
    query: str,
    found: Sequence[FoundImage],
    *,
    max_attempts: int,
    now: datetime | None = None,
) -> Added:
    """Insert new photos (shard reserved per group) and record every hit, in one transaction."""
    added = Added()
    async with transaction(engine) as connection:
        for start in range(0, len(found), INSERT_CHUNK):
            chunk = found[start : start + INSERT_CHUNK]
            part = await add_images_in(
                connection, campaign_id, provider, query, chunk, max_attempts, now or utcnow()
            )
            added.new += part.new
            added.known += part.known
            added.skipped += part.skipped
    return added


async def add_images_in(
    connection: AsyncConnection,
    campaign_id: int,
    provider: str,
    query: str,
    found: Sequence[FoundImage],
    max_attempts: int,
    now: datetime,
) -> Added:
    unique: dict[str, FoundImage] = {}
    # Sorted, so concurrent daemons lock counter rows and index entries in one order
    # (opposite orders deadlock on Postgres).
    for item in sorted(found, key=lambda f: (f.group, f.provider_id)):
        unique.setdefault(item.provider_id, item)
    existing = await _ids_of(connection, provider, list(unique))
    fresh = [item for item in unique.values() if item.provider_id not in existing]
    rows = await _new_rows(connection, campaign_id, provider, fresh, max_attempts, now)
    inserted: dict[str, int] = {}
    if rows:
        result = await connection.execute(
            insert_for(connection, Image)
            .on_conflict_do_nothing(index_elements=["provider", "provider_id"])
            .returning(Image.provider_id, Image.id),
            rows,
        )
        inserted = {provider_id: image_id for provider_id, image_id in result}
    # Rows another daemon inserted between our look-up and our insert: ask once more.
    raced = [r["provider_id"] for r in rows if r["provider_id"] not in inserted]
    all_ids = {**existing, **inserted, **(await _ids_of(connection, provider, raced))}
    hits: list[dict[str, Any]] = [
        {
            "image_id": all_ids[item.provider_id],
            "campaign_id": campaign_id,
            "query": query,
            "role": item.role,
            "detail": dict(item.hit_detail) if item.hit_detail else None,
            "created_at": now,
        }
        for item in found
        if item.provider_id in all_ids
    ]
    hits.sort(key=lambda hit: hit["image_id"])
    if hits:
        await connection.execute(
            insert_for(connection, ImageHit).on_conflict_do_nothing(
                index_elements=["image_id", "campaign_id", "query"]
            ),
            hits,
        )
    skipped = sum(1 for row in rows if row["state"] == ImageState.SKIPPED)
    return Added(new=len(inserted), known=len(unique) - len(fresh), skipped=skipped)


async def _ids_of(connection: AsyncConnection, provider: str, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = await connection.execute(
        select(Image.provider_id, Image.id).where(
            Image.provider == provider, Image.provider_id.in_(ids)
        )
    )
    return {provider_id: image_id for provider_id, image_id in rows}


async def _new_rows(
    connection: AsyncConnection,
    campaign_id: int,
    provider: str,
    fresh: Sequence[FoundImage],
    max_attempts: int,
    now: datetime,
) -> list[dict[str, Any]]:
    by_group: dict[str, list[FoundImage]] = defaultdict(list)
    for item in fresh:
        by_group[item.group].append(item)
    rows: list[dict[str, Any]] = []
    for group, items in sorted(by_group.items()):
        first = await reserve_indexes(connection, provider, group, len(items))
        for offset, item in enumerate(items):
            shard = shard_of(first + offset)
            skipped = item.skip_reason is not None
            rows.append(
                {
                    **_record_columns(item.record),
                    "campaign_id": campaign_id,
                    "provider": provider,
                    "provider_id": item.provider_id,
                    "group_name": group,
                    "shard": shard,
                    "file_name": item.file_name,
                    "source_url": item.source_url,
                    "state": ImageState.SKIPPED if skipped else ImageState.QUEUED,
                    "skip_reason": item.skip_reason,
                    "reason": skip_code(item.skip_reason),
                    "finished_at": now if skipped else None,
                    "max_attempts": max_attempts,
                    "not_before": now - CLOCK_SKEW,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    return rows


def skip_code(skip_reason: str | None) -> str | None:
    """The reason code a source put before its message ("too_small: original 320x240 ...")."""
    if skip_reason is None:
        return None
    code, colon, _ = skip_reason.partition(":")
    return code if colon and code.isidentifier() and len(code) <= 40 else "skipped"


_RECORD_COLUMNS = frozenset(
    {
        "lat", "lon", "accuracy", "captured_at", "captured_local", "uploaded_at", "heading",
        "is_pano", "sequence_id", "owner", "owner_name", "title", "tags", "license_id", "raw",
        "source_width", "source_height",
    }
)  # fmt: skip


_IMAGE_COLUMNS = Columns(Image.__table__)
_LICENSE_COLUMNS = Columns(License.__table__)


def _record_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(record) - _RECORD_COLUMNS
    if unknown:
        raise ValueError(f"not image record columns: {sorted(unknown)}")
    # Every row of one executemany must name the same columns.
    return {column: _IMAGE_COLUMNS.clean(column, record.get(column)) for column in _RECORD_COLUMNS}


async def reserve_indexes(
    connection: AsyncConnection, provider: str, group: str, count: int
) -> int:
    """Reserve `count` consecutive file indexes in a group; the row lock orders daemons."""
    await connection.execute(
        insert_for(connection, ShardCounter)
        .values(provider=provider, group_name=group, next_index=0)
        .on_conflict_do_nothing(index_elements=["provider", "group_name"])
    )
    result = await connection.execute(
        update(ShardCounter)
        .where(ShardCounter.provider == provider, ShardCounter.group_name == group)
        .values(next_index=ShardCounter.next_index + count)
        .returning(ShardCounter.next_index)
    )
    return int(result.scalar_one()) - count


async def upsert_licenses(
    engine: AsyncEngine, provider: str, licenses: Sequence[tuple[str, str, str | None]]
) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    for license_id, name, url in licenses:
        row = {"license_id": license_id, "name": name, "url": url}
        row = {key: _LICENSE_COLUMNS.clean(key, value) for key, value in row.items()}
        if row["license_id"]:  # one its column cannot hold names no image's (theirs drop too)
            # Keyed as it is stored: two ids alike once cleaned ("4", "4\x00") are one row, or
            # the upsert would meet its row twice (PostgreSQL refuses the whole statement).
            by_id[text(row["license_id"])] = {"provider": provider, **row}
    if not by_id:
        return
    async with transaction(engine) as connection:
        statement = insert_for(connection, License)
        statement = statement.on_conflict_do_update(
            index_elements=["provider", "license_id"],
            set_={"name": statement.excluded.name, "url": statement.excluded.url},
        )
        await connection.execute(statement, list(by_id.values()))


async def known_licenses(engine: AsyncEngine) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(provider, licence id) -> (name, url) of every licence a source has reported."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(License.provider, License.license_id, License.name, License.url)
        )
        return {(p, i): (n, u) for p, i, n, u in rows}


async def repoint_unfinished_images(engine: AsyncEngine, old_base: str, new_base: str) -> None:
    """Images not yet stored whose source moved host (the demo's emulator changed port)."""
    async with transaction(engine) as connection:
        await connection.execute(
            update(Image)
            .where(Image.state != ImageState.STORED, Image.source_url.startswith(old_base + "/"))
            .values(source_url=func.replace(Image.source_url, old_base, new_base))
        )

"""What the operator dashboard shows, read from the tables alone (no daemon needed):
throughput by minute, finishes per campaign, reasons with an example row, lease owners,
stored positions and the latest failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.db.clock import utcnow
from harvester.db.models import Campaign, Image, ImageState, Task
from harvester.db.session import read_connection

FINISHED = (ImageState.STORED, ImageState.SKIPPED, ImageState.FAILED)
NOT_STORED = (ImageState.SKIPPED, ImageState.FAILED)
RATE_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Reason:
    campaign: str
    state: str
    reason: str
    count: int
    example_id: str  # provider id of one such row
    example_url: str | None  # its source URL, as stored (redact before showing)
    example_message: str | None


@dataclass(frozen=True)
class Holder:
    """A daemon seen through the leases it holds."""

    owner: str
    rows: int
    lease_expires_at: datetime | None
    finished_recently: int  # images it finished in the last RATE_WINDOW


@dataclass(frozen=True)
class Failed:
    campaign: str
    provider_id: str
    reason: str | None
    message: str | None
    source_url: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Overview:
    now: datetime
    per_minute: list[int]  # images finished in each of the last 60 minutes, oldest first
    recent_by_campaign: dict[str, int]  # images finished in the last 15 minutes
    reasons: list[Reason]
    holders: list[Holder]
    points: list[tuple[float, float]]  # (lat, lon) of stored images, newest first
    stored_with_position: int
    failures: list[Failed]


async def overview(engine: AsyncEngine, *, points: int = 3000, failures: int = 15) -> Overview:
    now = utcnow()
    async with read_connection(engine) as connection:
        names = dict((await connection.execute(select(Campaign.id, Campaign.name))).all())
        return Overview(
            now=now,
            per_minute=await _per_minute(connection, now),
            recent_by_campaign=await _recent(connection, now, names),
            reasons=await _reasons(connection, names),
            holders=await _holders(connection, now),
            points=await _points(connection, points),
            stored_with_position=await _positioned(connection),
            failures=await _failures(connection, names, failures),
        )


def _minute(connection: AsyncConnection) -> ColumnElement[Any]:
    if connection.dialect.name == "postgresql":
        return func.to_char(
            func.date_trunc("minute", Image.finished_at.op("AT TIME ZONE")("UTC")),
            "YYYY-MM-DD HH24:MI",
        )
    return func.strftime("%Y-%m-%d %H:%M", Image.finished_at)


async def _per_minute(connection: AsyncConnection, now: datetime) -> list[int]:
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    minute = _minute(connection).label("minute")
    rows = await connection.execute(
        select(minute, func.count())
        .where(Image.finished_at >= start, Image.state.in_(FINISHED))
        .group_by(minute)
    )
    counts = [0] * 60
    for bucket, count in rows:
        at = datetime.strptime(str(bucket), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        index = int((at - start).total_seconds() // 60)
        if 0 <= index < 60:
            counts[index] += count
    return counts


async def _recent(
    connection: AsyncConnection, now: datetime, names: dict[int, str]
) -> dict[str, int]:
    rows = await connection.execute(
        select(Image.campaign_id, func.count())
        .where(Image.finished_at >= now - timedelta(minutes=15), Image.state.in_(FINISHED))
        .group_by(Image.campaign_id)
    )
    return {names.get(campaign_id, str(campaign_id)): count for campaign_id, count in rows}


async def _reasons(connection: AsyncConnection, names: dict[int, str]) -> list[Reason]:
    """Counts by campaign, state and reason, each with its most recent row as the example."""
    key = (Image.campaign_id, Image.state, Image.reason)
    grouped = (
        select(*key, func.count().label("n"), func.max(Image.id).label("example"))
        .where(Image.state.in_(NOT_STORED))
        .group_by(*key)
        .subquery()
    )
    rows = await connection.execute(
        select(
            grouped.c.campaign_id,
            grouped.c.state,
            grouped.c.reason,
            grouped.c.n,
            Image.provider_id,
            Image.source_url,
            func.coalesce(Image.last_error, Image.skip_reason),
        )
        .join(Image, Image.id == grouped.c.example)
        .order_by(grouped.c.n.desc())
    )
    return [
        Reason(names.get(c, str(c)), state, reason or "unknown", n, pid, url, message)
        for c, state, reason, n, pid, url, message in rows
    ]


async def _holders(connection: AsyncConnection, now: datetime) -> list[Holder]:
    """Daemons holding leases now or that finished images lately, with their rate."""
    leases = union_all(
        *(
            select(model.lease_owner.label("owner"), model.lease_expires_at.label("until")).where(
                model.state == "running", model.lease_owner.is_not(None)
            )
            for model in (Task, Image)
        )
    ).subquery()
    held = await connection.execute(
        select(leases.c.owner, func.count(), func.max(leases.c.until)).group_by(leases.c.owner)
    )
    holding = {str(owner): (int(n), _aware(until)) for owner, n, until in held}
    finished = await connection.execute(
        select(Image.finished_by, func.count())
        .where(Image.finished_at >= now - RATE_WINDOW, Image.finished_by.is_not(None))
        .group_by(Image.finished_by)
    )
    recent = {str(owner): int(n) for owner, n in finished}
    return [
        Holder(owner, *holding.get(owner, (0, None)), recent.get(owner, 0))
        for owner in sorted(set(holding) | set(recent))
    ]


async def _points(connection: AsyncConnection, limit: int) -> list[tuple[float, float]]:
    rows = await connection.execute(
        select(Image.lat, Image.lon)
        .where(Image.state == ImageState.STORED, Image.lat.is_not(None), Image.lon.is_not(None))
        .order_by(Image.id.desc())
        .limit(limit)
    )
    return [(float(lat), float(lon)) for lat, lon in rows if lat is not None and lon is not None]


async def _positioned(connection: AsyncConnection) -> int:
    found = await connection.execute(
        select(func.count()).where(
            Image.state == ImageState.STORED, Image.lat.is_not(None), Image.lon.is_not(None)
        )
    )
    return int(found.scalar_one())


async def _failures(connection: AsyncConnection, names: dict[int, str], limit: int) -> list[Failed]:
    rows = await connection.execute(
        select(
            Image.campaign_id,
            Image.provider_id,
            Image.reason,
            Image.last_error,
            Image.source_url,
            Image.finished_at,
        )
        .where(Image.state == ImageState.FAILED)
        .order_by(Image.finished_at.desc(), Image.id.desc())
        .limit(limit)
    )
    return [
        Failed(names.get(c, str(c)), pid, reason, message, url, finished)
        for c, pid, reason, message, url, finished in rows
    ]


def _aware(value: Any) -> datetime | None:
    """A union loses the column type: SQLite hands back text, Postgres a datetime."""
    if value is None:
        return None
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(at, datetime)
    return at if at.tzinfo else at.replace(tzinfo=UTC)

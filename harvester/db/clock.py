"""Wall-clock time for rows: aware UTC, injectable, and the skew new rows allow for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

WallClock = Callable[[], datetime]

# New rows are due at once even on a daemon whose clock runs this far behind the writer's
# (on Postgres the claim compares with the database's clock).
CLOCK_SKEW = timedelta(minutes=5)
_DATABASE_NOW = select(func.now())  # built once: every claim and write asks it on PostgreSQL


def utcnow() -> datetime:
    return datetime.now(UTC)


async def shared_now(connection: AsyncConnection, clock: WallClock) -> datetime:
    """PostgreSQL's clock when daemons share one (host clocks may disagree about leases),
    unless a test gave its own clock; SQLite's daemons share a host, hence its clock."""
    if clock is utcnow and connection.dialect.name == "postgresql":
        moment: datetime = (await connection.execute(_DATABASE_NOW)).scalar_one()
        return moment
    return clock()

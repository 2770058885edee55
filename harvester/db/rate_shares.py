"""Leased slices of shared rate limits, in the `rate_shares` table (see harvester.http.shared).

One renewal is one short transaction per key, serialised per key (an advisory lock on
PostgreSQL, BEGIN IMMEDIATE on SQLite): drop the key's expired slices, then grant the
holder an equal share of the limit, but never more than the other live holders leave
free. The sum of live slices therefore never exceeds the limit, whoever joins or dies; a
new holder starts small and grows as the others shrink to an equal share at their own
renewals (a third of a lease apart).

The same transaction keeps the key's latest 429 (`rate_throttles`): a holder reports one
with its renewal, and every renewal hands back the cut and pause in force, so a 429 one
daemon got slows every holder of the key down within a renewal interval. On PostgreSQL the
renewal that starts a new cut also NOTIFYs it (harvester.db.throttle_notices), so the other
daemons renew at once instead; 429s that join a cut already made notify nobody.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.db.clock import WallClock, shared_now, utcnow
from harvester.db.models import RateShare, RateThrottle
from harvester.db.session import insert_for, read_connection, transaction
from harvester.db.throttle_notices import notify_throttled
from harvester.http.shared import SharesUnavailable, Slice, Throttle, grant

DB_ERRORS = (SQLAlchemyError, OSError)


def _lock_id(key: str) -> int:
    """A signed 64-bit advisory lock id for one key."""
    return int.from_bytes(
        hashlib.sha256(b"rate_shares:" + key.encode()).digest()[:8], "big", signed=True
    )


class DatabaseRateShares:
    """The ``RateShares`` store on the queue's database: any process with an engine holds
    slices (daemons on other hosts, or the worker processes of one daemon)."""

    def __init__(
        self,
        engine: AsyncEngine,
        lease_seconds: float,
        *,
        clock: WallClock = utcnow,
    ) -> None:
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        self._engine = engine
        self._lease = lease_seconds
        self._clock = clock

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        try:
            async with self._engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Serialise renewals of this key only; SQLite's BEGIN IMMEDIATE serialises all.
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _lock_id(key)}
                    )
                now = await self._now(connection)
                rate = await self._grant(connection, key, holder, total_rate, now)
                pause_s, cut = await self._throttle(connection, key, now, throttle)
        except DB_ERRORS as exc:
            raise SharesUnavailable(f"rate shares: {type(exc).__name__}") from exc
        return Slice(rate, self._lease, pause_s, cut)

    async def give_back(self, key: str, holder: str) -> None:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    delete(RateShare).where(RateShare.key == key, RateShare.holder == holder)
                )
        except DB_ERRORS as exc:
            raise SharesUnavailable(f"rate shares: {type(exc).__name__}") from exc

    async def holders(self, key: str) -> dict[str, float]:
        """The live slices of a key (for operators and tests)."""
        async with self._engine.connect() as connection:
            now = await self._now(connection)
            rows = await connection.execute(
                select(RateShare.holder, RateShare.rate).where(
                    RateShare.key == key, RateShare.expires_at > now
                )
            )
            return {holder: rate for holder, rate in rows}

    async def holder_names(self) -> set[str]:
        """Every holder with a slice of any key, its lease run out or not."""
        async with read_connection(self._engine) as connection:
            rows = await connection.execute(select(RateShare.holder).distinct())
            return {holder for (holder,) in rows}

    async def drop_holders(self, holders: Sequence[str]) -> int:
        """-- The slices of holders known to be dead count for nothing from now, not when
        their leases end: DELETE FROM rate_shares WHERE holder IN (:holders)."""
        if not holders:
            return 0
        async with transaction(self._engine) as connection:
            result = await connection.execute(
                delete(RateShare).where(RateShare.holder.in_(holders))
            )
            return int(result.rowcount)

    async def _grant(
        self, connection: AsyncConnection, key: str, holder: str, total_rate: float, now: datetime
    ) -> float:
        # -- the key's expired slices count for nothing
        await connection.execute(
            delete(RateShare).where(RateShare.key == key, RateShare.expires_at <= now)
        )
        # -- what the other live holders of the key hold
        others = (
            (
                await connection.execute(
                    select(RateShare.rate).where(RateShare.key == key, RateShare.holder != holder)
                )
            )
            .scalars()
            .all()
        )
        rate = grant(total_rate, others)
        expires = now + timedelta(seconds=self._lease)
        statement = insert_for(connection, RateShare).values(
            key=key, holder=holder, rate=rate, expires_at=expires
        )
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["key", "holder"], set_={"rate": rate, "expires_at": expires}
            )
        )
        return rate

    async def _throttle(
        self, connection: AsyncConnection, key: str, now: datetime, throttle: Throttle | None
    ) -> tuple[float, float | None]:
        """Record the holder's 429 (if any) with the key; the key's pause left (seconds) and
        latest cut (a timestamp) in force."""
        lease = timedelta(seconds=self._lease)
        row = (
            await connection.execute(select(RateThrottle).where(RateThrottle.key == key))
        ).first()
        if throttle is not None:
            paused_until = now + timedelta(seconds=throttle.pause_s)
            if row is None:
                await connection.execute(
                    insert_for(connection, RateThrottle).values(
                        key=key, cut_at=now, paused_until=paused_until
                    )
                )
                await notify_throttled(connection, key)
                return throttle.pause_s, now.timestamp()
            # 429s within a renewal interval of the cut are one overload: the other holders
            # cannot have heard of it yet.
            cut_at = row.cut_at if now - row.cut_at < lease / 3 else now
            if cut_at == now:
                await notify_throttled(connection, key)
            paused_until = max(paused_until, row.paused_until)
            await connection.execute(
                update(RateThrottle)
                .where(RateThrottle.key == key)
                .values(cut_at=cut_at, paused_until=paused_until)
            )
        elif row is None:
            return 0.0, None
        else:
            cut_at, paused_until = row.cut_at, row.paused_until
            if cut_at <= now - lease and paused_until <= now:
                await connection.execute(delete(RateThrottle).where(RateThrottle.key == key))
                return 0.0, None
        pause_s = max(0.0, (paused_until - now).total_seconds())
        return pause_s, cut_at.timestamp() if cut_at > now - lease else None

    async def _now(self, connection: AsyncConnection) -> datetime:
        return await shared_now(connection, self._clock)

"""Driver errors leave harvester.db once, the original kept: as DatabaseUnavailable (wait
and try again), or as RecordRefused when the database answered and refused a value."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_settings, ensure_campaign
from harvester.db.clock import utcnow
from harvester.db.migrate import upgrade
from harvester.db.models import Campaign, Image
from harvester.db.session import create_engine, database_error, transaction
from harvester.errors import DatabaseUnavailable, HarvesterError, RecordRefused


async def test_a_database_that_refuses_connections_is_unavailable_with_the_cause_kept():
    engine = create_engine("postgresql://harvester@127.0.0.1:1/nowhere")  # nothing listens
    try:
        for call in (campaign_settings(engine), ensure_campaign(engine, "c", "urls", {})):
            with pytest.raises(DatabaseUnavailable) as caught:
                await call
            assert isinstance(caught.value, HarvesterError)
            assert isinstance(caught.value.__cause__, SQLAlchemyError | OSError)
            assert caught.value.reason == "database_unavailable"
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(postgres_url: str):
    engine, admin = create_engine(postgres_url), create_engine(postgres_url)
    try:
        await upgrade(engine)
        campaign = await ensure_campaign(engine, "c", "urls", {})
        async with engine.connect() as connection:  # the pool's one connection, idle after
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with admin.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert campaign in await campaign_settings(engine)  # not an error on the ended one
    finally:
        await engine.dispose()
        await admin.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        update(Image).values(bytes=2**70),  # past 64 bits
        update(Image).values(path="\ud800"),  # a lone surrogate, in a column of ours
        insert(Campaign).values(name="c", provider="nope", settings={}, created_at=utcnow()),
    ],
    ids=["int", "surrogate", "check"],
)
async def test_a_value_the_database_refuses_is_a_refused_record_not_an_outage(
    engine: AsyncEngine, statement: Any
):
    with pytest.raises(RecordRefused) as caught:
        async with transaction(engine) as connection:
            await connection.execute(statement)
    assert not isinstance(caught.value, DatabaseUnavailable)
    assert caught.value.reason == "bad_record" and caught.value.__cause__ is not None
    # The driver's line, not SQLAlchemy's screen of the statement and its parameters.
    message = str(caught.value)
    assert "\n" not in message and "[SQL" not in message and len(message) < 600, message


def _closed_aiosqlite() -> BaseException:
    """What SQLAlchemy's aiosqlite dialect raises on a connection closed under it."""
    closed = sqlite3.OperationalError("no active connection")
    closed.__cause__ = ValueError("no active connection")
    return OperationalError("SELECT 1", {}, closed)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")),
        OperationalError("UPDATE images", {}, sqlite3.OperationalError("disk I/O error")),
        _closed_aiosqlite(),
        DBAPIError("UPDATE images", {}, asyncpg.DeadlockDetectedError("deadlock detected")),
        DBAPIError("SELECT 1", {}, asyncpg.AdminShutdownError("terminating connection")),
        DBAPIError("SELECT 1", {}, asyncpg.ConnectionDoesNotExistError("connection lost")),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["locked", "disk", "closed", "deadlock", "shutdown", "lost", "refused"],
)
def test_an_outage_is_still_an_outage(error: BaseException) -> None:
    assert type(database_error(error)) is DatabaseUnavailable

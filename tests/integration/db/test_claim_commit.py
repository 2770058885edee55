"""The claim on PostgreSQL commits without waiting for its WAL to reach the disk (a claim lost
in a crash only gives its rows back), and only its own transaction does: the pooled
connection it ran on keeps the server's setting for the outcomes that come next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from defaults import MAX_ATTEMPTS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.catalog import add_images
from harvester.db.migrate import upgrade
from harvester.db.models import Image
from harvester.db.queue_claims import one_statement_claim, one_statement_values
from harvester.db.session import create_engine, statement_connection
from harvester.records import FoundImage

SETTING = text("SELECT current_setting('synchronous_commit')")


@pytest.fixture
async def queued(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL database with 4 queued image rows."""
    engine = create_engine(postgres_url)
    try:
        await upgrade(engine)
        campaign = await ensure_campaign(engine, "c", "urls", {})
        found = [
            FoundImage(f"p{i}", "g", f"{i}.jpg", f"https://example.org/{i}.jpg", {})
            for i in range(4)
        ]
        await add_images(engine, campaign, "urls", "q", found, max_attempts=MAX_ATTEMPTS)
        yield engine
    finally:
        await engine.dispose()


async def _claim(connection: AsyncConnection, limit: int) -> int:
    statement = one_statement_claim(Image, limit)
    rows = (await connection.execute(statement, one_statement_values("w", 60))).all()
    return len([row for row in rows if row.id is not None])


async def test_a_claims_transaction_commits_without_waiting_for_the_wal_flush(
    queued: AsyncEngine,
):
    async with queued.begin() as connection:  # the claim's transaction, held open to look in
        assert await _claim(connection, 2) == 2
        assert (await connection.execute(SETTING)).scalar_one() == "off"


async def test_the_connection_a_claim_ran_on_keeps_synchronous_commit_for_what_follows(
    queued: AsyncEngine,
):
    async with statement_connection(queued) as connection:  # each statement commits alone
        before = (await connection.execute(SETTING)).scalar_one()
        assert await _claim(connection, 2) == 2
        assert before == "on" and (await connection.execute(SETTING)).scalar_one() == before

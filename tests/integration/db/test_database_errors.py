"""Driver errors leave harvester.db once, as DatabaseUnavailable, the original kept."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from harvester.db.campaigns import campaign_settings, ensure_campaign
from harvester.db.migrate import upgrade
from harvester.db.session import create_engine
from harvester.errors import DatabaseUnavailable, HarvesterError


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

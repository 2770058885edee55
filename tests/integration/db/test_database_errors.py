"""Driver errors leave harvester.db once, as DatabaseUnavailable, the original kept."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import SQLAlchemyError

from harvester.db.campaigns import campaign_settings, ensure_campaign
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

"""The duplicate-bytes lookup, run on the driver of a held connection, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.db.duplicates import FirstStored
from harvester.db.migrate import upgrade
from harvester.db.models import Image
from harvester.db.session import create_engine
from harvester.errors import DatabaseUnavailable


async def _images(engine: AsyncEngine, rows: list[tuple[str, str | None]]) -> list[int]:
    """Images in these states with these source hashes, in order; their ids."""
    campaign = await ensure_campaign(engine, "c1", "urls", {})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values = [
        {
            "campaign_id": campaign,
            "provider": "urls",
            "provider_id": f"p{i}",
            "state": state,
            "group_name": "g",
            "shard": 0,
            "file_name": f"f{i}",
            "source_sha256": sha,
            "not_before": now,
            "created_at": now,
            "updated_at": now,
        }
        for i, (state, sha) in enumerate(rows)
    ]
    async with engine.begin() as connection:
        result = await connection.execute(insert(Image).returning(Image.id), values)
        return sorted(result.scalars().all())


async def test_first_stored_names_the_lowest_stored_id_of_each_hash(engine: AsyncEngine):
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    states = [("skipped", a), ("stored", a), ("stored", a), ("stored", b), ("queued", c)]
    ids = await _images(engine, [*states, ("stored", None)])
    lookup = FirstStored(engine)
    try:
        assert await lookup([a, b, c, "d" * 64]) == {a: ids[1], b: ids[3]}
        assert await lookup([c]) == {}
        assert await lookup([]) == {}
        assert await lookup([b, b]) == {b: ids[3]}  # the connection is held between lookups
    finally:
        await lookup.close()


async def test_a_lookup_whose_held_connection_the_server_ended_answers_on_another(
    postgres_url: str,
):
    # A restart or an idle-session timeout ends the held connection while the database is
    # up: the lookup is answered (as a pre-pinged check-out would be), not failed.
    engine = create_engine(postgres_url)
    try:
        await upgrade(engine)
        (stored,) = await _images(engine, [("stored", "e" * 64)])
        lookup = FirstStored(engine)
        assert await lookup(["e" * 64]) == {"e" * 64: stored}
        async with engine.connect() as admin:  # the server ends the held connection's session
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert await lookup(["e" * 64]) == {"e" * 64: stored}
        await lookup.close()
    finally:
        await engine.dispose()


async def test_a_lookup_while_the_database_is_unreachable_fails_as_unavailable():
    engine = create_engine("postgresql://postgres@127.0.0.1:1/harvester")  # nothing listens
    lookup = FirstStored(engine)
    try:
        with pytest.raises(DatabaseUnavailable):
            await lookup(["e" * 64])
        with pytest.raises(DatabaseUnavailable):  # and again: no connection is left held
            await lookup(["e" * 64])
    finally:
        await lookup.close()
        await engine.dispose()

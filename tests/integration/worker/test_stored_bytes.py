"""The duplicate-bytes lookup batches what is already waiting and never waits to make a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.worker.duplicates import StoredBytes


@pytest.fixture
async def stored(sqlite_engine: AsyncEngine) -> AsyncIterator[StoredBytes]:
    lookups = StoredBytes(sqlite_engine)
    yield lookups
    await lookups.close()


async def test_lookups_asked_together_share_one_query(stored: StoredBytes):
    answers = await asyncio.gather(*(stored.stored_as(f"{i:064x}", i) for i in range(20)))
    assert answers == [None] * 20 and stored.queries == 1


async def test_lookups_asked_during_a_query_go_together_in_the_next(stored: StoredBytes):
    first = asyncio.create_task(stored.stored_as("a" * 64, 1))
    await asyncio.sleep(0)  # its query starts at once, alone: nothing waits for company
    await asyncio.sleep(0)
    later = await asyncio.gather(*(stored.stored_as(f"{i:064x}", i) for i in range(2, 12)))
    assert await first is None and later == [None] * 10
    assert stored.queries == 2


async def test_a_lone_lookup_is_answered_without_a_timer(stored: StoredBytes):
    loop = asyncio.get_running_loop()
    lookup = asyncio.create_task(stored.stored_as("b" * 64, 1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Nothing scheduled on the clock: the query runs on I/O alone.
    assert not [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert await lookup is None

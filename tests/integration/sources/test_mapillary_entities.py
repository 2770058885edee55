"""The entities standing in for a refused `?ids=`, over real HTTP with the emulator: how many
are asked for at once, and how a stop met while they fail ends the task."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from clocks import FakeClock
from mly_harness import (
    BURST,
    RATE,
    emulator_stats,
    make_source,
    quick_http,
    refusing_multi_get,
    sequence_ids,
    set_faults,
)

from harvester.emulator import RunningEmulator
from harvester.http import HttpClient, HttpSettings, TokenBucket
from harvester.sources.base import TaskView
from harvester.sources.mapillary import BATCH_IDS


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with quick_http() as client:
        yield client


def _ids_task(ids: list[str]) -> TaskView:
    return TaskView(1, 1, "mapillary_ids", {"items": [{"id": i} for i in ids]}, 1)


def _longest_sequence(emu: RunningEmulator) -> tuple[str, list[str]]:
    counts = Counter(image.sequence for image in emu.world.mapillary.images)
    sequence_id = counts.most_common(1)[0][0]
    return sequence_id, [image.id for image in emu.world.mapillary_sequence(sequence_id)]


async def test_a_long_sequence_asks_for_no_more_entities_at_once_than_one_multi_get_held() -> None:
    """Where `?ids=` is refused, a sequence's entities are asked for a batch at a time: all of
    them at once would queue on the entity limiter, first come first served, ahead of every
    other task's calls and thumbnail refreshes. The emulator holds each answer until one more
    than a batch is in flight (a batch alone waits out the latency), so entities handed out
    beyond the bound are seen at once, however fast the machine; the client's own connection
    cap is lifted so that it hides nothing. Every image is kept, in the sequence's order."""
    emu = await refusing_multi_get()
    sequence_id, listed = _longest_sequence(emu)
    assert len(listed) > 2 * BATCH_IDS  # past the first batch, more than a batch is left
    wide = len(listed) * 2
    settings = HttpSettings(max_attempts=2, pool_limit=wide, per_host_limit=wide)
    try:
        await set_faults(emu, latency_ms=300, overlap=BATCH_IDS + 1, scope="api")
        async with HttpClient(settings) as http:
            limiter = TokenBucket(RATE, 1, clock=FakeClock())
            task = TaskView(1, 1, "mapillary_sequence", {"sequence_id": sequence_id}, 1)
            expansion = await make_source(http, emu, limiter=limiter).expand(task, {})
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    entity = stats["endpoints"]["mapillary.entity"]
    assert entity["total"] == len(listed) and entity["max_in_flight"] <= BATCH_IDS
    assert [image.provider_id for image in expansion.images] == listed
    assert all(i.source_url and i.skip_reason is None for i in expansion.images)


class _StopAtA429(TokenBucket):
    """An entity limiter through which the daemon's stop (its task cancelled) lands as the
    first call meets a 429, the others still on their way."""

    def __init__(self) -> None:
        super().__init__(1000.0, BURST, clock=FakeClock())
        self.stopping: asyncio.Task[Any] | None = None

    def throttled(self, retry_after: float | None = None) -> None:
        super().throttled(retry_after)
        if self.stopping is not None:
            self.stopping.cancel()


async def test_a_stop_met_while_the_entities_fail_ends_the_task_cancelled(
    http: HttpClient,
) -> None:
    """A stopping daemon cancels its tasks, and hands back each that ends cancelled. One
    stopped while the entities fail (one meets a long 429, the others in flight together)
    still ends cancelled: the group would raise the 429 and drop the cancellation, and the
    task be charged a failure."""
    emu = await refusing_multi_get(mapillary_limit_in_body=False)
    listed = sequence_ids(4)[1]
    limiter = _StopAtA429()
    source = make_source(http, emu, limiter=limiter)
    try:
        await source.expand(_ids_task(listed[:1]), {})  # learns `?ids=` is refused
        await set_faults(
            emu, rate_429=1, retry_after_s=600, latency_ms=60_000, overlap=4, scope="api"
        )
        stopped = asyncio.create_task(source.expand(_ids_task(listed), {}))
        limiter.stopping = stopped
        await asyncio.wait([stopped])
        stats = await emulator_stats(emu)
    finally:
        await emu.close()
    assert stats["endpoints"]["mapillary.entity"]["max_in_flight"] == len(listed)
    assert stopped.cancelled()

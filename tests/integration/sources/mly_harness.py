"""What the Mapillary source tests share: a source on an emulator, the daemon's task loop,
the emulator's world, counts and knobs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from defaults import MAX_ATTEMPTS
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_settings
from harvester.db.catalog import add_images, upsert_licenses
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import Image, Task
from harvester.db.queue import Queue
from harvester.emulator import EmulatorConfig, RunningEmulator, Warts, start_emulator
from harvester.emulator.server import build_world
from harvester.http import CircuitBreaker, HttpClient, HttpSettings, RateLimiter, TokenBucket
from harvester.sources.base import TaskView
from harvester.sources.mapillary import MapillarySource

TOKEN = "MLY|4242|s3cr3t-token-0123456789abcdef"
RATE, BURST = 10.0, 2.0


@asynccontextmanager
async def quick_http() -> AsyncIterator[HttpClient]:
    """A client that tries twice, backing off for hundredths of a second."""
    settings = HttpSettings(max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    async with HttpClient(settings) as client:
        yield client


def make_source(
    http: HttpClient,
    emu: RunningEmulator,
    token: str = TOKEN,
    rate: float = 1000.0,
    breaker: CircuitBreaker | None = None,
    limiter: RateLimiter | None = None,
) -> MapillarySource:
    limiter = limiter or TokenBucket(rate, BURST)  # one bucket: the emulator counts per token
    return MapillarySource(
        http,
        api_url=emu.mapillary_api_url,
        token=SecretStr(token),
        search_limiter=limiter,
        entity_limiter=limiter,
        breaker=breaker,
    )


def sequence_ids(count: int) -> tuple[str, list[str]]:
    """A sequence of the emulators' world (the same for every one) and its first ids."""
    config = EmulatorConfig()
    world = build_world(config.seed, config.world)
    sequence_id = world.mapillary_sequence_pairs()[0][0]
    return sequence_id, [im.id for im in world.mapillary_sequence(sequence_id)][:count]


async def refusing_multi_get(**warts: Any) -> RunningEmulator:
    """An emulator whose `?ids=` is refused as an unsupported request."""
    config = EmulatorConfig(
        mapillary_tokens=frozenset({TOKEN}), warts=Warts(mapillary_multiget=False, **warts)
    )
    return await start_emulator(config)


async def run_chain(
    engine: AsyncEngine, source: MapillarySource, results: list[dict[str, Any]] | None = None
) -> int:
    """What the daemon does with tasks: expand, add images, enqueue follow-ups, repeat."""
    queue, runs = Queue(engine, Task), 0
    settings = await campaign_settings(engine)
    while rows := await queue.claim("test", 20, 60, kinds=sorted(source.kinds)):
        for row in rows:
            view = TaskView(row.id, row.campaign_id, row.kind, row.payload, row.attempts)
            expansion = await source.expand(view, settings[row.campaign_id])
            if results is not None:
                results.append(expansion.result)
            await add_images(
                engine,
                row.campaign_id,
                "mapillary",
                expansion.query,
                expansion.images,
                max_attempts=MAX_ATTEMPTS,
            )
            await enqueue_tasks(
                engine, row.campaign_id, expansion.follow_up, default_max_attempts=MAX_ATTEMPTS
            )
            await upsert_licenses(engine, "mapillary", expansion.licenses)
            runs += 1
        await queue.done("test", [row.id for row in rows])
    return runs


async def stored_ids(engine: AsyncEngine, campaign_id: int) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Image.provider_id).where(Image.campaign_id == campaign_id)
        )
        return [r for (r,) in rows]


async def emulator_stats(emu: RunningEmulator) -> dict[str, Any]:
    url = f"{emu.base_url}/_emulator/stats"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body: dict[str, Any] = await resp.json()
    return body


def endpoint_totals(stats: Mapping[str, Any]) -> dict[str, int]:
    return {name: c["total"] for name, c in stats["endpoints"].items()}


async def set_faults(emu: RunningEmulator, **knobs: object) -> None:
    """Turn the emulator's fault knobs live (`scope` too); the others keep their values."""
    url = f"{emu.base_url}/_emulator/faults"
    params = {name: str(value) for name, value in knobs.items()}
    async with aiohttp.ClientSession() as session, session.post(url, params=params) as resp:
        resp.raise_for_status()

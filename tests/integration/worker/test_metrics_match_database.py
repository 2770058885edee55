"""After a harvest with faults, the daemon's Prometheus counters say what the database says."""

from __future__ import annotations

import csv
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from defaults import MAX_ATTEMPTS
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image
from harvester.emulator import EmulatorConfig, Faults, RunningEmulator, start_emulator
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.context import open_context
from harvester.worker.daemon import Daemon


@pytest.fixture
async def faulty_cdn() -> AsyncIterator[RunningEmulator]:
    faults = Faults(rate_429=0.1, retry_after_s=0, error_5xx_rate=0.1, reset_rate=0.03)
    running = await start_emulator(EmulatorConfig(faults=faults))
    yield running
    await running.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _samples(exposition: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _types(exposition: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(exposition.decode())}


async def _submit(engine: AsyncEngine, tmp_path: Path, name: str, rows: list[Any]) -> None:
    listing = tmp_path / f"{name}.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    await submit_urls(engine, UrlCampaign(name, listing), max_attempts=MAX_ATTEMPTS)


async def test_counters_after_a_harvest_equal_the_database_counts(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    tmp_path: Path,
    faulty_cdn: RunningEmulator,
    quick_settings: Any,
):
    rows = faulty_cdn.world.url_list(60, base_url=faulty_cdn.base_url)  # 404s, HTML, tiny...
    # Refused connections outlast the client's own retries: the queue retries the row once.
    refused = {**rows[0], "id": "refused", "url": f"http://127.0.0.1:{_closed_port()}/x.jpg"}
    await _submit(sqlite_engine, tmp_path, "north", [*rows[:35], refused])
    await _submit(sqlite_engine, tmp_path, "south", rows[35:] + rows[:5])  # 5 duplicates
    settings = quick_settings(sqlite_url, max_attempts=2)  # two worker processes
    async with open_context(settings, sqlite_engine) as ctx:
        daemon = Daemon(ctx, until_idle=True)
        await daemon.run()
        await daemon.metrics.refresh_queue_rows()
        exposition = daemon.metrics.exposition()
    samples = _samples(exposition)

    async with sqlite_engine.connect() as connection:
        names = dict((await connection.execute(select(Campaign.id, Campaign.name))).all())
        images = (await connection.execute(select(Image))).all()
    in_database = Counter(
        (r.provider, names[r.campaign_id], r.state, r.reason or "") for r in images
    )
    counted = Counter(
        {
            (s["provider"], s["campaign"], s["outcome"], s["reason"]): int(v)
            for s, v in samples["harvester_images_total"]
            if s["outcome"] != "retried"
        }
    )
    assert counted == in_database
    assert {"stored", "skipped", "failed"} <= {state for _, _, state, _ in in_database}
    assert len({reason for *_, reason in in_database}) >= 4, in_database

    # Every attempt that ended in a retry was counted once: one fewer than each row's claims.
    retried = sum(v for s, v in samples["harvester_images_total"] if s["outcome"] == "retried")
    assert retried == sum(r.attempts - 1 for r in images) > 0

    # The HTTP counts agree with what the emulator served.
    served = faulty_cdn.state.stats.snapshot()
    calls = {(s["api"], s["status"]): v for s, v in samples["harvester_api_calls_total"]}
    # (A reset request got no answer; "error" calls also count those the server never saw,
    # on a kept-alive connection it had closed.)
    answered = sum(v for (api, status), v in calls.items() if api == "images" and status != "error")
    assert answered == served["total"] - served["resets"]
    assert calls[("images", "error")] >= 2 * 5 + served["resets"]  # refused: 2 attempts of 5
    throttled = sum(v for s, v in samples["harvester_http_429_total"])
    assert throttled == calls[("images", "429")] == served["status_429"] > 0
    assert sum(v for _, v in samples["harvester_http_retries_total"]) > 0

    stored = sum(1 for r in images if r.state == "stored")
    fetched = [v for s, v in samples["harvester_fetch_seconds_count"] if s["provider"] == "urls"]
    assert fetched and fetched[0] >= stored
    stored_bytes = sum(v for _, v in samples["harvester_stored_bytes_sum"])
    assert stored_bytes == sum(r.bytes for r in images if r.state == "stored")
    depth = {(s["campaign"], s["table"], s["state"]): v for s, v in samples["harvester_queue_rows"]}
    assert depth[("north", "images", "stored")] == in_database_count(in_database, "north")
    types = _types(exposition)
    assert types["harvester_images"] == "counter" and types["harvester_queue_rows"] == "gauge"
    assert types["harvester_fetch_seconds"] == "histogram"


def in_database_count(counts: Counter[tuple[str, str, str, str]], campaign: str) -> int:
    return sum(n for (_, c, state, _), n in counts.items() if c == campaign and state == "stored")

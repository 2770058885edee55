"""A daemon whose lease on a row ran out counts nothing of it: the daemon that took the row
over records and counts it, once. Their progress counts and Prometheus counters add up to
what the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defaults import MAX_ATTEMPTS
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Image
from harvester.db.queue import Queue
from harvester.emulator import RunningEmulator
from harvester.outcomes import Result
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.worker.context import Context, open_context
from harvester.worker.daemon import Daemon


def _images_counted(daemon: Daemon) -> dict[str, float]:
    """harvester_images_total by outcome, as a scrape of this daemon shows it."""
    counted: dict[str, float] = {}
    for family in text_string_to_metric_families(daemon.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == "harvester_images_total":
                outcome = sample.labels["outcome"]
                counted[outcome] = counted.get(outcome, 0) + sample.value
    return counted


async def test_an_outcome_whose_lease_was_lost_is_not_counted_the_new_owners_is_once(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    emulator: RunningEmulator,
    quick_settings: Any,
) -> None:
    (row,) = emulator.world.url_list(1, base_url=emulator.base_url, hostile=False)
    listing = tmp_path / "list.csv"
    listing.write_text(f"url,id\n{row['url']},{row['id']}\n")
    await submit_urls(engine, UrlCampaign("lost", listing), max_attempts=MAX_ATTEMPTS)
    # No heartbeat comes while the test runs: the lease is lost only where the test ends it.
    settings = quick_settings(database_url, lease_seconds=3600, heartbeat_seconds=1800)

    # Two daemons of one context (worker processes, HTTP client): with a context each, the
    # second waits for the first's idle share of the CDN's rate to lapse (30 s).
    async with open_context(settings, engine) as ctx:
        first, second = Daemon(ctx, until_idle=True), Daemon(ctx, until_idle=True)
        first.images.limit = lambda: 1  # at its limit on the row: it does not claim it back
        run_image = first.images.runner

        async def stalled(ctx: Context, row: Any) -> Result:
            """The image is stored, then the lease runs out before its outcome is written
            (as when a daemon stalls past its lease), and another daemon takes the row,
            stores it and goes idle."""
            result = await run_image(ctx, row)
            await Queue(engine, Image).expire_leases_of([first.owner])
            await second.run()
            return result

        first.images.runner = stalled
        counted = await first.run()

    async with engine.connect() as connection:
        (image,) = (await connection.execute(select(Image))).all()
    assert (image.state, image.finished_by, image.attempts) == ("stored", second.owner, 2)
    assert counted.as_dict()["images_stored"] == 0
    assert _images_counted(first) == {}
    assert second.counters.as_dict()["images_stored"] == 1
    assert _images_counted(second) == {"stored": 1}

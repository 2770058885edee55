"""Counts made in another process (a worker with its own HTTP client) reach the coordinator
with the outcomes and add up with its own: the contract for fetching in worker processes."""

from __future__ import annotations

from pathlib import Path

from defaults import MAX_ATTEMPTS
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_id_of
from harvester.db.queue import Failure, Outcome
from harvester.http.stats import HttpStats
from harvester.measures import Measures
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.web.metrics import JobLabels, Metrics


def _values(metrics: Metrics, name: str) -> dict[tuple[str, ...], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.values()))] = sample.value
    return found


async def test_http_counts_sent_back_by_workers_add_up_with_the_coordinators(
    sqlite_engine: AsyncEngine, tmp_path: Path
):
    listing = tmp_path / "list.csv"
    listing.write_text("url,id\nhttp://127.0.0.1:9/a.jpg,a\n")
    await submit_urls(sqlite_engine, UrlCampaign("harbour", listing), max_attempts=MAX_ATTEMPTS)
    labels = JobLabels("urls", await campaign_id_of(sqlite_engine, "harbour"))
    coordinator = HttpStats()
    coordinator.call("flickr", 200)
    metrics = Metrics(sqlite_engine, http=[coordinator])

    workers = [HttpStats(), HttpStats()]
    for worker in workers:
        worker.call("images", 200)
        worker.call("images", 429)
        worker.retries["images"] += 1
        worker.limiter_wait_s["images"] += 0.25
    stored = Outcome(1, "stored", {}, Measures(0.5, 0.02, 1000, 400, workers[0].drain()))
    retried = Failure(2, "slow down", retryable=True, reason="http_429",
                      measures=Measures(http=workers[1].drain()))  # fmt: skip
    await metrics.count("images", [(labels, stored), (labels, retried)], {1: "stored", 2: "queued"})
    workers[0].call("images", 200)  # after its drain: not sent yet, not counted

    calls = _values(metrics, "harvester_api_calls_total")
    assert calls == {("200", "flickr"): 1, ("200", "images"): 2, ("429", "images"): 2}
    assert _values(metrics, "harvester_http_429_total") == {("images",): 2}
    assert _values(metrics, "harvester_http_retries_total") == {("images",): 2}
    assert _values(metrics, "harvester_rate_limiter_wait_seconds_total") == {("images",): 0.5}
    images = _values(metrics, "harvester_images_total")
    assert images == {
        tuple(sorted(("urls", "harbour", "stored", ""))): 1,
        tuple(sorted(("urls", "harbour", "retried", "http_429"))): 1,
    }
    assert _values(metrics, "harvester_stored_bytes_sum") == {("urls",): 400}

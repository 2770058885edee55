"""/metrics: what the daemon did, as Prometheus counters, histograms and gauges.

Everything is counted in the coordinating daemon process, from the outcomes it records
in the database: timings, byte counts and the HTTP counts of another process travel with
each outcome (harvester.measures), so the values add up however many worker processes
fetched or processed the images. Several daemons are several scrape targets; Prometheus
adds them up with `sum()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_names
from harvester.db.counts import campaign_counts
from harvester.db.queue import Failure, Outcome
from harvester.errors import DatabaseUnavailable
from harvester.http.stats import HttpStats
from harvester.outcomes import reason_of, recorded_as

log = structlog.get_logger("harvester.metrics")

QUEUE_REFRESH_S = 5.0
SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BYTES = tuple(float(kb * 1024) for kb in (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768))


@dataclass(frozen=True)
class JobLabels:
    """Who a claimed row belongs to: its provider (images) or kind (tasks), its campaign."""

    what: str
    campaign_id: int


class Metrics:
    """One registry per daemon (never the global one: a test process runs several)."""

    def __init__(
        self,
        engine: AsyncEngine,
        http: Sequence[HttpStats] = (),
        rescues: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.engine = engine
        self.registry = CollectorRegistry()
        # The coordinator's own client counts live; other processes' counts merge into this.
        self.http_from_workers = HttpStats()
        self._http = [*http, self.http_from_workers]
        self._rescues = rescues
        self._campaigns: dict[int, str] = {}
        r = self.registry
        self.images = Counter(
            "harvester_images",
            "Images whose attempt ended, by outcome (stored, skipped, failed for good, or "
            "retried later) and reason code, as recorded in the database",
            ["provider", "campaign", "outcome", "reason"],
            registry=r,
        )
        self.tasks = Counter(
            "harvester_tasks",
            "Query tasks whose attempt ended, by kind, outcome (done, failed, retried) and reason",
            ["kind", "campaign", "outcome", "reason"],
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "harvester_fetch_seconds",
            "Time to download one image, retries included",
            ["provider"],
            buckets=SECONDS,
            registry=r,
        )
        self.processing_seconds = Histogram(
            "harvester_processing_seconds",
            "Time a worker process spent decoding, cropping, resizing and encoding one image",
            ["provider"],
            buckets=SECONDS,
            registry=r,
        )
        self.fetched_bytes = Histogram(
            "harvester_fetched_bytes",
            "Size of each downloaded source image",
            ["provider"],
            buckets=BYTES,
            registry=r,
        )
        self.stored_bytes = Histogram(
            "harvester_stored_bytes",
            "Size of each stored JPEG",
            ["provider"],
            buckets=BYTES,
            registry=r,
        )
        self.queue_rows = Gauge(
            "harvester_queue_rows",
            f"Rows in the queue tables by campaign, table and state (read from the database "
            f"every {QUEUE_REFRESH_S:g} s: the whole queue, whichever daemon works it)",
            ["campaign", "table", "state"],
            registry=r,
        )
        r.register(_LiveCounts(self))

    def http_totals(self) -> HttpStats:
        total = HttpStats()
        for stats in self._http:
            total.merge(stats)
        return total

    async def count(
        self,
        lane: str,
        results: Iterable[tuple[JobLabels, Outcome | Failure]],
        left_as: Mapping[int, str],
    ) -> None:
        """Count results the database has just recorded, as it recorded them (`left_as`, as
        `Queue.finish` and `Queue.fail` return it): a row whose lease was lost is not."""
        for labels, result in results:
            outcome = recorded_as(result, left_as)
            if outcome is None:
                continue
            campaign = await self._campaign_name(labels.campaign_id)
            counter = self.images if lane == "images" else self.tasks
            counter.labels(labels.what, campaign, outcome, reason_of(result)).inc()
            self._measured(labels.what, result)

    def _measured(self, provider: str, result: Outcome | Failure) -> None:
        measures = result.measures
        if measures is None:
            return
        if measures.http is not None:
            self.http_from_workers.merge(measures.http)
        pairs = (
            (self.fetch_seconds, measures.fetch_s),
            (self.processing_seconds, measures.process_s),
            (self.fetched_bytes, measures.source_bytes),
            (self.stored_bytes, measures.stored_bytes),
        )
        for histogram, value in pairs:
            if value is not None:
                histogram.labels(provider).observe(value)

    async def _campaign_name(self, campaign_id: int) -> str:
        if campaign_id not in self._campaigns:
            self._campaigns = await campaign_names(self.engine)
        return self._campaigns.get(campaign_id, str(campaign_id))

    async def refresh_queue_rows(self) -> None:
        statuses = await campaign_counts(self.engine)
        # No await from here on: a scrape never sees the gauge half filled.
        self.queue_rows.clear()
        for status in statuses:
            for state, n in status.images.items():
                self.queue_rows.labels(status.name, "images", state).set(n)
            tasks: dict[str, int] = {}
            for by_state in status.tasks.values():
                for state, n in by_state.items():
                    tasks[state] = tasks.get(state, 0) + n
            for state, n in tasks.items():
                self.queue_rows.labels(status.name, "tasks", state).set(n)

    async def refresh_loop(self, stop: asyncio.Event) -> None:
        """Queue depth from the database every few seconds; an outage leaves the last."""
        while not stop.is_set():
            try:
                await self.refresh_queue_rows()
            except DatabaseUnavailable as exc:
                log.warning("database_error", during="metrics", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), QUEUE_REFRESH_S)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCounts(Collector):
    """Counters kept by other objects (HTTP clients, queues), read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        http = self.metrics.http_totals()
        calls = CounterMetricFamily(
            "harvester_api_calls",
            "HTTP requests by API (flickr, mapillary, images) and status code "
            "('error': no answer: timeout, reset, refused)",
            labels=["api", "status"],
        )
        for (api, status), n in sorted(http.calls.items()):
            calls.add_metric([api, status], n)
        yield calls
        yield _by_api("harvester_http_retries", "HTTP attempts made again", http.retries)
        yield _by_api("harvester_http_429", "HTTP 429 (rate limited) answers", http.throttled)
        yield _by_api(
            "harvester_rate_limiter_wait_seconds",
            "Seconds calls waited for a rate limiter's token",
            http.limiter_wait_s,
        )
        rescues = CounterMetricFamily(
            "harvester_lease_rescues",
            "Rows whose lease had expired (their daemon died or hung), taken back by this one",
            labels=["table"],
        )
        for table, n in sorted(self.metrics._rescues().items()):
            rescues.add_metric([table], n)
        yield rescues


def _by_api(name: str, documentation: str, values: Mapping[str, float]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["api"])
    for api, n in sorted(values.items()):
        family.add_metric([api], n)
    return family


def add_metrics_routes(app: web.Application, metrics: Metrics) -> None:
    async def serve_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.router.add_get("/metrics", serve_metrics)

"""In a worker process: fetch one image, make its pixels, write it; only its outcome goes back.

What a worker needs (an HTTP client, the sources' fetch side, the storage) is made once per
worker by `worker_service`. Shared rate limits are leased through the daemon, which holds
the database: a worker is one more holder of a slice, so a key's or a host's limit holds
however many processes fetch. Whether the source bytes are stored already is asked of the
daemon too, which sees every worker's images. Nothing here touches the database.
"""

from __future__ import annotations

import errno
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from harvester import log as logging_setup
from harvester.config import Settings
from harvester.errors import StorageUnavailable
from harvester.http import (
    Body,
    HttpClient,
    HttpError,
    HttpSettings,
    TransientHttpError,
    UnavailableError,
)
from harvester.http.shared import SharedRates, SharesUnavailable, Slice, Throttle
from harvester.imaging import ImagingError, Metadata, SizeRules, TooSmall
from harvester.measures import Measures
from harvester.outcomes import Failure, Outcome, Result
from harvester.sources.base import ImageView, Source
from harvester.sources.registry import build_sources
from harvester.storage.base import Storage
from harvester.storage.open import open_storage
from harvester.worker.pool import Asker, InWorker, WorkerLost, process_image

# Full, read-only or not ours to write (an immutable or root-owned directory): every image
# after this one would fail the same way, so the daemon stops and hands its rows back.
STORAGE_GONE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EPERM, errno.EACCES}
SAME_BYTES = "same_bytes"  # question: (source sha256, image id) -> id stored with them, or None
RATE_TAKE = "rate_take"  # question: RateShares.take's arguments -> Slice
RATE_GIVE_BACK = "rate_give_back"  # question: RateShares.give_back's arguments


@dataclass(frozen=True)
class ImageJob:
    """One claimed image as a worker gets it: where from, where to, what it must look like."""

    view: ImageView
    path: str
    rules: SizeRules
    meta: Metadata


@dataclass(frozen=True)
class Done:
    """A job's outcome, and the time it spent outside the pixel thread (fetching, asking,
    writing), which sizes the daemon's window."""

    result: Result
    outside_s: float

    def __reduce__(self) -> tuple[object, ...]:
        return (Done, (self.result, self.outside_s))  # its fields, not a dict of them


@dataclass
class WorkerService:
    http: HttpClient
    sources: dict[str, Source]
    storage: Storage
    shared: SharedRates


async def refresh_rate(here: InWorker, key: str) -> None:
    """Sent to every worker when the key was cut elsewhere: its slice renews now."""
    service: WorkerService = here.service
    service.shared.refresh(key)


class AskedShares:
    """``RateShares`` leased through the daemon, which keeps them in the database."""

    def __init__(self, ask: Asker) -> None:
        self._ask = ask

    async def take(
        self, key: str, holder: str, total_rate: float, throttle: Throttle | None = None
    ) -> Slice:
        try:
            granted: Slice = await self._ask(RATE_TAKE, key, holder, total_rate, throttle)
        except WorkerLost as exc:
            raise SharesUnavailable(str(exc)) from exc
        return granted

    async def give_back(self, key: str, holder: str) -> None:
        try:
            await self._ask(RATE_GIVE_BACK, key, holder)
        except WorkerLost as exc:
            raise SharesUnavailable(str(exc)) from exc


def portable(settings: Settings) -> Settings:
    """The same values as a plain Settings, which pickles (a layered one's class is local)."""
    return Settings.model_construct(settings.model_fields_set, **dict(settings))


def http_settings(settings: Settings) -> HttpSettings:
    return HttpSettings(
        max_bytes=settings.max_image_bytes,
        per_host_limit=settings.cdn_per_host_concurrency,
        pool_limit=max(100, settings.concurrency * 2),
        min_bytes_per_s=settings.min_transfer_bytes_per_second,
        budget_s=settings.fetch_budget_seconds,
    )


@asynccontextmanager
async def worker_service(
    settings: Settings, log_level: str, ask: Asker
) -> AsyncIterator[WorkerService]:
    """Made once in each worker process, closed when the daemon stops it."""
    logging_setup.configure(log_level)
    for secret in settings.secrets:
        logging_setup.redactor.add(secret)
    shared = SharedRates(AskedShares(ask))
    storage = open_storage(settings)
    try:
        async with HttpClient(http_settings(settings)) as http:
            sources = build_sources(settings, http, shared, share_of_hosts=settings.processes)
            yield WorkerService(http, sources, storage, shared)
    finally:
        await shared.close()
        await storage.close()


async def fetch_and_store(here: InWorker, job: ImageJob) -> Done:
    """Runs on a worker's event loop: the image's bytes never leave this process."""
    service: WorkerService = here.service
    view = job.view
    source = service.sources[view.provider]
    started = time.perf_counter()
    try:
        body = await source.fetch(view)
    except UnavailableError as exc:
        # Deleted or private since indexed: nothing to store, and nothing to retry.
        skipped = {"reason": exc.reason, "skip_reason": str(exc)}
        return _done(service, Outcome(view.id, "skipped", skipped), started, 0.0)
    except HttpError as exc:
        return _done(service, http_failure(view.id, exc), started, 0.0)
    fetch_s = time.perf_counter() - started
    handed = time.perf_counter()
    try:
        processed, source_sha, process_s = await here.pixels(
            process_image, body.data, job.rules, job.meta
        )
    except TooSmall as exc:
        skipped = {"reason": exc.reason, "skip_reason": str(exc)}
        return _done(service, Outcome(view.id, "skipped", skipped), started, 0.0)
    except ImagingError as exc:
        return _done(service, _imaging_failure(view.id, exc, body), started, 0.0)
    in_pixels = time.perf_counter() - handed
    measures = Measures(fetch_s=fetch_s, process_s=process_s, source_bytes=len(body.data))
    del body
    original = await here.ask(SAME_BYTES, source_sha, view.id)
    if original is not None:
        skipped = {
            "duplicate_of": original,
            "source_sha256": source_sha,
            "reason": "duplicate",
            "skip_reason": f"identical bytes already stored as image {original}",
        }
        duplicate = Outcome(view.id, "skipped", skipped, measures)
        return _done(service, duplicate, started, in_pixels)
    try:
        await service.storage.write(job.path, processed.jpeg)
    except OSError as exc:
        if exc.errno in STORAGE_GONE:
            raise StorageUnavailable(
                f"cannot write under {service.storage.location}: {exc.strerror}"
            ) from None
        message = f"cannot write {job.path}: {exc.strerror}"
        failed = Failure(view.id, message, retryable=True, reason="write_failed", measures=measures)
        return _done(service, failed, started, in_pixels)
    top, right, bottom, left = processed.frame
    # `path` is recorded only once the file is there: a row never stored has none.
    values = {
        "path": job.path,
        "width": processed.width,
        "height": processed.height,
        "source_width": processed.source_width,
        "source_height": processed.source_height,
        "sha256": processed.sha256,
        "phash": processed.phash,
        "bytes": len(processed.jpeg),
        "source_sha256": source_sha,
        "frame": {"top": top, "right": right, "bottom": bottom, "left": left},
        "last_error": None,
    }
    stored = Measures(fetch_s, process_s, measures.source_bytes, len(processed.jpeg))
    return _done(service, Outcome(view.id, "stored", values, stored), started, in_pixels)


def _done(service: WorkerService, result: Result, started: float, in_pixels: float) -> Done:
    """The outcome with this worker's HTTP counts since the last one, which the daemon adds up."""
    http = service.http.stats.drain()
    m = result.measures
    if m is None:
        measures = Measures(http=http)
    else:
        measures = Measures(m.fetch_s, m.process_s, m.source_bytes, m.stored_bytes, http)
    if isinstance(result, Outcome):  # every stored image: built without dataclasses.replace
        result = Outcome(result.id, result.state, result.values, measures)
    else:
        result = replace(result, measures=measures)
    return Done(result, time.perf_counter() - started - in_pixels)


def _imaging_failure(row_id: int, exc: ImagingError, body: Body) -> Failure:
    """A picture cut short whose body came whole by its server's word was broken there:
    final. One whose body only ended as the connection closed may have been cut on the
    way, as a short body is (a dropped connection ends it the same way): tried again, as
    far as the queue's max_attempts."""
    message = str(exc)
    cut_on_the_way = exc.reason == "truncated" and not body.end_checked
    if cut_on_the_way:
        message += " (the body had no length and ended as the connection closed)"
    retryable = not exc.permanent or cut_on_the_way
    return Failure(row_id, message, retryable=retryable, reason=exc.reason)


def http_failure(row_id: int, exc: HttpError) -> Failure:
    if not isinstance(exc, TransientHttpError):
        return Failure(row_id, str(exc), retryable=False, reason=exc.reason)
    return Failure(
        row_id,
        str(exc),
        retryable=True,
        retry_after=exc.retry_after,
        reason=exc.reason,
        throttled=exc.throttled,
    )

"""One claimed row, start to finish: the outcome to record, never an exception escaping."""

from __future__ import annotations

import errno
import json
import time
from dataclasses import replace
from typing import Any

import structlog

from harvester.db.catalog import add_images, upsert_licenses
from harvester.db.models import ImageState, TaskState
from harvester.db.queue import Failure, Outcome, QueueRow, enqueue_tasks
from harvester.errors import HarvesterError, StorageUnavailable
from harvester.http import HttpError, TransientHttpError, UnavailableError
from harvester.imaging import ImagingError, Metadata, Processed, TooSmall
from harvester.measures import Measures
from harvester.sources.base import ImageView, Source, TaskView, local_capture_time
from harvester.storage.layout import relative_path
from harvester.worker.context import Context
from harvester.worker.pool import WorkerLost

log = structlog.get_logger("harvester.worker")

# Full, read-only or not ours to write (an immutable or root-owned directory): every image
# after this one would fail the same way, so the daemon stops and hands its rows back.
STORAGE_GONE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EPERM, errno.EACCES}


Result = Outcome | Failure


async def run_task(ctx: Context, row: QueueRow) -> Result:
    """Expand a query task into image rows and follow-up tasks."""
    source = ctx.source_for_kind(row.kind)
    if source is None:
        return Failure(
            row.id, f"no source handles task kind {row.kind!r}", retryable=False, reason="no_source"
        )
    view = TaskView(row.id, row.campaign_id, row.kind, row.payload, row.attempts)
    try:
        campaign = await ctx.campaign(row.campaign_id)
        expansion = await source.expand(view, campaign)
        if expansion.licenses and ctx.new_licenses(source.provider, expansion.licenses):
            await upsert_licenses(ctx.engine, source.provider, expansion.licenses)
            ctx.forget_licenses()
        added = await add_images(
            ctx.engine,
            row.campaign_id,
            source.provider,
            expansion.query,
            expansion.images,
            max_attempts=ctx.settings.max_attempts,
        )
        await enqueue_tasks(
            ctx.engine,
            row.campaign_id,
            expansion.follow_up,
            default_max_attempts=ctx.settings.max_attempts,
        )
    except HttpError as exc:
        return _http_failure(row.id, exc)
    except HarvesterError as exc:
        return Failure(row.id, str(exc), retryable=False, reason=exc.reason)
    result = {**expansion.result, "new_images": added.new, "known_images": added.known}
    log.info("task_done", task_id=row.id, kind=row.kind, **_loggable(result))
    return Outcome(row.id, TaskState.DONE, {"result": result})


async def run_image(ctx: Context, row: QueueRow) -> Result:
    """Fetch, process in the pool, deduplicate by source bytes, write atomically."""
    source = ctx.sources.get(row.provider)
    if source is None:
        return Failure(
            row.id, f"no source for provider {row.provider!r}", retryable=False, reason="no_source"
        )
    view = ImageView(
        row.id, row.campaign_id, row.provider, row.provider_id, row.source_url, row.raw
    )
    started = time.perf_counter()
    try:
        data = await source.fetch(view)
    except UnavailableError as exc:
        # Deleted or private since indexed: nothing to store, and nothing to retry.
        return Outcome(row.id, ImageState.SKIPPED, {"reason": exc.reason, "skip_reason": str(exc)})
    except HttpError as exc:
        return _http_failure(row.id, exc)
    fetched = Measures(fetch_s=time.perf_counter() - started, source_bytes=len(data))
    rules = await ctx.size_rules(row.campaign_id)
    meta = await _metadata(ctx, source, view, row)
    handed = time.perf_counter()
    try:
        processed, source_sha, process_s = await ctx.process(data, rules, meta)
    except TooSmall as exc:
        return Outcome(row.id, ImageState.SKIPPED, {"reason": exc.reason, "skip_reason": str(exc)})
    except ImagingError as exc:
        return Failure(row.id, str(exc), retryable=not exc.permanent, reason=exc.reason)
    except WorkerLost as exc:
        return Failure(row.id, str(exc), retryable=True, reason="worker_lost")
    pool_s = time.perf_counter() - handed
    try:
        result = await _store(ctx, row, processed, source_sha)
        measures = replace(fetched, process_s=process_s)
        if isinstance(result, Outcome) and result.state == ImageState.STORED:
            measures = replace(measures, stored_bytes=len(processed.jpeg))
        return replace(result, measures=measures)
    finally:
        ctx.window.measured(process_s=process_s, outside_s=time.perf_counter() - started - pool_s)


async def _store(ctx: Context, row: QueueRow, processed: Processed, source_sha: str) -> Result:
    """Skip identical source bytes stored already; else write the file atomically."""
    original = ctx.same_bytes_in_flight(source_sha, row.id)
    if original is None:
        original = await ctx.stored_bytes.stored_as(source_sha, row.id)
    if original is not None:
        ctx.done_with_bytes(source_sha, row.id)
        return Outcome(
            row.id,
            ImageState.SKIPPED,
            {
                "duplicate_of": original,
                "source_sha256": source_sha,
                "reason": "duplicate",
                "skip_reason": f"identical bytes already stored as image {original}",
            },
        )
    # `path` is recorded only once the file is there: a row never stored has none.
    path = str(relative_path(row.provider, row.group_name, row.shard, row.file_name))
    try:
        await ctx.storage.write(path, processed.jpeg)
    except OSError as exc:
        ctx.done_with_bytes(source_sha, row.id)
        if exc.errno in STORAGE_GONE:
            raise StorageUnavailable(
                f"cannot write under {ctx.storage.location}: {exc.strerror}"
            ) from exc
        return Failure(
            row.id, f"cannot write {path}: {exc.strerror}", retryable=True, reason="write_failed"
        )
    top, right, bottom, left = processed.frame
    return Outcome(
        row.id,
        ImageState.STORED,
        {
            "path": path,
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
        },
    )


def _http_failure(row_id: int, exc: HttpError) -> Failure:
    retryable = isinstance(exc, TransientHttpError)
    retry_after = exc.retry_after if isinstance(exc, TransientHttpError) else None
    return Failure(
        row_id, str(exc), retryable=retryable, retry_after=retry_after, reason=exc.reason
    )


async def _metadata(ctx: Context, source: Source, view: ImageView, row: QueueRow) -> Metadata:
    licence = await ctx.license(row.provider, row.license_id)
    if licence is not None:
        name, url = licence
        copyright_text: str | None = f"{name} ({url})" if url else name
    else:
        copyright_text = row.license_id
    description = {
        "provider": row.provider,
        "id": row.provider_id,
        "title": row.title,
        "tags": row.tags,
        "source": source.page_url(view),
    }
    return Metadata(
        lat=row.lat,
        lon=row.lon,
        heading=row.heading,
        # A zone-less wall clock (Flickr's datetaken) goes to EXIF without an offset.
        captured_at=row.captured_at or local_capture_time(row.captured_local),
        artist=row.owner_name or row.owner,
        copyright=copyright_text,
        description={k: v for k, v in description.items() if v},
    )


def _loggable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if isinstance(v, int | float | str | bool)} or {
        "result": json.dumps(result, default=str)[:200]
    }

"""One claimed row, start to finish: the outcome to record, never an exception escaping."""

from __future__ import annotations

import json
from typing import Any

import structlog

from harvester.db.catalog import add_images, upsert_licenses
from harvester.db.enqueue import enqueue_tasks
from harvester.db.models import ImageState, TaskState
from harvester.db.queue import QueueRow
from harvester.errors import DatabaseUnavailable, HarvesterError
from harvester.http import HttpError
from harvester.imaging import Metadata
from harvester.licences import licence_of
from harvester.outcomes import Failure, Outcome, Result
from harvester.sources.base import ImageView, Source, TaskView, local_capture_time
from harvester.storage.layout import relative_path
from harvester.worker.context import Context
from harvester.worker.fetching import ImageJob, fetch_and_store, http_failure
from harvester.worker.pool import WorkerLost

log = structlog.get_logger("harvester.worker")


async def run_task(ctx: Context, row: QueueRow) -> Result:
    """Expand a query task into image rows and follow-up tasks."""
    source = ctx.source_for_kind(row.kind)
    if source is None:
        return Failure(
            row.id, f"no source handles task kind {row.kind!r}", retryable=False, reason="no_source"
        )
    view = TaskView(row.id, row.campaign_id, row.kind, row.payload, row.attempts, row.max_attempts)
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
        return http_failure(row.id, exc)
    except DatabaseUnavailable:
        raise  # an outage, waited out by the daemon, which runs the task again
    except HarvesterError as exc:  # a value the database refused (bad_record) among them
        return Failure(row.id, str(exc), retryable=False, reason=exc.reason)
    result = {**expansion.result, "new_images": added.new, "known_images": added.known}
    log.info("task_done", task_id=row.id, kind=row.kind, **_loggable(result))
    return Outcome(row.id, TaskState.DONE, {"result": result})


async def run_image(ctx: Context, row: QueueRow) -> Result:
    """Hand the row to a worker process, which fetches, processes and writes it; the
    coordinator keeps only its outcome."""
    source = ctx.sources.get(row.provider)
    if source is None:
        return Failure(
            row.id, f"no source for provider {row.provider!r}", retryable=False, reason="no_source"
        )
    view = ImageView(
        row.id, row.campaign_id, row.provider, row.provider_id, row.source_url, row.raw
    )
    path = str(relative_path(row.provider, row.group_name, row.shard, row.file_name))
    meta = await _metadata(ctx, source, view, row)
    job = ImageJob(view, path, await ctx.size_rules(row.campaign_id), meta)
    stored = False
    try:
        done = await ctx.pool.job(fetch_and_store, job)
        result = done.result
        stored = isinstance(result, Outcome) and result.state == ImageState.STORED
    except WorkerLost as exc:
        return Failure(row.id, str(exc), retryable=True, reason="worker_lost")
    finally:
        ctx.asked_done(row.id, stored=stored)  # its bytes stay claimed only if stored
    if stored:
        ctx.storage.written(path)  # made durable by the next flush, before the row says so
    measures = result.measures
    if measures is not None and measures.process_s is not None:
        ctx.window.measured(process_s=measures.process_s, outside_s=done.outside_s)
    return result


async def _metadata(ctx: Context, source: Source, view: ImageView, row: QueueRow) -> Metadata:
    listed = await ctx.license(row.provider, row.license_id) or (None, None)
    name, url = licence_of(row.provider, row.license_id, *listed)
    copyright_text = f"{name} ({url})" if name and url else name
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

"""Flickr campaigns: what an operator asks for, and submitting it as queue tasks.

A campaign becomes one licences task and one first-window task per query. Window tasks
carry dedupe keys, so submitting the same campaign again (on any day) adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harvester.errors import HarvesterError, InputError
from harvester.records import NewTask, SubmitReport
from harvester.sources.flickr_windows import PAGING_CEILING, Window, first_window
from harvester.sources.settings import (
    DEFAULT_SIZES,
    CampaignSettings,
    StoredModel,
    check_sizes,
    read_stored,
)

if TYPE_CHECKING:
    from harvester.db.session import Engine

PROVIDER = "flickr"
WINDOW_KIND = "flickr_window"
LICENSES_KIND = "flickr_licenses"
MAX_KEY_QUERY = 120
# Upload times are Unix seconds; the day after the last must still be a date.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9999, 12, 30)


class FlickrTaskError(HarvesterError):
    """A Flickr task's payload or its campaign's settings cannot be used."""

    reason = "bad_task"


@dataclass(frozen=True)
class FlickrCampaign:
    """What an operator asks of a Flickr harvest (validated on construction)."""

    name: str
    queries: tuple[str, ...]
    negative_terms: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    min_upload: date = date(2004, 1, 1)
    max_upload: date | None = None  # None: today (UTC); inclusive
    licenses: tuple[str, ...] = ()  # empty: any
    accuracy: int = 6
    geo_only: bool = True
    target_per_window: int = 400
    max_side: int = DEFAULT_SIZES.max_side
    min_side: int = DEFAULT_SIZES.min_side

    def __post_init__(self) -> None:
        if not self.queries:
            raise InputError("a Flickr campaign needs at least one query")
        if not 1 <= self.accuracy <= 16:
            raise InputError(f"--accuracy must be 1..16 (Flickr's scale), got {self.accuracy}")
        if not 1 <= self.target_per_window <= PAGING_CEILING // 2:
            raise InputError(
                f"--target-per-window must be 1..{PAGING_CEILING // 2} (Flickr repeats photos "
                f"past ~{PAGING_CEILING} results), got {self.target_per_window}"
            )
        check_sizes(self.max_side, self.min_side)
        if self.max_upload is not None and self.max_upload < self.min_upload:
            raise InputError("--max-upload-date is before --min-upload-date")
        for day in (self.min_upload, self.max_upload or self.min_upload):
            if not FIRST_DAY <= day <= LAST_DAY:
                raise InputError(f"upload dates must be from {FIRST_DAY} to {LAST_DAY}, got {day}")
        for license_id in self.licenses:
            if not (license_id.isascii() and license_id.isdigit()):  # isdigit: "\u0661" too
                raise InputError(f"--license takes numeric Flickr licence ids, got {license_id!r}")
        if self.bbox is not None:
            minlon, minlat, maxlon, maxlat = self.bbox
            if not (-180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90):
                raise InputError(f"--bbox must be MINLON,MINLAT,MAXLON,MAXLAT, got {self.bbox}")

    def settings(self, today: date | None = None) -> dict[str, Any]:
        """The campaign row's settings; max_upload is fixed at submit so reruns agree."""
        until = self.max_upload or today or datetime.now(UTC).date()
        if until < self.min_upload:
            raise InputError(
                f"the upload range is empty: --min-upload-date {self.min_upload} is after {until}"
            )
        return FlickrSettings(
            name=self.name,
            queries=self.queries,
            negative_terms=self.negative_terms,
            bbox=self.bbox,
            min_upload=self.min_upload,
            max_upload=until,
            licenses=self.licenses,
            accuracy=self.accuracy,
            geo_only=self.geo_only,
            target_per_window=self.target_per_window,
            max_side=self.max_side,
            min_side=self.min_side,
        ).stored()


class FlickrSettings(CampaignSettings):
    """A Flickr campaign's settings as stored; windows are planned from these."""

    name: str
    queries: tuple[str, ...]
    negative_terms: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    min_upload: date = date(2004, 1, 1)
    max_upload: date
    licenses: tuple[str, ...] = ()
    accuracy: int = 6
    geo_only: bool = True
    target_per_window: int = Field(400, ge=1)


class WindowPayload(StoredModel):
    """A `flickr_window` task: one query over [start, end) in Unix seconds of upload time."""

    query: str
    start: int
    end: int


@dataclass(frozen=True)
class CampaignPlan:
    """The campaign settings a window task needs, as the window search uses them."""

    start: int
    limit: int
    target: int
    min_side: int
    max_side: int
    accuracy: int
    geo_only: bool
    bbox: tuple[float, ...] | None
    licenses: tuple[str, ...]
    negatives: tuple[str, ...]

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> CampaignPlan:
        settings = read_stored(FlickrSettings, stored, "Flickr campaign settings")
        return cls(
            start=_day_start(settings.min_upload),
            limit=_day_start(settings.max_upload + timedelta(days=1)),
            target=settings.target_per_window,
            min_side=settings.min_side,
            max_side=settings.max_side,
            accuracy=settings.accuracy,
            geo_only=settings.geo_only,
            bbox=settings.bbox,
            licenses=settings.licenses,
            negatives=settings.negative_terms,
        )


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time(0), UTC).timestamp())


def window_task(
    campaign_id: int, query: str, window: Window, *, parent: int | None = None
) -> NewTask:
    """The task for one window; its key makes re-submits and reruns no-ops.

    A follow-up is keyed by the task that planned it, not by its bounds: a rerun of that
    task (after a crash) may size the next window differently, and must not fork the chain.
    """
    shown = query if len(query) <= MAX_KEY_QUERY else hashlib.sha1(query.encode()).hexdigest()
    where = f"{window.start}:{window.end}" if parent is None else f"after:{parent}"
    return NewTask(
        kind=WINDOW_KIND,
        dedupe_key=f"flickr:{campaign_id}:{shown}:{where}",
        payload=WindowPayload(query=query, start=window.start, end=window.end).stored(),
    )


async def submit_flickr(
    engine: Engine,
    campaign: FlickrCampaign,
    *,
    today: date | None = None,
    update_settings: bool = False,
    max_attempts: int,
    submit_id: str | None = None,
) -> SubmitReport:
    """Create (or find) the campaign; queue the licences task and each query's first window."""
    # Here, not at the top: worker processes import this module to fetch, never the database.
    from harvester.db.campaigns import campaign_settings, ensure_campaign
    from harvester.db.enqueue import enqueue_tasks

    settings = campaign.settings(today)
    # Without --max-upload-date the limit is "today": a re-submit on a later day is no change.
    moving = frozenset({"max_upload"}) if campaign.max_upload is None else frozenset()
    campaign_id = await ensure_campaign(
        engine,
        campaign.name,
        PROVIDER,
        settings,
        update_settings=update_settings,
        unchecked=moving,
        submit_id=submit_id,
    )
    # Plan from the settings the campaign was created with: a re-submit on a later day
    # ("today" has moved) must name the same first windows, or it would not be a no-op.
    stored = (await campaign_settings(engine)).get(campaign_id, settings)
    plan = CampaignPlan.of(stored)
    tasks = [NewTask(kind=LICENSES_KIND, dedupe_key=f"flickr:{campaign_id}:licenses")]
    windows = {q: first_window(plan.start, plan.limit) for q in campaign.queries}
    tasks += [window_task(campaign_id, q, w) for q, w in windows.items()]
    added = await enqueue_tasks(engine, campaign_id, tasks, default_max_attempts=max_attempts)
    return SubmitReport(
        campaign_id=campaign_id,
        tasks_added=added,
        detail={
            "queries": len(campaign.queries),
            "negative_terms": len(campaign.negative_terms),
            "upload_range": [stored.get("min_upload"), stored.get("max_upload")],
            "settings_kept": stored != settings,
        },
    )

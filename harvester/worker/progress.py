"""Progress: a live display on a terminal, a structured summary line at an interval otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

from harvester.db.campaigns import Blocked
from harvester.db.counts import CampaignStatus
from harvester.db.models import ImageState, TaskState
from harvester.errors import DatabaseUnavailable
from harvester.log import logs
from harvester.outcomes import RETRIED, Result, reason_of, recorded_as
from harvester.terminal import shown

log = structlog.get_logger("harvester.worker")

FINISHED = (ImageState.STORED, ImageState.SKIPPED, ImageState.FAILED)


@dataclass
class Counters:
    """What this daemon did since it started."""

    images: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0
    due_later: int = 0  # rows `--until-idle` left queued: due beyond its horizon
    # Paused campaigns with work left when the daemon stopped (`run --until-idle` exits 3).
    blocked: list[Blocked] = field(default_factory=list)

    def record(self, lane: str, results: Iterable[Result], left_as: Mapping[int, str]) -> None:
        """Count results as the database just recorded them, not as the jobs ended: a row
        whose outcome it refused is failed (bad_record), a retry past the last attempt is
        failed, a row whose lease was lost is not counted."""
        counter = self.images if lane == "images" else self.tasks
        for result in results:
            state = recorded_as(result, left_as)
            if state is None:
                continue
            counter[state] += 1
            reason = reason_of(result)
            if state == ImageState.SKIPPED and reason:
                self.skip_reasons[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "images_stored": self.images[ImageState.STORED],
            "images_skipped": self.images[ImageState.SKIPPED],
            "images_failed": self.images[ImageState.FAILED],
            "images_retried": self.images[RETRIED],
            "tasks_done": self.tasks[TaskState.DONE],
            "tasks_failed": self.tasks[TaskState.FAILED],
            "rows_due_later": self.due_later,
        }


@dataclass(frozen=True)
class Watched:
    """What the reporter reads of a running daemon; it holds no reference to the daemon."""

    counters: Counters
    images_in_flight: Callable[[], int]
    statuses: Callable[[], Awaitable[list[CampaignStatus]]]


class Reporter:
    """Redraws on a terminal every second; logs an `event=progress` line otherwise.

    A live display is torn apart by info lines: whoever configures logging (cli.py) lets
    only warnings through when `live` is true.
    """

    def __init__(self, out: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.interval_s = 1.0 if self.live else interval_s
        self._drawn_lines = 0

    async def run(self, daemon: Watched) -> None:
        if not self.live and not logs("info"):
            return  # its line would be dropped: no count of every row each interval for it
        last_done, last_time = 0, time.monotonic()
        statuses: list[CampaignStatus] = []
        tick = 0
        while True:
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            done = sum(daemon.counters.images[s] for s in FINISHED)
            rate = (done - last_done) / max(now - last_time, 1e-6)
            last_done, last_time = done, now
            if not self.live or tick % 3 == 0:
                try:
                    statuses = await daemon.statuses()
                except (
                    DatabaseUnavailable
                ) as exc:  # an outage: keep the last counts, the others wait
                    log.warning("database_error", during="progress", error=type(exc).__name__)
            tick += 1
            if self.live:
                self._draw(daemon, rate, statuses)
            else:
                log.info(
                    "progress",
                    images_per_s=round(rate, 1),
                    queued=_queued(statuses),
                    **daemon.counters.as_dict(),
                )

    def _draw(self, daemon: Watched, rate: float, statuses: list[CampaignStatus]) -> None:
        images = daemon.counters.images
        stored, skipped, failed = (images[s] for s in FINISHED)
        lines = [
            f"harvester  {rate:6.1f} images/s   stored {stored}  skipped {skipped}  failed "
            f"{failed}  retrying {images[RETRIED]}   in flight {daemon.images_in_flight()}"
            f"   queued {_queued(statuses)}",
        ]
        for status in statuses:
            total = sum(status.images.values())
            finished = sum(status.images.get(s, 0) for s in FINISHED)
            bar = _bar(finished, total)
            lines.append(
                f"  {shown(status.name)[:28]:<28} {bar} {finished}/{total} images, "
                f"{sum(v.get('done', 0) for v in status.tasks.values())} queries done"
            )
        erase = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        self.out.write(erase + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn_lines = len(lines)


def _queued(statuses: list[CampaignStatus]) -> int:
    return sum(s.images.get(ImageState.QUEUED, 0) for s in statuses) + sum(
        v.get(TaskState.QUEUED, 0) for s in statuses for v in s.tasks.values()
    )


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"

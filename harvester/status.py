"""`harvester status`: per campaign, how far along, how fast, when done, and why not stored.

Rates come from the rows' finish times, so they are true across every daemon; the ETA
divides what is left by the 5-minute rate (the 15-minute one if nothing finished lately).
The table fits 80 columns whatever stdout is; JSON only when asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import list_campaigns
from harvester.db.clock import utcnow
from harvester.db.counts import campaign_counts, finished_since, newest_phashes, reason_counts
from harvester.exporters.near_duplicates import NEAR, near_groups
from harvester.terminal import fit

WINDOWS = {"1m": 60, "5m": 300, "15m": 900}
FINISHED = ("stored", "skipped", "failed", "cancelled")
LEFT = ("queued", "running")
TOP_REASONS = 4
# Near-duplicates are grouped among a campaign's newest stored images, at most this many:
# about 0.15 s of CPU a campaign, whatever the table's size.
NEAR_WINDOW = 5000


@dataclass
class CampaignReport:
    name: str
    provider: str
    paused: str | None  # the pause's reason code (paused, invalid_key), None if running
    paused_message: str | None
    images: dict[str, int]  # state -> count
    tasks: dict[str, dict[str, int]]  # kind -> state -> count
    percent_done: float | None  # finished images of all images known so far
    queries_left: int
    images_per_s: dict[str, float]  # window (1m, 5m, 15m) -> rate
    eta_s: float | None
    failed: dict[str, int] = field(default_factory=dict)  # reason code -> rows (top ones)
    skipped: dict[str, int] = field(default_factory=dict)
    near_duplicates: int = 0  # stored images another image of their group makes redundant
    near_groups: int = 0
    near_checked: int = 0  # the newest stored images looked at (at most NEAR_WINDOW)


async def collect(engine: AsyncEngine, campaign: str | None = None) -> list[CampaignReport]:
    now = utcnow()
    since = [now - timedelta(seconds=s) for s in WINDOWS.values()]
    counts = {c.name: c for c in await campaign_counts(engine)}
    recent = await finished_since(engine, since)
    reasons = await reason_counts(engine)
    reports = []
    for info in await list_campaigns(engine):
        if campaign is not None and info.name != campaign:
            continue
        status = counts[info.name]
        finished = recent.get(info.id, [0] * len(WINDOWS))
        rates = {w: n / s for (w, s), n in zip(WINDOWS.items(), finished, strict=True)}
        reports.append(_report(info.name, info.provider, status.images, status.tasks, rates, now))
        report = reports[-1]
        report.paused, report.paused_message = info.paused_reason, info.paused_message
        for state, reason, n in reasons.get(info.id, []):
            bucket = report.failed if state == "failed" else report.skipped
            if len(bucket) < TOP_REASONS:
                bucket[reason] = bucket.get(reason, 0) + n
        await _near_duplicates(engine, info.id, report)
    return reports


async def _near_duplicates(engine: AsyncEngine, campaign_id: int, report: CampaignReport) -> None:
    """Bursts and re-uploads (perceptual hashes within NEAR bits) among the newest images."""
    hashes = {
        image_id: int(value, 16)
        for image_id, value in await newest_phashes(engine, campaign_id, NEAR_WINDOW)
    }
    groups = near_groups(hashes, NEAR)
    report.near_checked = len(hashes)
    report.near_groups = len(groups)
    report.near_duplicates = sum(len(g) - 1 for g in groups)


def _report(
    name: str,
    provider: str,
    images: dict[str, int],
    tasks: dict[str, dict[str, int]],
    rates: dict[str, float],
    now: datetime,
) -> CampaignReport:
    total = sum(images.values())
    done = sum(images.get(s, 0) for s in FINISHED)
    left = sum(images.get(s, 0) for s in LEFT)
    queries_left = sum(by.get(s, 0) for by in tasks.values() for s in LEFT)
    rate = rates["5m"] or rates["15m"]
    return CampaignReport(
        name=name,
        provider=provider,
        paused=None,
        paused_message=None,
        images=images,
        tasks=tasks,
        percent_done=round(100.0 * done / total, 1) if total else None,
        queries_left=queries_left,
        images_per_s={w: round(r, 2) for w, r in rates.items()},
        eta_s=_eta(left, queries_left, rate),
    )


def _eta(left: int, queries_left: int, rate: float) -> float | None:
    """Seconds until the known images are done; unknown while queries may add more."""
    if queries_left:
        return None
    if not left:
        return 0.0
    return round(left / rate) if rate else None


def render_json(reports: list[CampaignReport], out: TextIO) -> None:
    json.dump({"campaigns": [asdict(r) for r in reports]}, out, indent=2, sort_keys=True)
    out.write("\n")


def render_table(reports: list[CampaignReport], out: TextIO) -> None:
    if not reports:
        out.write("no campaigns yet: submit one with `harvester submit ...`\n")
        return
    for report in reports:
        for line in _lines(report):
            out.write(fit(line) + "\n")


def _lines(r: CampaignReport) -> list[str]:
    # "finished": nothing queued or in flight and no query to go (an ETA of nothing).
    state = "finished" if r.eta_s == 0.0 and (r.images or r.tasks) else "running"
    if r.paused:
        state = f"PAUSED {r.paused}" + (f": {r.paused_message}" if r.paused_message else "")
    done = f"{r.percent_done:.1f}% done" if r.percent_done is not None else "no images yet"
    if r.queries_left:
        done += f", {r.queries_left} queries to go"
    images = "  ".join(f"{n} {s}" for s, n in sorted(r.images.items(), key=_state_order))
    rates = "  ".join(f"{v:.1f}/s ({w})" for w, v in r.images_per_s.items())
    lines = [
        f"{r.name} ({r.provider})  {state}",
        f"  images   {images or '-'}",
        f"  progress {done}   ETA {_duration(r.eta_s)}",
        f"  rate     {rates}",
    ]
    tasks: dict[str, int] = {}
    for by_state in r.tasks.values():
        for s, n in by_state.items():
            tasks[s] = tasks.get(s, 0) + n
    if tasks:
        lines.insert(2, "  queries  " + "  ".join(f"{n} {s}" for s, n in sorted(tasks.items())))
    if r.failed:
        lines.append("  failed   " + ", ".join(f"{k} {v}" for k, v in r.failed.items()))
    if r.skipped:
        lines.append("  skipped  " + ", ".join(f"{k} {v}" for k, v in r.skipped.items()))
    if r.near_checked:
        among = "" if r.near_checked >= r.images.get("stored", 0) else f"; newest {r.near_checked}"
        lines.append(
            f"  near-dup {r.near_duplicates} redundant in {r.near_groups} groups"
            f" (<= {NEAR} bits{among})"
        )
    return lines


_ORDER = ("stored", "skipped", "failed", "cancelled", "running", "queued")


def _state_order(item: tuple[str, int]) -> int:
    return _ORDER.index(item[0]) if item[0] in _ORDER else len(_ORDER)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds == 0:
        return "done"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

"""What is queued, running and finished, per campaign: the operator's first question."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.models import Campaign, Image, Task
from harvester.db.session import read_connection


@dataclass
class CampaignStatus:
    name: str
    provider: str
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> state -> count
    images: dict[str, int] = field(default_factory=dict)  # state -> count


async def collect(engine: AsyncEngine) -> list[CampaignStatus]:
    async with read_connection(engine) as connection:
        campaigns = {
            row.id: CampaignStatus(row.name, row.provider)
            for row in await connection.execute(
                select(Campaign.id, Campaign.name, Campaign.provider).order_by(Campaign.id)
            )
        }
        task_counts = await connection.execute(
            select(Task.campaign_id, Task.kind, Task.state, func.count()).group_by(
                Task.campaign_id, Task.kind, Task.state
            )
        )
        for campaign_id, kind, state, count in task_counts:
            campaigns[campaign_id].tasks.setdefault(kind, {})[state] = count
        image_counts = await connection.execute(
            select(Image.campaign_id, Image.state, func.count()).group_by(
                Image.campaign_id, Image.state
            )
        )
        for campaign_id, state, count in image_counts:
            campaigns[campaign_id].images[state] = count
    return list(campaigns.values())


def render_json(statuses: list[CampaignStatus], out: TextIO) -> None:
    json.dump({"campaigns": [asdict(s) for s in statuses]}, out, indent=2, sort_keys=True)
    out.write("\n")


def render_table(statuses: list[CampaignStatus], out: TextIO) -> None:
    if not statuses:
        out.write("no campaigns yet: submit one with `harvester submit ...`\n")
        return
    header = f"{'campaign':<24} {'what':<22} " + " ".join(f"{s:>9}" for s in _STATES)
    out.write(header + "\n" + "-" * len(header) + "\n")
    for status in statuses:
        for kind, counts in sorted(status.tasks.items()):
            out.write(_line(status.name, f"task {kind}", counts))
        out.write(_line(status.name, "images", status.images))


_STATES = ("queued", "running", "done", "stored", "skipped", "failed", "cancelled")


def _line(name: str, what: str, counts: dict[str, int]) -> str:
    cells = " ".join(f"{counts.get(state, 0) or '':>9}" for state in _STATES)
    return f"{name[:24]:<24} {what[:22]:<22} {cells}\n"

"""The counts per campaign shown to operators: a table on a terminal, JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TextIO

from harvester.db.counts import CampaignStatus
from harvester.db.models import ImageState, TaskState


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


_STATES = (
    ImageState.QUEUED,
    ImageState.RUNNING,
    TaskState.DONE,
    ImageState.STORED,
    ImageState.SKIPPED,
    ImageState.FAILED,
    ImageState.CANCELLED,
)


def _line(name: str, what: str, counts: dict[str, int]) -> str:
    cells = " ".join(f"{counts.get(state, 0) or '':>9}" for state in _STATES)
    return f"{name[:24]:<24} {what[:22]:<22} {cells}\n"

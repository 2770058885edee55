"""`harvester submit mapillary`: a campaign and its first tasks, re-submittable as a no-op.

Task kinds and payloads (read back by `MapillarySource.expand`):
- `mapillary_tile`: {"bbox": [minlon, minlat, maxlon, maxlat], "query": label}
- `mapillary_sequence`: {"sequence_id": id, "query": label}
- `mapillary_ids`: {"items": [{"id", "seq", "lat", "lon", "role", "pair", "other"}], "query": label}
Dedupe keys are built from the campaign and the task's content, so the same submit twice
adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from harvester.db.campaigns import ensure_campaign
from harvester.db.queue import NewTask, enqueue_tasks
from harvester.db.session import Engine
from harvester.errors import InputError
from harvester.sources.base import SubmitReport
from harvester.sources.mapillary_csv import CsvRead, IdItem, read_pairs_csv, read_sequence_csv
from harvester.sources.mapillary_records import SIZES
from harvester.sources.mapillary_tiles import Tile, check_bbox, plan_tiles

PROVIDER = "mapillary"
TILE = "mapillary_tile"
SEQUENCE = "mapillary_sequence"
IDS = "mapillary_ids"
# "original" asks for the picture as Mapillary has it: a side no image reaches.
ORIGINAL_SIDE = 1 << 16
ITEMS_PER_TASK = 200  # four ?ids= batches of 50; pairs stay together (an even count)
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class MapillaryCampaign:
    """What the operator asked for; exactly one of bbox / sequences / the CSV files."""

    name: str
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    sequences: tuple[str, ...] = ()
    sequence_csv: Path | None = None
    pairs_csv: Path | None = None
    pano_only: bool = False
    min_captured_at: date | None = None
    max_captured_at: date | None = None
    size: str = "1024"  # "256" | "1024" | "2048" | "original"
    max_side: int | None = None  # None: the size asked for (an original is not resized)
    min_side: int = 500

    @property
    def stored_side(self) -> int:
        """The longer side of stored images: as given, else the size that was asked for."""
        if self.max_side is not None:
            return self.max_side
        return ORIGINAL_SIDE if self.size == "original" else int(self.size)


async def submit_mapillary(engine: Engine, campaign: MapillaryCampaign) -> SubmitReport:
    """Create (or resume) the campaign and enqueue its tasks; bad CSV lines become problems."""
    _check(campaign)
    read = _read_lists(campaign)
    campaign_id = await ensure_campaign(engine, campaign.name, PROVIDER, settings_of(campaign))
    tasks, detail = _tasks(campaign, campaign_id, read)
    added = await enqueue_tasks(engine, campaign_id, tasks)
    problems = tuple(read.problems) if read else ()
    return SubmitReport(campaign_id, added, problems, {**detail, "tasks": len(tasks)})


def settings_of(campaign: MapillaryCampaign) -> dict[str, Any]:
    """The campaign row's settings: what the daemon and `expand` read back."""
    return {
        "max_side": campaign.stored_side,
        "min_side": campaign.min_side,
        "quality": 90,
        "size": campaign.size,
        "pano_only": campaign.pano_only,
        "min_captured_at": _iso(campaign.min_captured_at),
        "max_captured_at": _iso(campaign.max_captured_at),
    }


def _check(campaign: MapillaryCampaign) -> None:
    given = [
        campaign.bbox is not None,
        bool(campaign.sequences),
        campaign.sequence_csv is not None,
        campaign.pairs_csv is not None,
    ]
    if sum(given) != 1:
        raise InputError("give exactly one of --bbox, --sequence, --sequence-csv or --pairs-csv")
    if campaign.size not in SIZES:
        raise InputError(f"--size must be one of {', '.join(SIZES)}, got {campaign.size!r}")
    if not 0 < campaign.min_side <= campaign.stored_side:
        raise InputError("--min-side must be positive and at most --max-side")
    low, high = campaign.min_captured_at, campaign.max_captured_at
    if low is not None and high is not None and low > high:
        raise InputError("--min-captured-at is after --max-captured-at")
    bad = [s for s in campaign.sequences if not s.strip() or len(s) > 200]
    if bad:
        raise InputError(f"unusable sequence id {bad[0][:40]!r}")
    if campaign.bbox is not None:
        check_bbox(campaign.bbox)


def _read_lists(campaign: MapillaryCampaign) -> CsvRead | None:
    if campaign.sequence_csv is not None:
        read = read_sequence_csv(campaign.sequence_csv)
        path = campaign.sequence_csv
    elif campaign.pairs_csv is not None:
        read = read_pairs_csv(campaign.pairs_csv)
        path = campaign.pairs_csv
    else:
        return None
    if not read.items:
        shown = "; ".join(read.problems[:MAX_PROBLEMS_SHOWN]) or "the file has no data lines"
        raise InputError(f"no usable lines in {path}: {shown}")
    return read


def _tasks(
    campaign: MapillaryCampaign, campaign_id: int, read: CsvRead | None
) -> tuple[list[NewTask], dict[str, Any]]:
    if campaign.bbox is not None:
        region = check_bbox(campaign.bbox)
        tiles = plan_tiles(region)
        label = f"bbox {region.param()}"
        return [tile_task(campaign_id, t, label) for t in tiles], {"mode": "bbox"}
    if campaign.sequences:
        unique = list(dict.fromkeys(s.strip() for s in campaign.sequences))
        tasks = [
            NewTask(
                SEQUENCE,
                f"mapillary:{campaign_id}:sequence:{s}",
                {"sequence_id": s, "query": f"sequence {s}"},
            )
            for s in unique
        ]
        return tasks, {"mode": "sequences", "sequences": len(unique)}
    assert read is not None
    pairs = campaign.pairs_csv is not None
    path = campaign.pairs_csv if pairs else campaign.sequence_csv
    assert path is not None
    tasks = ids_tasks(campaign_id, read.items, path.name[:200], pairs=pairs)
    detail = {
        "mode": "pairs_csv" if pairs else "sequence_csv",
        "lines": read.lines,
        "images": len({i.image_id for i in read.items}),
        "problems": len(read.problems),
    }
    return tasks, detail


def tile_task(campaign_id: int, tile: Tile, query: str) -> NewTask:
    return NewTask(
        TILE,
        f"mapillary:{campaign_id}:tile:{tile.param()}",
        {"bbox": list(tile.bounds()), "query": query},
    )


def ids_tasks(
    campaign_id: int, items: Sequence[IdItem], name: str, *, pairs: bool
) -> list[NewTask]:
    """Chunks of listed ids. Pair files get a query per chunk so that an image in pairs
    of two chunks keeps both hits (hits are unique per query)."""
    tasks = []
    for number, start in enumerate(range(0, len(items), ITEMS_PER_TASK), start=1):
        chunk = [_item_payload(i) for i in items[start : start + ITEMS_PER_TASK]]
        digest = hashlib.sha256(json.dumps(chunk, sort_keys=True).encode()).hexdigest()[:24]
        query = f"pairs-csv {name} part {number}" if pairs else f"sequence-csv {name}"
        tasks.append(
            NewTask(IDS, f"mapillary:{campaign_id}:ids:{digest}", {"items": chunk, "query": query})
        )
    return tasks


def _item_payload(item: IdItem) -> dict[str, Any]:
    full = {
        "id": item.image_id,
        "seq": item.sequence_id,
        "lat": item.lat,
        "lon": item.lon,
        "role": item.role,
        "pair": item.pair,
        "other": item.other,
    }
    return {k: v for k, v in full.items() if v is not None}


def item_of(payload: dict[str, Any]) -> IdItem:
    """The inverse of `_item_payload`, for the task that reads it back."""
    return IdItem(
        image_id=str(payload["id"]),
        sequence_id=payload.get("seq"),
        lat=payload.get("lat"),
        lon=payload.get("lon"),
        role=payload.get("role"),
        pair=payload.get("pair"),
        other=payload.get("other"),
    )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None

"""`harvester submit mapillary`: a campaign and its first tasks, re-submittable as a no-op.

Task kinds and payloads (read back by `MapillarySource.expand`):
- `mapillary_tile`: `TilePayload` {"bbox": [minlon, minlat, maxlon, maxlat], "query": label}
- `mapillary_sequence`: `SequencePayload` {"sequence_id": id, "query": label}
- `mapillary_ids`: `IdsPayload` {"items": [{"id", "seq", "lat", ...}], "query": label}
Dedupe keys are built from the campaign and the task's content, so the same submit twice
adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from harvester.errors import InputError
from harvester.records import NewTask, SubmitReport
from harvester.sources.mapillary_csv import CsvRead, IdItem, read_pairs_csv, read_sequence_csv
from harvester.sources.mapillary_records import DEFAULT_SIZE, SIZES, ThumbSize
from harvester.sources.mapillary_tiles import Tile, check_bbox, plan_tiles
from harvester.sources.settings import (
    DEFAULT_SIZES,
    CampaignSettings,
    StoredModel,
    check_sizes,
)

if TYPE_CHECKING:
    from harvester.db.session import Engine

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
    size: str = DEFAULT_SIZE  # one of SIZES: the thumbnail Mapillary is asked for
    max_side: int | None = None  # None: the size asked for (an original is not resized)
    min_side: int = DEFAULT_SIZES.min_side

    @property
    def stored_side(self) -> int:
        """The longer side of stored images: as given, else the size that was asked for."""
        if self.max_side is not None:
            return self.max_side
        return ORIGINAL_SIDE if self.size == "original" else int(self.size)


async def submit_mapillary(
    engine: Engine,
    campaign: MapillaryCampaign,
    *,
    update_settings: bool = False,
    max_attempts: int,
    submit_id: str | None = None,
) -> SubmitReport:
    """Create (or resume) the campaign and enqueue its tasks; bad CSV lines become problems."""
    # Here, not at the top: worker processes import this module to fetch, never the database.
    from harvester.db.campaigns import ensure_campaign
    from harvester.db.enqueue import enqueue_tasks

    _check(campaign)
    read = _read_lists(campaign)
    campaign_id = await ensure_campaign(
        engine,
        campaign.name,
        PROVIDER,
        settings_of(campaign),
        update_settings=update_settings,
        submit_id=submit_id,
    )
    tasks, detail = _tasks(campaign, campaign_id, read)
    added = await enqueue_tasks(engine, campaign_id, tasks, default_max_attempts=max_attempts)
    problems = tuple(read.problems) if read else ()
    return SubmitReport(campaign_id, added, problems, {**detail, "tasks": len(tasks)})


class MapillarySettings(CampaignSettings):
    """A Mapillary campaign's settings as stored: what the daemon and `expand` read back."""

    size: ThumbSize = DEFAULT_SIZE
    pano_only: bool = False
    min_captured_at: date | None = None
    max_captured_at: date | None = None
    bbox: tuple[float, float, float, float] | None = None  # a region campaign's region


class TilePayload(StoredModel):
    """A `mapillary_tile` task: search one box (split further if it is too full)."""

    bbox: tuple[float, float, float, float]
    query: str | None = None


class SequencePayload(StoredModel):
    """A `mapillary_sequence` task: every image of one sequence."""

    sequence_id: str = Field(min_length=1)
    query: str | None = None


class ListedImage(StoredModel):
    """One image of a `mapillary_ids` task, with what its list said about it."""

    id: str = Field(min_length=1)
    seq: str | None = None
    lat: float | None = None
    lon: float | None = None
    role: str | None = None
    pair: int | None = None
    other: str | None = None

    def item(self) -> IdItem:
        return IdItem(self.id, self.seq, self.lat, self.lon, self.role, self.pair, self.other)


class IdsPayload(StoredModel):
    """A `mapillary_ids` task: listed images looked up by id in batches."""

    items: tuple[ListedImage, ...] = Field(min_length=1)
    query: str | None = None


def settings_of(campaign: MapillaryCampaign) -> dict[str, Any]:
    """The campaign row's settings: what the daemon and `expand` read back."""
    return MapillarySettings(
        max_side=campaign.stored_side,
        min_side=campaign.min_side,
        size=cast(Any, campaign.size),  # checked against SIZES before this
        pano_only=campaign.pano_only,
        min_captured_at=campaign.min_captured_at,
        max_captured_at=campaign.max_captured_at,
        bbox=campaign.bbox,
    ).stored()


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
    check_sizes(campaign.stored_side, campaign.min_side)
    low, high = campaign.min_captured_at, campaign.max_captured_at
    if low is not None and high is not None and low > high:
        raise InputError("--min-captured-at is after --max-captured-at")
    # Tomorrow in UTC is today somewhere: a later day (a typo, 2204) searched every tile or
    # sequence, spending the API's quota, for no image.
    if low is not None and low > datetime.now(UTC).date() + timedelta(days=1):
        raise InputError(f"--min-captured-at {low} is in the future: no image was captured then")
    # An id is Mapillary's letters and digits: a control character or an undecodable byte
    # (a lone surrogate, which the task's dedupe key cannot hold) is a mistyped one.
    bad = [s for s in campaign.sequences if not (s.strip() and s.isprintable()) or len(s) > 200]
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
                SequencePayload(sequence_id=s, query=f"sequence {s}").stored(),
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
        TilePayload(bbox=tile.bounds(), query=query).stored(),
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
        payload = IdsPayload.model_validate({"items": chunk, "query": query}).stored()
        tasks.append(NewTask(IDS, f"mapillary:{campaign_id}:ids:{digest}", payload))
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

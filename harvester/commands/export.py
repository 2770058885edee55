"""`harvester export`: stored images of one or more campaigns as a dataset on disk."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from harvester.commands import bbox_arg, number_arg, on_database, text_arg
from harvester.errors import InputError
from harvester.exporters.near_duplicates import NEAR
from harvester.licences import granted
from harvester.terminal import say

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from harvester.config import Settings
    from harvester.exporters.output import ExportFolder
    from harvester.exporters.selection import Filters, Item
    from harvester.storage.base import Storage

HASH_BITS = 64  # images.phash: the largest Hamming distance
# No two points on Earth are further apart (half the equator is 20,037 km): a radius past it
# means all, and one past 1e154 m overflowed as it was squared. A cell under a millimetre
# divided a UTM easting past what a float holds.
MAX_RADIUS_M = 2e7
MIN_CELL_M = 1e-3
near_distance_arg = number_arg(0, HASH_BITS, whole=True)  # a Hamming distance of two phashes
FORMATS = ("parquet", "csv", "jsonl", "attribution", "pairs", "webdataset", "vpr")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    export = commands.add_parser(
        "export",
        help="stored images as a dataset (tables, attribution, VPR layout, pairs, shards)",
    )
    export.add_argument(
        "--campaign", type=text_arg, action="append", required=True, help="repeatable"
    )
    export.add_argument("--format", choices=FORMATS, required=True, help="what to write (required)")
    export.add_argument("--out", type=Path, required=True, help="the folder to write")
    export.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder not ours"
    )
    chosen = export.add_argument_group("which images")
    chosen.add_argument("--license", action="append", help="licence ids or names, comma-separated")
    chosen.add_argument("--commercial-ok", action="store_true", help="licences allowing it")
    chosen.add_argument("--derivatives-ok", action="store_true", help="licences allowing it")
    chosen.add_argument("--bbox", type=bbox_arg, help="MINLON,MINLAT,MAXLON,MAXLAT")
    chosen.add_argument(
        "--since", type=_moment, help="captured at or after (YYYY-MM-DD[Thh:mm]; Flickr: local)"
    )
    chosen.add_argument("--until", type=_until, help="captured up to (a date: that whole day)")
    chosen.add_argument("--pano-only", action="store_true", help="spherical images only")
    chosen.add_argument(
        "--min-distance",
        type=number_arg(0),
        metavar="METERS",
        help="thin each sequence (mapillary_tools)",
    )
    chosen.add_argument(
        "--duplicate-angle",
        type=number_arg(0, 180),
        default=5.0,
        metavar="DEGREES",
        help="with --min-distance: only drop images turned by at most this much (default 5)",
    )
    chosen.add_argument(
        "--interpolate-headings", action="store_true", help="fill missing headings along sequences"
    )
    chosen.add_argument(
        "--drop-near-duplicates",
        type=near_distance_arg,
        nargs="?",
        const=NEAR,
        metavar="DISTANCE",
        help=f"keep one image per perceptual-hash group (Hamming <= {NEAR})",
    )
    vpr = export.add_argument_group("vpr layout")
    vpr.add_argument(
        "--cell-m", type=number_arg(MIN_CELL_M), default=100.0, help="split cells, metres"
    )
    # A string default is parsed as typed (by `type`), and shown so, not as a tuple.
    vpr.add_argument("--split", type=_ratios, default="0.6,0.2,0.2", help="train,val,test ratios")
    vpr.add_argument("--seed", type=int, default=0, help="of the cells' splits and hashed roles")
    vpr.add_argument(
        "--queries-by",
        choices=("auto", "time", "pairs", "random"),
        default="auto",
        help="how query images are picked (auto: a pairs file's roles, else time)",
    )
    vpr.add_argument(
        "--query-fraction",
        type=number_arg(0, 1),
        default=0.25,
        help="of the images hashed to a role: --queries-by random, or time's with no sequence",
    )
    vpr.add_argument(
        "--positive-m",
        type=number_arg(0, MAX_RADIUS_M, open_low=True),
        default=25.0,
        help="a query with no gallery image this near in its split is left out (default 25)",
    )
    vpr.add_argument(
        "--buffer-m",
        type=number_arg(0, MAX_RADIUS_M),
        default=25.0,
        help="leave out val images this near test's, train's near either (default 25; 0: none)",
    )
    vpr.add_argument(
        "--gallery-name",
        choices=("gallery", "database"),
        default="gallery",
        help="the gallery folders' name: GeoWarp's gallery, or VPR-datasets-downloader's database",
    )
    export.set_defaults(handler=on_database(migrate=True)(_export))


def _moment(text: str) -> datetime:
    """A bound as written (a date is its midnight): with no offset it reads as UTC against
    UTC capture times and as the wall clock against Flickr's zone-less ones."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r}") from None
    try:
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # what a UTC capture time is compared with
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside the years 1 to 9999 in UTC"
        ) from None
    return moment


def _until(text: str) -> datetime:
    """`--until` a date means that whole day."""
    moment = _moment(text)
    return moment + timedelta(days=1, microseconds=-1) if len(text) == 10 else moment


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        train, val, test = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split wants TRAIN,VAL,TEST, got {text!r}") from None
    if not all(map(math.isfinite, (train, val, test))):
        raise argparse.ArgumentTypeError(f"--split ratios must be finite, got {text!r}")
    if min(train, val, test) < 0 or train + val + test <= 0:
        raise argparse.ArgumentTypeError("--split ratios must be >= 0 and not all 0")
    return train, val, test


def filters_of(args: argparse.Namespace) -> Filters:
    from harvester.exporters.selection import Filters

    licenses = tuple(
        part.strip() for value in args.license or () for part in value.split(",") if part.strip()
    )
    return Filters(
        licenses=licenses,
        commercial_ok=args.commercial_ok,
        derivatives_ok=args.derivatives_ok,
        bbox=args.bbox,
        since=args.since,
        until=args.until,
        pano_only=args.pano_only,
        min_distance=args.min_distance,
        duplicate_angle=args.duplicate_angle,
        interpolate_headings=args.interpolate_headings,
        near_duplicates=args.drop_near_duplicates,
    )


async def _export(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.exports import campaign_ids, stored_images
    from harvester.exporters.near_duplicates import drop_near_duplicates
    from harvester.exporters.output import ExportFolder
    from harvester.exporters.selection import select_items
    from harvester.storage.open import open_storage

    names = list(dict.fromkeys(args.campaign))
    ids = await campaign_ids(engine, names)
    images = await stored_images(engine, sorted(ids.values()))
    if not images:
        raise InputError(f"nothing to export: no stored images in {_named(names)}")
    filters = filters_of(args)
    items = select_items(images, filters, drop_near_duplicates)
    if not items:
        raise InputError(
            f"the filters ({', '.join(filters.describe())}) leave none of the "
            f"{len(images)} stored images of {_named(names)}"
        )
    folder = ExportFolder.open(args.out, args.format, overwrite=args.overwrite)
    storage = open_storage(settings)
    try:
        exported, what = await _write(
            args, storage, items, folder, _made_with(args, names, filters)
        )
    finally:
        await storage.close()
    changes = folder.finish()
    # The images in the export, not those selected: a layout may leave some out (it says why).
    of = "" if len(exported) == len(items) else f" of the {len(items)}"
    say(f"exported {len(exported)}{of} images of {_named(names)} to {args.out} ({what}): {changes}")
    unlicensed = sum(not granted(*item.image.licence) for item in exported)
    if unlicensed:
        say(
            f"{unlicensed} of them are All Rights Reserved or of unknown licence: no licence"
            " to reuse them was granted (--commercial-ok or --derivatives-ok leaves them out)"
        )
    return 0


def _check_storage_holds(storage: Storage, item: Item) -> None:
    """An export of image files reads them from the storage the daemon wrote to: a local
    root that does not hold the first image is the wrong root (the demo's is not the
    default `data`), said before any file is written, not as a failed copy of one."""
    local = storage.local_path(item.record["path"])
    if local is not None and not local.is_file():
        raise InputError(
            f"the stored image {item.record['path']} is not under the storage root "
            f"{storage.location}: pass the --storage-root (HARVESTER_STORAGE_ROOT) "
            "the daemon wrote to"
        )


def _named(names: Sequence[str]) -> str:
    return "campaign " + ", ".join(repr(n) for n in names)


def _made_with(args: argparse.Namespace, names: Sequence[str], filters: Filters) -> list[str]:
    return [
        f"campaigns: {', '.join(names)}",
        f"filters: {', '.join(filters.describe()) or 'none'}",
    ]


async def _write(
    args: argparse.Namespace,
    storage: Storage,
    items: Sequence[Item],
    folder: ExportFolder,
    made_with: Sequence[str],
) -> tuple[Sequence[Item], str]:
    """Write the format; every layout of image files ships its attribution beside them.
    Returns the images the export holds (the VPR layout leaves some out, pairs.csv those in
    no whole pair) and what it wrote."""
    from harvester.exporters.attribution import write_attribution

    if args.format == "attribution":
        return items, f"{write_attribution(items, folder)} attribution rows"
    if args.format == "pairs":
        from harvester.exporters.pairs import pair_rows, pairs_csv

        rows = pair_rows(items)
        if not rows:
            raise InputError("no pair of the exported images has both sides stored")
        folder.write("pairs.csv", pairs_csv(rows))
        listed = {row[f"image_id_{side}"] for row in rows for side in ("database", "query")}
        return [i for i in items if i.record["provider_id"] in listed], f"{len(rows)} pairs"
    if args.format in ("webdataset", "vpr"):
        _check_storage_holds(storage, items[0])
    if args.format == "webdataset":
        from harvester.exporters.webdataset import export_webdataset

        files = await export_webdataset(items, folder, storage)
        write_attribution(items, folder, files)
        return items, f"{len({f.split(':')[0] for f in files.values()})} shards"
    if args.format == "vpr":
        return await _write_vpr(args, storage, items, folder, made_with)
    from harvester.exporters.tables import export_table

    return items, export_table(items, folder, args.format)


async def _write_vpr(
    args: argparse.Namespace,
    storage: Storage,
    items: Sequence[Item],
    folder: ExportFolder,
    made_with: Sequence[str],
) -> tuple[list[Item], str]:
    from harvester.exporters.attribution import write_attribution
    from harvester.exporters.vpr import VprOptions, export_vpr

    options = VprOptions(
        cell_m=args.cell_m,
        ratios=args.split,
        seed=args.seed,
        queries_by=args.queries_by,
        query_fraction=args.query_fraction,
        gallery_name=args.gallery_name,
        buffer_m=args.buffer_m,
        positive_m=args.positive_m,
    )
    said, files = await export_vpr(items, folder, storage, options, made_with)
    exported = [i for i in items if i.record["id"] in files]
    write_attribution(exported, folder, files)
    return exported, said

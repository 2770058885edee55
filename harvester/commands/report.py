"""`harvester report`: a campaign's figures as a self-contained report.html and PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harvester.commands import on_database, text_arg
from harvester.commands.export import near_distance_arg
from harvester.exporters.near_duplicates import NEAR
from harvester.terminal import say

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from harvester.config import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="a campaign's coverage and outcomes as HTML")
    report.add_argument(
        "--campaign", type=text_arg, required=True, help="the campaign to report on"
    )
    report.add_argument("--out", type=Path, required=True, help="the folder to write")
    report.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty folder not ours"
    )
    report.add_argument(
        "--near-distance",
        type=near_distance_arg,
        default=NEAR,
        help="Hamming distance of near-duplicates",
    )
    report.set_defaults(handler=on_database(migrate=True)(_report))


async def _report(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.exports import campaign_ids, stored_images
    from harvester.db.reports import outcomes, per_query
    from harvester.exporters.figures import figure_data
    from harvester.exporters.output import ExportFolder
    from harvester.exporters.report import write_report

    campaign_id = (await campaign_ids(engine, [args.campaign]))[args.campaign]
    data = figure_data(
        args.campaign,
        await stored_images(engine, [campaign_id]),
        await outcomes(engine, campaign_id),
        await per_query(engine, campaign_id),
        args.near_distance,
    )
    folder = ExportFolder.open(args.out, "report", overwrite=args.overwrite)
    count = write_report(data, folder)
    changes = folder.finish()
    say(
        f"report of campaign {args.campaign!r} in {args.out / 'report.html'}: {data.stored} "
        f"stored images, {count} figures, {len(data.near_groups)} near-duplicate groups "
        f"({changes})"
    )
    return 0

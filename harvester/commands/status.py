"""`harvester status`: the operator's first question, per campaign, in 80 columns."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from harvester.commands import on_database
from harvester.config import Settings
from harvester.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CLEAR = "\x1b[H\x1b[2J"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status", help="per campaign: counts, %% done, images/s, ETA, top reasons"
    )
    status.add_argument("--campaign", help="only this campaign (default: all)")
    status.add_argument("--json", action="store_true", help="JSON for scripts (default: table)")
    status.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="redraw every SECONDS until interrupted (default: once)",
    )
    status.set_defaults(handler=_status)


@on_database(migrate=True)
async def _status(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester import status
    from harvester.db.campaigns import campaign_id_of

    if args.watch is not None and args.watch <= 0:
        raise InputError("--watch wants a number of seconds above 0")
    if args.campaign is not None:
        await campaign_id_of(engine, args.campaign)  # an unknown name is an error, not empty
    while True:
        reports = await status.collect(engine, args.campaign)
        if args.watch is not None and not args.json and sys.stdout.isatty():
            sys.stdout.write(CLEAR)
        if args.json:
            status.render_json(reports, sys.stdout)
        else:
            status.render_table(reports, sys.stdout)
        sys.stdout.flush()
        if args.watch is None:
            return 0
        await asyncio.sleep(args.watch)

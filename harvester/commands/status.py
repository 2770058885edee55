"""`harvester status`: the operator's first question, per campaign, in 80 columns."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from harvester.commands import number_arg, on_database, text_arg
from harvester.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CLEAR = "\x1b[H\x1b[2J"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status", help="per campaign: counts, %% done, images/s, ETA, top reasons"
    )
    status.add_argument("--campaign", type=text_arg, help="only this campaign (default: all)")
    status.add_argument("--json", action="store_true", help="JSON for scripts (default: table)")
    status.add_argument(
        "--watch",
        type=number_arg(0, open_low=True),
        metavar="SECONDS",
        help="redraw every SECONDS until Ctrl-C, which exits 0 (default: once)",
    )
    status.set_defaults(handler=_status)


@on_database(migrate=True)
async def _status(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.campaigns import campaign_id_of

    if args.campaign is not None:
        await campaign_id_of(engine, args.campaign)  # an unknown name is an error, not empty
    if args.watch is None:
        await _draw(engine, args)
        return 0
    return await _watch(engine, args)


async def _draw(engine: AsyncEngine, args: argparse.Namespace) -> None:
    from harvester import status

    reports = await status.collect(engine, args.campaign)
    if args.watch is not None and not args.json and sys.stdout.isatty():
        sys.stdout.write(CLEAR)
    if args.json:
        status.render_json(reports, sys.stdout)
    else:
        status.render_table(reports, sys.stdout)
    sys.stdout.flush()


async def _watch(engine: AsyncEngine, args: argparse.Namespace) -> int:
    """Redraw until Ctrl-C, which is how a watch ends: it stops between redraws, leaving
    the last table whole, and exits 0."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        while not interrupted.is_set():
            await _draw(engine, args)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), args.watch)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return 0

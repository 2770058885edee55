"""`harvester dashboard`: the operator page served from the database alone, no daemon."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from harvester.config import Settings
from harvester.terminal import say

DEFAULT_BIND = "127.0.0.1:8081"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "dashboard", help="serve the operator dashboard from the database (no daemon needed)"
    )
    parser.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        default=DEFAULT_BIND,
        help="where to serve it; loopback unless a host is given (default: %(default)s)",
    )
    parser.set_defaults(handler=_dashboard)


async def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from harvester.db.migrate import upgrade
    from harvester.db.session import create_engine, require_database
    from harvester.log import redactor
    from harvester.web.dashboard import add_dashboard_routes
    from harvester.web.health import add_health_routes
    from harvester.web.server import serve, url_of

    for secret in settings.secrets:
        redactor.add(secret)
    engine = create_engine(settings.database_url)
    try:
        await require_database(engine)
        await upgrade(engine)
        app = web.Application()
        add_health_routes(app, engine, dict)
        add_dashboard_routes(
            app,
            engine,
            settings.lease_seconds,
            token=settings.dashboard_token,
            tiles=settings.tile_template,
        )
        site = await serve(app, args.http)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        # Said once it can be stopped: whoever read the line may stop it at once.
        say(f"dashboard on {url_of(site)}/ (Ctrl-C stops it)", flush=True)
        try:
            await stopped.wait()
        finally:
            await site.cleanup()
    finally:
        await engine.dispose()
    return 0

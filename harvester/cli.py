"""The command line: the one place that parses argv."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from harvester import log
from harvester.config import Settings, load_settings
from harvester.errors import HarvesterError

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harvester",
        description="Harvest geo-tagged images from Flickr, Mapillary and URL lists.",
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (env HARVESTER_* wins)")
    parser.add_argument("--database-url", help="sqlite:///path.db or postgresql://user@host/db")
    parser.add_argument("--storage-root", type=Path, help="where images are written")
    parser.add_argument("--log-level", default="info")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="schema migrations").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply all migrations").set_defaults(handler=_db_upgrade)
    down = db.add_parser("downgrade", help="revert to a revision")
    down.add_argument("revision")
    down.set_defaults(handler=_db_downgrade)

    status = commands.add_parser("status", help="counts by campaign, kind and state")
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.set_defaults(handler=_status)
    return parser


async def _with_engine(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from harvester.db.session import create_engine

    engine = create_engine(settings.database_url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.db.migrate import current_revision, upgrade

    async def work(engine: Any) -> int:
        await upgrade(engine)
        print(f"database at revision {await current_revision(engine)}")
        return 0

    return await _with_engine(settings, work)


async def _db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.db.migrate import current_revision, downgrade

    async def work(engine: Any) -> int:
        await downgrade(engine, args.revision)
        print(f"database at revision {await current_revision(engine)}")
        return 0

    return await _with_engine(settings, work)


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    from harvester import status
    from harvester.db.migrate import upgrade

    async def work(engine: Any) -> int:
        await upgrade(engine)
        statuses = await status.collect(engine)
        if args.json or not sys.stdout.isatty():
            status.render_json(statuses, sys.stdout)
        else:
            status.render_table(statuses, sys.stdout)
        return 0

    return await _with_engine(settings, work)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    log.configure(args.log_level)
    try:
        settings = load_settings(
            args.config, database_url=args.database_url, storage_root=args.storage_root
        )
        handler: Handler = args.handler
        return asyncio.run(handler(args, settings))
    except HarvesterError as exc:
        print(f"harvester: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

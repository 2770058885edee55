"""The command line: the one place that parses argv."""

from __future__ import annotations

import argparse
import asyncio
import json
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

    run = commands.add_parser("run", help="the daemon: work the queue until stopped")
    run.add_argument("--until-idle", action="store_true", help="exit 0 once nothing is left")
    run.add_argument("--concurrency", type=int, help="images in flight at once")
    run.add_argument("--processes", type=int, help="image worker processes (default: cores)")
    run.add_argument("--http", metavar="HOST:PORT", help="serve /healthz and /metrics here")
    run.add_argument("--grace", type=float, default=30.0, help="seconds to drain on SIGTERM")
    run.set_defaults(handler=_run)

    submit = commands.add_parser("submit", help="queue a harvest campaign").add_subparsers(
        dest="source", required=True
    )
    urls = submit.add_parser("urls", help="a CSV, TSV or Parquet file with a 'url' column")
    urls.add_argument("--campaign", required=True)
    _size_flags(urls)
    urls.add_argument("file", type=Path)
    urls.set_defaults(handler=_submit_urls)

    commands.add_parser("emulator", help="serve the local Flickr + Mapillary + CDN emulator")
    demo = commands.add_parser("demo", help="the whole product against the built-in emulator")
    demo.set_defaults(handler=_demo)

    status = commands.add_parser("status", help="counts by campaign, kind and state")
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.set_defaults(handler=_status)
    return parser


def _size_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-side", type=int, default=1024, help="longer side of stored images")
    parser.add_argument(
        "--min-side", type=int, default=500, help="skip originals smaller than this"
    )


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.worker.daemon import run_daemon
    from harvester.worker.progress import Reporter

    reporter = Reporter(interval_s=settings.log_interval_seconds)
    counters = await run_daemon(
        settings,
        until_idle=args.until_idle,
        grace_seconds=args.grace,
        reporter=reporter,
        handle_signals=True,
        http_bind=args.http,
    )
    print(json.dumps({"summary": counters.as_dict(), "elapsed_s": round(counters.elapsed_s, 2)}))
    return 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.demo import run_demo

    return await run_demo(settings)


async def _submit_urls(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.sources.urls import UrlCampaign, submit_urls

    async def work(engine: Any) -> int:
        campaign = UrlCampaign(args.campaign, args.file, args.max_side, args.min_side)
        report = await submit_urls(engine, campaign, max_attempts=settings.max_attempts)
        _print_problems(report.problems)
        print(
            f"campaign {args.campaign!r}: {report.rows} rows read, {report.added} images queued, "
            f"{report.known} already known, {len(report.problems)} rows rejected"
        )
        return 0

    return await _with_migrated_engine(settings, work)


def _print_problems(problems: Sequence[str], limit: int = 50) -> None:
    for problem in problems[:limit]:
        print(f"  rejected: {problem}", file=sys.stderr)
    if len(problems) > limit:
        print(f"  ... and {len(problems) - limit} more", file=sys.stderr)


async def _with_migrated_engine(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from harvester.db.migrate import upgrade

    async def migrated(engine: Any) -> int:
        await upgrade(engine)
        return await work(engine)

    return await _with_engine(settings, migrated)


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

    async def work(engine: Any) -> int:
        statuses = await status.collect(engine)
        if args.json or not sys.stdout.isatty():
            status.render_json(statuses, sys.stdout)
        else:
            status.render_table(statuses, sys.stdout)
        return 0

    return await _with_migrated_engine(settings, work)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not on every platform; the default loop works, only slower
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from harvester.emulator import main as emulator_main

        return emulator_main(argv[1:])
    args = _parser().parse_args(argv)
    log.configure(args.log_level)
    try:
        settings = load_settings(
            args.config,
            database_url=args.database_url,
            storage_root=args.storage_root,
            concurrency=getattr(args, "concurrency", None),
            processes=getattr(args, "processes", None),
        )
        handler: Handler = args.handler
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(handler(args, settings))
    except HarvesterError as exc:
        print(f"harvester: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

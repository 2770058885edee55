"""The command line: the one place that parses argv."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harvester import log
from harvester.commands import (
    Handler,
    campaign_name_arg,
    dashboard,
    number_arg,
    submitting,
    text_arg,
)
from harvester.commands import bbox_arg as _bbox
from harvester.commands import campaigns as campaign_commands
from harvester.commands import export as export_command
from harvester.commands import jobs as job_commands
from harvester.commands import on_database as _on_database
from harvester.commands import report as report_command
from harvester.commands import status as status_command
from harvester.config import (
    DEFAULT_CONCURRENCY,
    IN_FLIGHT_PER_PROCESS,
    MAX_PROCESSES,
    Settings,
    load_settings,
)
from harvester.errors import HarvesterError
from harvester.loops import loop_factory
from harvester.terminal import say

if TYPE_CHECKING:
    from harvester.db.session import Engine
    from harvester.worker.progress import Reporter


# `run --until-idle` ended with work a paused campaign cannot do (a refused key, say).
BLOCKED = 3
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class _DefaultsShown(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings:
            return text
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            return text  # no default to show (0 and 0.0 are shown)
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Sub-commands are built from this class too, so each shows its defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsShown)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    from harvester.sources.mapillary_records import DEFAULT_SIZE as MAPILLARY_DEFAULT_SIZE

    defaults = Settings.model_fields
    parser: argparse.ArgumentParser = _Parser(
        prog="harvester",
        description="Harvest geo-tagged images from Flickr, Mapillary and URL lists.",
    )
    parser.add_argument(
        "--config", type=Path, help="TOML settings file; env HARVESTER_* wins (default: none)"
    )
    parser.add_argument(
        "--database-url",
        help="sqlite:///path.db or postgresql://user@host/db (default: HARVESTER_DATABASE_URL"
        f" or {defaults['database_url'].default})",
    )
    parser.add_argument(
        "--storage-root",
        type=Path,
        help="where images are written (default: HARVESTER_STORAGE_ROOT or "
        f"{defaults['storage_root'].default})",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="schema migrations").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply all migrations").set_defaults(handler=_db_upgrade)
    down = db.add_parser("downgrade", help="revert to a revision")
    down.add_argument("revision", type=text_arg)
    down.set_defaults(handler=_db_downgrade)

    run = commands.add_parser("run", help="the daemon: work the queue until stopped")
    run.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once nothing is left: 0, or 3 if a paused campaign still has work",
    )
    run.add_argument(
        "--concurrency",
        type=number_arg(1, whole=True),
        help=f"images in flight at once (default: {IN_FLIGHT_PER_PROCESS} per process, "
        f"at least {DEFAULT_CONCURRENCY})",
    )
    run.add_argument(
        "--processes",
        type=number_arg(1, MAX_PROCESSES, whole=True),
        help="image worker processes (default: cores)",
    )
    run.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        help="serve the dashboard (/), /livez, /readyz and /metrics here (HOST: default 127.0.0.1)",
    )
    run.add_argument(
        "--grace", type=number_arg(0), default=30.0, help="seconds to drain on SIGTERM"
    )
    run.set_defaults(handler=_run)

    submit_parent = argparse.ArgumentParser(add_help=False)
    submit_parent.add_argument(
        "--update",
        action="store_true",
        help="an existing campaign takes these settings (default: a difference is refused)",
    )
    submit = commands.add_parser("submit", help="queue a harvest campaign").add_subparsers(
        dest="source", required=True
    )
    urls = submit.add_parser(
        "urls", parents=[submit_parent], help="a CSV, TSV or Parquet file with a 'url' column"
    )
    urls.add_argument(
        "--campaign", type=campaign_name_arg, required=True, help="the campaign's name (required)"
    )
    _size_flags(urls)
    urls.add_argument("file", type=Path)
    urls.set_defaults(handler=_submit_urls)

    commands.add_parser(  # its options (--help included) are the emulator's own
        "emulator", help="serve the local Flickr + Mapillary + CDN emulator", add_help=False
    )
    demo = commands.add_parser(
        "demo",
        help="the whole product against the built-in emulator, in ./harvester-demo "
        "(--database-url and --storage-root given before `demo` move its database and files)",
    )
    demo.set_defaults(handler=_demo)

    flickr = submit.add_parser(
        "flickr", parents=[submit_parent], help="keyword/region search with dynamic time windows"
    )
    flickr.add_argument(
        "--campaign", type=campaign_name_arg, required=True, help="the campaign's name (required)"
    )
    flickr.add_argument("--queries", type=Path, required=True, help="one query per line")
    flickr.add_argument("--bbox", type=_bbox, help="MINLON,MINLAT,MAXLON,MAXLAT")
    flickr.add_argument(
        "--min-upload-date", type=_date, default=date(2004, 1, 1), help="YYYY-MM-DD, inclusive"
    )
    flickr.add_argument("--max-upload-date", type=_date, help="inclusive; default today")
    flickr.add_argument("--license", help="comma-separated Flickr licence ids (default: any)")
    flickr.add_argument("--accuracy", type=int, default=6, help="minimum geo accuracy (1-16)")
    flickr.add_argument("--no-geo-only", action="store_true", help="also photos without geo")
    flickr.add_argument(
        "--target-per-window", type=int, default=400, help="results a time window aims at"
    )
    _size_flags(flickr)
    flickr.set_defaults(handler=_submit_flickr)

    mapillary = submit.add_parser(
        "mapillary", parents=[submit_parent], help="regions, sequences, Spherical-VPR ID lists"
    )
    mapillary.add_argument(
        "--campaign", type=campaign_name_arg, required=True, help="the campaign's name (required)"
    )
    what = mapillary.add_mutually_exclusive_group(required=True)
    what.add_argument("--bbox", type=_bbox, help="MINLON,MINLAT,MAXLON,MAXLAT")
    what.add_argument("--sequence", action="append", help="a sequence id (repeatable)")
    what.add_argument("--sequence-csv", type=Path, help="sequence_id,image_id,latitude,longitude")
    what.add_argument("--pairs-csv", type=Path, help="the Spherical VPR pairs file")
    mapillary.add_argument("--pano-only", action="store_true", help="spherical images only")
    mapillary.add_argument(
        "--min-captured-at", type=_date, help="YYYY-MM-DD, inclusive (default: no limit)"
    )
    mapillary.add_argument(
        "--max-captured-at", type=_date, help="YYYY-MM-DD, inclusive (default: no limit)"
    )
    mapillary.add_argument(
        "--size",
        choices=["256", "1024", "2048", "original"],
        help=f"thumbnail asked for (default: {MAPILLARY_DEFAULT_SIZE})",
    )
    _size_flags(mapillary, "longer side of stored images (default: the --size asked for)")
    mapillary.set_defaults(handler=_submit_mapillary)

    cancel = commands.add_parser("cancel", help="stop a campaign: its queued work is cancelled")
    cancel.add_argument(
        "--campaign", type=text_arg, required=True, help="the campaign's name (required)"
    )
    cancel.set_defaults(handler=_cancel)
    retry = commands.add_parser(
        "retry-failed", help="queue a campaign's transient failures again (see jobs retry)"
    )
    retry.add_argument(
        "--campaign", type=text_arg, required=True, help="the campaign's name (required)"
    )
    retry.add_argument("--cancelled", action="store_true", help="also resume cancelled rows")
    retry.set_defaults(handler=_retry_failed)

    job_commands.register(commands)
    campaign_commands.register(commands)

    status_command.register(commands)
    dashboard.register(commands)
    export_command.register(commands)
    report_command.register(commands)
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _size_flags(
    parser: argparse.ArgumentParser, shown: str = "longer side of stored images"
) -> None:
    """Sizes left out take the campaign settings' defaults (`harvester.imaging.SizeRules`)."""
    from harvester.imaging import SizeRules

    sizes = SizeRules()
    if "default" not in shown:
        shown += f" (default: {sizes.max_side})"
    parser.add_argument("--max-side", type=int, help=shown)
    parser.add_argument(
        "--min-side",
        type=int,
        help=f"skip originals smaller than this (default: {sizes.min_side})",
    )


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    return {k: v for k in ("max_side", "min_side") if (v := getattr(args, k)) is not None}


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.loading import collector_paused
    from harvester.worker.forkserver import start_fork_server

    start_fork_server()  # it imports what workers need while we import the daemon
    with collector_paused():
        from harvester.worker.daemon import run_daemon

    counters = await run_daemon(
        settings,
        until_idle=args.until_idle,
        grace_seconds=args.grace,
        reporter=_reporter(settings.log_interval_seconds),
        handle_signals=True,
        http_bind=args.http,
    )
    print(json.dumps({"summary": counters.as_dict(), "elapsed_s": round(counters.elapsed_s, 2)}))
    for blocked in counters.blocked:
        say(
            f"harvester: campaign {blocked.name!r} is paused ({blocked.reason}): "
            f"{blocked.message or 'campaigns pause'}; fix it, then "
            f"`harvester campaigns resume {blocked.name}`",
            file=sys.stderr,
        )
    return BLOCKED if counters.blocked else 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from harvester.demo import run_demo

    given = [name for name in ("database_url", "storage_root") if getattr(args, name) is not None]
    return await run_demo(settings, reporter=_reporter(5.0), given=given)


def _reporter(interval_s: float) -> Reporter:
    """Progress on stderr; a live display lets only warnings through, or lines would tear it."""
    from harvester.worker.progress import Reporter

    reporter = Reporter(interval_s=interval_s)
    if reporter.live:
        log.configure("warning", reporter.out)
    return reporter


@_on_database(migrate=True)
async def _submit_urls(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.sources.urls import NoRowQueued, UrlCampaign, submit_urls

    campaign = UrlCampaign(args.campaign, args.file, **_sizes(args))
    try:
        async with submitting(engine, campaign.name) as submit_id:
            report = await submit_urls(
                engine,
                campaign,
                max_attempts=settings.max_attempts,
                update_settings=args.update,
                submit_id=submit_id,
            )
    except NoRowQueued as exc:
        _print_problems(exc.problems)  # why, row by row, then the refusal's one line
        raise
    _print_problems(report.problems)
    say(
        f"campaign {args.campaign!r}: {report.rows} rows read, {report.images_added} images "
        f"queued, {report.images_known} already known, {len(report.problems)} rows rejected"
    )
    return 0


@_on_database(migrate=True)
async def _submit_flickr(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.sources.flickr import FlickrCampaign, parse_queries, submit_flickr
    from harvester.sources.textfile import read_text_capped

    text = read_text_capped(args.queries, max_chars=16 * 1024 * 1024, what="queries file")
    queries, negatives = parse_queries(text, source=str(args.queries))
    campaign = FlickrCampaign(
        name=args.campaign,
        queries=queries,
        negative_terms=negatives,
        bbox=args.bbox,
        min_upload=args.min_upload_date,
        max_upload=args.max_upload_date,
        licenses=tuple(x.strip() for x in args.license.split(",")) if args.license else (),
        accuracy=args.accuracy,
        geo_only=not args.no_geo_only,
        target_per_window=args.target_per_window,
        **_sizes(args),
    )

    async with submitting(engine, campaign.name) as submit_id:
        report = await submit_flickr(
            engine,
            campaign,
            max_attempts=settings.max_attempts,
            update_settings=args.update,
            submit_id=submit_id,
        )
    say(
        f"campaign {args.campaign!r}: {len(queries)} queries, {len(negatives)} negative "
        f"terms, {report.tasks_added} tasks queued (0 means it was already submitted)"
    )
    return 0


@_on_database(migrate=True)
async def _submit_mapillary(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.sources.mapillary import MapillaryCampaign, submit_mapillary
    from harvester.sources.mapillary_records import DEFAULT_SIZE

    campaign = MapillaryCampaign(
        name=args.campaign,
        bbox=args.bbox,
        sequences=tuple(args.sequence or ()),
        sequence_csv=args.sequence_csv,
        pairs_csv=args.pairs_csv,
        pano_only=args.pano_only,
        min_captured_at=args.min_captured_at,
        max_captured_at=args.max_captured_at,
        size=args.size or DEFAULT_SIZE,
        **_sizes(args),
    )

    async with submitting(engine, campaign.name) as submit_id:
        report = await submit_mapillary(
            engine,
            campaign,
            max_attempts=settings.max_attempts,
            update_settings=args.update,
            submit_id=submit_id,
        )
    _print_problems(report.problems)
    say(
        f"campaign {args.campaign!r}: {report.tasks_added} tasks queued "
        f"(0 means it was already submitted), {len(report.problems)} lines rejected"
    )
    return 0


@_on_database(migrate=True)
async def _cancel(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.db.campaigns import campaign_id_of
    from harvester.db.models import Image, Task
    from harvester.db.queue import Queue

    campaign = await campaign_id_of(engine, args.campaign)
    tasks = await Queue(engine, Task).cancel(campaign_id=campaign)
    images = await Queue(engine, Image).cancel(campaign_id=campaign)
    say(f"campaign {args.campaign!r}: cancelled {tasks} tasks and {images} images")
    return 0


@_on_database(migrate=True)
async def _retry_failed(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    """The old spelling of `jobs retry --campaign NAME` (transient failures only)."""
    from harvester.db.campaigns import campaign_id_of
    from harvester.db.jobs import retry_jobs

    campaign = await campaign_id_of(engine, args.campaign)
    states = ["failed", "cancelled"] if args.cancelled else ["failed"]
    counts = await retry_jobs(engine, campaign_id=campaign, states=states)
    tasks, images = (sum(c.values()) for c in counts.values())
    say(f"campaign {args.campaign!r}: queued again {tasks} tasks, {images} images")
    return 0


def _print_problems(problems: Sequence[str], limit: int = 50) -> None:
    for problem in problems[:limit]:
        say(f"  rejected: {problem}", file=sys.stderr)
    if len(problems) > limit:
        say(f"  ... and {len(problems) - limit} more", file=sys.stderr)


@_on_database(migrate=False)
async def _db_upgrade(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.db.migrate import current_revision, upgrade

    await upgrade(engine)
    say(f"database at revision {await current_revision(engine)}")
    return 0


@_on_database(migrate=False)
async def _db_downgrade(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from harvester.db.migrate import current_revision, downgrade

    await downgrade(engine, args.revision)
    say(f"database at revision {await current_revision(engine)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `harvester` program (argv None: sys.argv), or one command of it (as tests run it)."""
    if argv is not None:
        return _interruptible(list(argv))
    code = _interruptible(sys.argv[1:])
    # The program ends here, its files and connections closed. The collector's passes at
    # interpreter exit would walk every object the imports made (~0.25 s of CPU with the
    # daemon loaded) to free memory the system takes back anyway.
    gc.freeze()
    return code


def _interruptible(argv: list[str]) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a closed reader is caught below
        return code
    except KeyboardInterrupt:
        # Ctrl-C anywhere, loading included: one line, not a traceback from whatever ran.
        say("harvester: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`harvester status | head`): nothing is wrong here. Stdout
        # goes to nothing, so the flush at exit does not raise it again; 141 as for SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str]) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.log_level.lower() not in LOG_LEVELS:
        say(
            f"harvester: --log-level {args.log_level!r} is not a level; use one of "
            f"{', '.join(LOG_LEVELS)}",
            file=sys.stderr,
        )
        return 2
    log.configure(args.log_level)
    if args.command == "emulator":  # its own options follow it, for its own parser
        from harvester.emulator import main as emulator_main

        return emulator_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = load_settings(
            args.config,
            database_url=args.database_url,
            storage_root=args.storage_root,
            concurrency=getattr(args, "concurrency", None),
            processes=getattr(args, "processes", None),
        )
        handler: Handler = args.handler
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(handler(args, settings))
    except HarvesterError as exc:
        say(f"harvester: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on the way out: a late Ctrl-C is moot
    sys.exit(code)

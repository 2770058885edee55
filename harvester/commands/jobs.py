"""`harvester jobs list|show|retry`: the rows of both queues, why they failed, again by reason."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harvester.commands import number_arg, on_database, print_json, text_arg
from harvester.config import Settings
from harvester.errors import InputError
from harvester.terminal import WIDTH, say

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from harvester.db.jobs import JobKind

KINDS = ("task", "image")
RETRY_STATES = ("failed", "skipped", "cancelled")
MAX_ROWS = 10**9  # more than any queue holds, and within what SQLite's LIMIT takes (2**63)
# A row's id is a 64-bit integer on both databases: a larger one failed as the driver's error.
_row_id = number_arg(1, 2**63 - 1, whole=True)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="list, show and retry rows of the job tables")
    group = jobs.add_subparsers(dest="jobs_command", required=True)

    listing = group.add_parser("list", help="rows, most recently changed first")
    _scope_flags(listing)
    listing.add_argument(
        "--state", type=_state_arg, action="append", help="only rows in this state (repeatable)"
    )
    listing.add_argument(
        "--reason", type=_reason_arg, action="append", help="only rows with this reason code"
    )
    listing.add_argument(
        "--limit",
        type=number_arg(1, MAX_ROWS, whole=True),
        default=50,
        help="at most this many rows",
    )
    listing.add_argument("--json", action="store_true", help="JSON for scripts, not a table")
    listing.set_defaults(handler=_list)

    show = group.add_parser("show", help="every column of one row (source URL redacted)")
    show.add_argument("id", type=_row_id, help="the row's id, as `jobs list` shows it")
    show.add_argument("--kind", choices=KINDS, default="image", help="which table")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(handler=_show)

    retry = group.add_parser(
        "retry",
        help="queue finished rows again; by default only failures that were transient",
    )
    _scope_flags(retry)
    retry.add_argument(
        "--state", choices=RETRY_STATES, default="failed", help="which finished rows"
    )
    retry.add_argument(
        "--reason",
        type=_reason_arg,
        nargs="+",
        action="extend",
        metavar="CODE",
        help="only rows with these reason codes, retryable or not (default: transient ones)",
    )
    retry.add_argument(
        "--id", nargs="+", action="extend", type=_row_id, metavar="ID", help="only these rows"
    )
    retry.add_argument("--dry-run", action="store_true", help="count, change nothing")
    retry.set_defaults(handler=_retry)


def _state_arg(text: str) -> str:
    """A state of either queue: one that is none (`faild`) would match no row, silently."""
    text = text_arg(text)
    states = _every_state()
    if text not in states:
        raise argparse.ArgumentTypeError(f"{text!r} is not a state; use one of {', '.join(states)}")
    return text


def _every_state() -> list[str]:
    """The states of both queues, tasks' first (harvester.db.models, where each is declared)."""
    from harvester.db.models import ImageState, TaskState

    return list(dict.fromkeys([*TaskState, *ImageState]))


def _reason_arg(text: str) -> str:
    """A reason code harvester gives (harvester.reasons): one it never gives (`timout`)
    would match no row, and `jobs retry` would queue nothing, silently."""
    from harvester.reasons import COMMON, REASONS, is_reason

    text = text_arg(text)
    if is_reason(text):
        return text
    if is_reason(text.lower()):
        close = [text.lower()]
    elif re.fullmatch(r"http_?\d*", text.lower()):
        close = []  # http_44: the list below says what an HTTP status's code is
    else:
        close = difflib.get_close_matches(text.lower(), sorted(REASONS), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a reason code; {hint}codes are http_NNN (an HTTP status: "
        f"http_404) and words such as {', '.join(COMMON)} (the README lists them all)"
    )


def _scope_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", type=text_arg, help="only this campaign (default: all)")
    parser.add_argument("--kind", choices=KINDS, help="only tasks or only images (default: both)")


def _kinds(args: argparse.Namespace) -> tuple[JobKind, ...]:
    from harvester.db.jobs import JobKind

    return (JobKind(args.kind),) if args.kind else tuple(JobKind)


async def _campaign_id(engine: AsyncEngine, name: str | None) -> int | None:
    from harvester.db.campaigns import campaign_id_of

    return None if name is None else await campaign_id_of(engine, name)


def _refuse_states_the_kind_lacks(
    kind: str | None, states: Sequence[str], offered: Sequence[str]
) -> None:
    """`--kind task --state stored` matched no row, ever (only images are stored), and said
    "no rows match" with exit 0: refused before the database is opened, naming the states
    the kind has of those the command offers. Without --kind a state of either is taken."""
    from harvester.db.jobs import MODELS, JobKind
    from harvester.db.models import states_of

    if kind is None:
        return
    own = [str(state) for state in states_of(MODELS[JobKind(kind)])]
    lacking = [state for state in dict.fromkeys(states) if state not in own]
    if lacking:
        a_row = "a task" if kind == JobKind.TASK else "an image"
        raise InputError(
            f"{a_row} is never {' or '.join(map(repr, lacking))}; with --kind {kind}, "
            f"--state takes {', '.join(state for state in own if state in offered)}"
        )


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    _refuse_states_the_kind_lacks(args.kind, args.state or (), _every_state())
    return await _list_rows(args, settings)


@on_database(migrate=True)
async def _list_rows(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.jobs import list_jobs

    lines = await list_jobs(
        engine,
        campaign_id=await _campaign_id(engine, args.campaign),
        kinds=_kinds(args),
        states=args.state or (),
        reasons=args.reason or (),
        limit=args.limit,
    )
    if args.json:
        print_json({"jobs": lines})
        return 0
    if not lines:
        say("no rows match")
        return 0
    say(f"{'kind':<5} {'id':>7} {'state':<9} {'reason':<16} {'try':>3} {'rq':>2} campaign / what")
    for line in lines:
        head = (
            f"{line.kind:<5} {line.id:>7} {line.state:<9} {line.reason or '-':<16} "
            f"{line.attempts:>3} {line.requeues:>2} {line.campaign} / {line.what}"
        )
        say(head + (f": {line.message}" if line.message else ""), width=WIDTH)
    return 0


@on_database(migrate=True)
async def _show(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.jobs import JobKind, job_detail
    from harvester.redact import REDACTED, redact_url
    from harvester.sources.pages import secret_columns

    detail = await job_detail(engine, JobKind(args.kind), args.id)
    if detail is None:
        raise InputError(f"no {args.kind} with id {args.id}; `harvester jobs list` shows ids")
    if detail.get("source_url"):
        detail["source_url"] = redact_url(detail["source_url"])
    raw = detail.get("raw")
    if isinstance(raw, dict):  # a URL list's api_key column, say: shown blanked, as logs do
        raw.update(dict.fromkeys(secret_columns(str(detail.get("provider")), raw), REDACTED))
    if args.json:
        print_json(detail)
        return 0
    for key, value in detail.items():
        say(f"{key:>18}: {_shown(value)}")
    return 0


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        import json

        # Not ASCII-escaped: say escapes what needs it, and 'café' stays café, not caf\\u00e9.
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return str(value)


async def _retry(args: argparse.Namespace, settings: Settings) -> int:
    _refuse_states_the_kind_lacks(args.kind, [args.state], RETRY_STATES)
    return await _retry_rows(args, settings)


@on_database(migrate=True)
async def _retry_rows(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.jobs import retry_jobs

    counts = await retry_jobs(
        engine,
        campaign_id=await _campaign_id(engine, args.campaign),
        kinds=_kinds(args),
        states=[args.state],
        reasons=args.reason or (),
        ids=args.id or (),
        dry_run=args.dry_run,
    )
    verb = "would queue again" if args.dry_run else "queued again"
    total = 0
    for kind, by_reason in counts.items():
        for reason, count in sorted(by_reason.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            say(f"{verb} {count:>7} {kind}s  reason {reason or '-'}")
            total += count
    say(f"{verb} {total} rows in all")
    if not total and not args.reason and not args.id:
        say("(only transient failures go by default: name codes with --reason to force)")
    return 0

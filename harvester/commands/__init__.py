"""Command groups of the command line, one module each, each exposing `register(subparsers)`.

`cli.py` parses argv and maps errors to exit codes; the groups only add their parsers and
handlers here, and get a (migrated) engine from `on_database`.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harvester.config import Settings
from harvester.errors import HarvesterError, InputError
from harvester.terminal import say

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
EngineHandler = Callable[[argparse.Namespace, Settings, "AsyncEngine"], Awaitable[int]]


def on_database(*, migrate: bool) -> Callable[[EngineHandler], Handler]:
    """A command that works on the database: it gets an engine, migrated unless told not."""

    def wrap(handler: EngineHandler) -> Handler:
        async def run(args: argparse.Namespace, settings: Settings) -> int:
            from harvester.db.migrate import upgrade
            from harvester.db.session import create_engine, require_database

            engine = create_engine(settings.database_url)
            try:
                await require_database(engine)
                if migrate:
                    await upgrade(engine)
                return await handler(args, settings, engine)
            finally:
                await engine.dispose()

        return run

    return wrap


def text_arg(text: str) -> str:
    """Text for the database (a name to look up, a state, a code) as typed, unless it holds
    a byte that is not UTF-8: Python reads one as a lone surrogate, which neither database
    takes, not even to compare with."""
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise argparse.ArgumentTypeError(
                f"not UTF-8 text (byte 0x{ord(char) & 0xFF:02x} at character {index + 1})"
            )
    return text


def campaign_name_arg(text: str) -> str:
    """A submit's campaign name, as typed: UTF-8 and not blank (no campaign ever had a blank
    name). Whether a new campaign may take it is `new_name_problem`'s to say, once the
    database has said it is new (`submitting`): a campaign kept from before whose name a new
    one may not have is added to by that name, as stored."""
    text = text_arg(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("a campaign name cannot be empty or only spaces")
    return text


def new_name_problem(text: str) -> str | None:
    """Why a new campaign cannot take this name as typed (refused, not cleaned: that would
    rename it), or None: every character printable (`terminal.shown` escapes the rest, so a
    name with ESC or an invisible one would never read as typed), no space at either end
    (`--campaign ' bx'` is told from `bx` by nothing an operator sees), within its column."""
    from harvester.db.models import CAMPAIGN_NAME_CHARS

    odd = next((i for i, char in enumerate(text) if not char.isprintable()), None)
    if odd is not None:
        return (
            f"cannot hold control or invisible characters "
            f"(U+{ord(text[odd]):04X} at character {odd + 1})"
        )
    if text != text.strip():
        return f"cannot begin or end with a space, got {text!r}"
    if len(text) > CAMPAIGN_NAME_CHARS:
        return f"is at most {CAMPAIGN_NAME_CHARS} characters, got {len(text)}"
    return None


def bbox_arg(text: str) -> tuple[float, float, float, float]:
    try:
        minlon, minlat, maxlon, maxlat = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--bbox wants MINLON,MINLAT,MAXLON,MAXLAT, got {text!r}"
        ) from None
    return minlon, minlat, maxlon, maxlat


def number_arg(
    low: float, high: float | None = None, *, open_low: bool = False, whole: bool = False
) -> Callable[[str], float]:
    """A finite number in its range (whole: an int): NaN, inf, a negative time or a count
    too big for what takes it would be taken and misbehave."""

    def show(bound: float) -> str:
        return str(int(bound)) if whole else f"{bound:g}"

    shown = f"{'>' if open_low else '>='} {show(low)}"
    if high is not None:
        shown += f" and <= {show(high)}"
    kind = "a whole number" if whole else "a number"

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = math.nan
        if not (
            (whole or math.isfinite(value))
            and (value > low if open_low else value >= low)
            and (high is None or value <= high)
        ):
            raise argparse.ArgumentTypeError(f"wants {kind} {shown}, got {text!r}")
        return value

    return parse


@asynccontextmanager
async def submitting(engine: AsyncEngine, campaign: str) -> AsyncIterator[str]:
    """A submit to the campaign of this name: a new one is refused a name it could not keep
    as typed before anything is made (one kept from before, made when such names were taken,
    is added to by its name), and a submit that fails leaves no campaign behind. It yields
    the submit's id, for `ensure_campaign` to mark a campaign it makes with: the undo deletes
    only a campaign still so marked, never one that existed or another submit added to since
    (two submits of one new campaign at once both find it missing)."""
    from harvester.db.campaigns import campaign_exists, finish_submit
    from harvester.db.deletion import undo_submit

    existed = await campaign_exists(engine, campaign)
    problem = None if existed else new_name_problem(campaign)
    if problem is not None:
        raise InputError(
            f"a new campaign's name {problem}; `harvester campaigns list` lists the campaigns"
        )
    submit_id = secrets.token_hex(16)
    try:
        yield submit_id
    except HarvesterError as exc:
        kept = await undo_submit(engine, campaign, submit_id, why=str(exc))
        if kept is not None:
            say(f"harvester: {kept}", file=sys.stderr)
        raise
    await finish_submit(engine, campaign, submit_id)


def print_json(value: Any) -> None:
    """JSON for scripts: dataclasses as objects, times in ISO 8601."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=_plain)
    sys.stdout.write("\n")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)

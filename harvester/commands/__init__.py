"""Command groups of the command line, one module each, each exposing `register(subparsers)`.

`cli.py` parses argv and maps errors to exit codes; the groups only add their parsers and
handlers here, and get a (migrated) engine from `on_database`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harvester.config import Settings
from harvester.errors import HarvesterError

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
    """A new campaign's name, kept as typed, so it is refused rather than cleaned (that would
    rename it): UTF-8, not blank, every character printable (`terminal.shown` escapes the rest,
    so a name with ESC or an invisible one would never read as typed), no space at either end
    (`--campaign ' bx'` is told from `bx` by nothing an operator sees), within its column.
    Names kept from before are looked up as stored (`text_arg`): this is for submits only."""
    from harvester.db.models import CAMPAIGN_NAME_CHARS

    text = text_arg(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("a campaign name cannot be empty or only spaces")
    odd = next((i for i, char in enumerate(text) if not char.isprintable()), None)
    if odd is not None:
        raise argparse.ArgumentTypeError(
            f"a campaign name cannot hold control or invisible characters "
            f"(U+{ord(text[odd]):04X} at character {odd + 1})"
        )
    if text != text.strip():
        raise argparse.ArgumentTypeError(
            f"a campaign name cannot begin or end with a space, got {text!r}"
        )
    if len(text) > CAMPAIGN_NAME_CHARS:
        raise argparse.ArgumentTypeError(
            f"a campaign name is at most {CAMPAIGN_NAME_CHARS} characters, got {len(text)}"
        )
    return text


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
async def undone_on_error(engine: AsyncEngine, campaign: str) -> AsyncIterator[None]:
    """A submit that fails leaves no campaign behind (one that existed before stays)."""
    from harvester.db.campaigns import campaign_exists
    from harvester.db.deletion import delete_campaign

    existed = await campaign_exists(engine, campaign)
    try:
        yield
    except HarvesterError:
        if not existed and await campaign_exists(engine, campaign):
            await delete_campaign(engine, campaign)
        raise


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

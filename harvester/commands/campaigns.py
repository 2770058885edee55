"""`harvester campaigns list|show|pause|resume|delete`: whole harvests, as operators run them."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from harvester.commands import on_database, print_json, text_arg
from harvester.config import Settings
from harvester.terminal import WIDTH, say

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from harvester.storage.removals import Removals


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    campaigns = commands.add_parser("campaigns", help="list, show, pause, resume, delete")
    group = campaigns.add_subparsers(dest="campaigns_command", required=True)

    listing = group.add_parser("list", help="every campaign, paused ones marked")
    listing.add_argument("--json", action="store_true", help="JSON for scripts, not a table")
    listing.set_defaults(handler=_list)

    show = group.add_parser("show", help="a campaign's settings, as submitted")
    show.add_argument("name", type=text_arg)
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.set_defaults(handler=_show)

    pause = group.add_parser("pause", help="daemons stop claiming its rows; nothing is cancelled")
    pause.add_argument("name", type=text_arg)
    pause.set_defaults(handler=_pause)

    resume = group.add_parser(
        "resume", help="daemons claim its rows again (rows failed by what paused it go again)"
    )
    resume.add_argument("name", type=text_arg)
    resume.set_defaults(handler=_resume)

    delete = group.add_parser(
        "delete", help="delete it with its rows; refused while a daemon holds any of them"
    )
    delete.add_argument("name", type=text_arg)
    delete.add_argument(
        "--files", action="store_true", help="also delete its stored images (default: keep)"
    )
    delete.set_defaults(handler=_delete)


@on_database(migrate=True)
async def _list(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.campaigns import list_campaigns

    campaigns = await list_campaigns(engine)
    if args.json:
        print_json({"campaigns": campaigns})
        return 0
    if not campaigns:
        say("no campaigns yet: submit one with `harvester submit ...`")
        return 0
    say(f"{'campaign':<30} {'provider':<10} {'created':<17} state")
    for c in campaigns:
        state = f"paused ({c.paused_reason})" if c.paused_at else "active"
        created = c.created_at.strftime("%Y-%m-%d %H:%M")
        say(f"{c.name:<30} {c.provider:<10} {created:<17} {state}", width=WIDTH)
    return 0


@on_database(migrate=True)
async def _show(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.campaigns import campaign_named

    campaign = await campaign_named(engine, args.name)
    tiling = await _tiling(engine, campaign.id) if campaign.provider == "mapillary" else None
    if args.json:
        print_json({**asdict(campaign), "tiling": tiling} if tiling else campaign)
        return 0
    say(f"campaign  {campaign.name} ({campaign.provider}), created {campaign.created_at}")
    if campaign.paused_at:
        why = f": {campaign.paused_message}" if campaign.paused_message else ""
        say(f"paused    {campaign.paused_at} ({campaign.paused_reason}){why}")
    for key, value in sorted(campaign.settings.items()):
        say(f"  {key:<22} {value}")
    if tiling:
        say(f"tiling    {tiling}")
    return 0


async def _tiling(engine: AsyncEngine, campaign_id: int) -> dict[str, Any] | None:
    """How the campaign's region was tiled (None when it has no region)."""
    from harvester.db.campaigns import task_results
    from harvester.sources.mapillary_submit import TILE
    from harvester.sources.mapillary_tiles import tiling_summary

    results = await task_results(engine, campaign_id, TILE)
    return tiling_summary(results) if results else None


@on_database(migrate=True)
async def _pause(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.campaigns import pause_campaign

    if await pause_campaign(engine, args.name):
        say(f"campaign {args.name!r} paused: daemons finish what they hold, claim no more")
    else:
        say(f"campaign {args.name!r} was paused already")
    return 0


@on_database(migrate=True)
async def _resume(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.campaigns import resume_campaign

    requeued = await resume_campaign(engine, args.name)
    again = ", ".join(f"{n} {reason}" for reason, n in requeued.items())
    say(f"campaign {args.name!r} resumed" + (f"; queued again: {again}" if again else ""))
    return 0


@on_database(migrate=True)
async def _delete(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from harvester.db.deletion import delete_campaign

    if not args.files:
        deleted = await delete_campaign(engine, args.name)
        kept = f"; its {len(deleted.paths)} stored files stay (--files deletes them)"
        say(f"campaign {args.name!r} deleted{kept}{_handed_over(deleted.handed_over)}")
        return 0
    return await _delete_with_files(args.name, settings, engine)


async def _delete_with_files(name: str, settings: Settings, engine: AsyncEngine) -> int:
    """Rows in one transaction, files after it from a list written before it commits; what
    an interrupted delete left is finished first (and is all there is to do if it was this)."""
    from harvester.db.campaigns import campaign_exists
    from harvester.db.deletion import delete_campaign
    from harvester.storage.open import open_storage
    from harvester.storage.removals import Removals

    storage = open_storage(settings)
    removals = Removals(storage)
    try:
        for campaign, removed in (await _remove_pending(removals, engine)).items():
            if not await campaign_exists(engine, campaign):
                say(
                    f"campaign {campaign!r}: its interrupted delete finished, "
                    f"{removed} files removed"
                )
                if campaign == name:
                    return 0
        deleted = await delete_campaign(
            engine, name, before_commit=lambda paths: _record(removals, name, paths)
        )
        removed = (await _remove_pending(removals, engine)).get(name, 0)
    finally:
        await storage.close()
    say(f"campaign {name!r} deleted, {removed} files removed{_handed_over(deleted.handed_over)}")
    return 0


async def _record(removals: Removals, name: str, paths: list[str]) -> None:
    from harvester.errors import InputError, StorageUnavailable

    # A local root holding none of its files is the wrong root (the demo's is not the default
    # `data`): the rows went, and their files stayed where no row or list names them.
    found = (removals.storage.local_path(path) for path in paths)
    if paths and not any(local is None or local.is_file() for local in found):
        raise InputError(
            f"none of the {len(paths)} stored images of campaign {name!r} is under the storage "
            f"root {removals.storage.location}: pass the --storage-root (HARVESTER_STORAGE_ROOT) "
            "the daemon wrote to, or delete without --files to keep them; nothing was deleted"
        )
    try:
        await removals.record(name, paths)
    except OSError as exc:
        raise StorageUnavailable(
            f"cannot write the list of files to remove in {removals.storage.location}: {exc}; "
            "nothing was deleted"
        ) from exc


async def _remove_pending(removals: Removals, engine: AsyncEngine) -> Counter[str]:
    """Work off every pending list: remove the files no row names any more, then the list."""
    from harvester.db.deletion import referenced_paths
    from harvester.errors import StorageUnavailable

    removed: Counter[str] = Counter()
    try:
        for removal in await removals.pending():
            named = await referenced_paths(engine, removal.paths)
            for path in removal.paths:
                if path not in named:
                    removed[removal.campaign] += await removals.storage.remove(path)
            await removals.done(removal)
    except OSError as exc:
        raise StorageUnavailable(
            f"cannot remove files from {removals.storage.location}: {exc}; "
            "run the delete again to finish"
        ) from exc
    return removed


def _handed_over(count: int) -> str:
    if not count:
        return ""
    return f"; {count} images other campaigns refer to stay, now theirs"

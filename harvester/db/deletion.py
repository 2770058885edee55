"""Deleting a campaign: its own rows go; rows another campaign refers to change hands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from harvester.db.campaigns import campaign_named
from harvester.db.clock import utcnow
from harvester.db.models import Campaign, Image, ImageHit, ImageState, Task
from harvester.db.session import read_connection, transaction
from harvester.errors import InputError

CHUNK = 500


class CampaignBusy(InputError):
    """A daemon holds rows of this campaign."""

    reason = "campaign_busy"


@dataclass(frozen=True)
class Deleted:
    paths: list[str]  # files of the deleted rows, relative to the storage root
    handed_over: int  # images kept because another campaign refers to them


async def delete_campaign(
    engine: AsyncEngine,
    name: str,
    *,
    before_commit: Callable[[list[str]], Awaitable[object]] | None = None,
) -> Deleted:
    """Delete a campaign with its tasks, hits and the images only it refers to, in one
    transaction. `before_commit` gets the deleted rows' file paths while the transaction is
    still open (so they can be written down before they are forgotten). Refused while any
    daemon holds one of its rows: stop or pause it and let the leases end first."""
    campaign = await campaign_named(engine, name)
    async with transaction(engine) as connection:
        return await _delete(connection, campaign.id, name, before_commit)


SUBMIT_FAILED = "submit_failed"  # the pause reason of a failed submit's campaign kept


async def undo_submit(engine: AsyncEngine, name: str, submit_id: str, why: str) -> str | None:
    """Delete the campaign a failed submit made, if it is still that submit's alone (see
    `campaigns._made_or_joined`): once another submit has added to it, what both added
    stays. The row is locked before it is looked at, so a submit joining meanwhile either
    is seen or waits and then makes the campaign anew. A campaign a daemon has begun to
    harvest (rows held or stored) is paused instead, so nothing more of it is fetched, and
    kept for its operator: the return says so, None when nothing is left behind."""
    async with transaction(engine) as connection:
        found = await connection.execute(
            select(Campaign.id)
            .where(Campaign.name == name, Campaign.creating_submit == submit_id)
            .with_for_update()
        )
        campaign_id = found.scalar()
        if campaign_id is None:
            return None
        begun = await _harvest_begun(connection, campaign_id)
        if not begun:
            await _delete(connection, campaign_id, name, None)
            return None
        await connection.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                paused_at=utcnow(),
                paused_reason=SUBMIT_FAILED,
                paused_message=why[:500],
                creating_submit=None,
            )
        )
    return (
        f"campaign {name!r} is kept, paused: a daemon had already {begun} of its images; "
        f"`harvester campaigns delete {name}` once they finish, or `harvester campaigns "
        f"resume {name}` to harvest what was queued"
    )


async def _harvest_begun(connection: AsyncConnection, campaign_id: int) -> str | None:
    """'taken 3' / 'stored 3' when daemons hold or have stored rows of the campaign."""
    now = utcnow()
    held = await connection.execute(
        select(func.count()).where(
            Image.campaign_id == campaign_id,
            Image.state == ImageState.RUNNING,
            Image.lease_expires_at > now,
        )
    )
    if count := held.scalar_one():
        return f"taken {count}"
    stored = await connection.execute(
        select(func.count()).where(Image.campaign_id == campaign_id, Image.path.is_not(None))
    )
    return f"stored {count}" if (count := stored.scalar_one()) else None


async def _delete(
    connection: AsyncConnection,
    campaign_id: int,
    name: str,
    before_commit: Callable[[list[str]], Awaitable[object]] | None,
) -> Deleted:
    await _refuse_if_held(connection, campaign_id, name)
    handed_over = await _hand_over_shared(connection, campaign_id)
    found = await connection.execute(
        select(Image.path).where(Image.campaign_id == campaign_id, Image.path.is_not(None))
    )
    paths = [path for (path,) in found if path]
    if before_commit is not None:
        await before_commit(paths)
    # Cascades to its tasks, its images and every hit of its queries.
    await connection.execute(delete(Campaign).where(Campaign.id == campaign_id))
    return Deleted(paths, handed_over)


async def _refuse_if_held(connection: AsyncConnection, campaign_id: int, name: str) -> None:
    now = utcnow()
    for model in (Task, Image):
        held = await connection.execute(
            select(func.count())
            .select_from(model)
            .where(
                model.campaign_id == campaign_id,
                model.state == ImageState.RUNNING,
                model.lease_expires_at > now,
            )
        )
        if count := held.scalar_one():
            raise CampaignBusy(
                f"campaign {name!r}: a daemon holds {count} of its {model.__tablename__}; "
                f"pause it (`harvester campaigns pause {name}`) and wait for them to finish"
            )


async def _hand_over_shared(connection: AsyncConnection, campaign_id: int) -> int:
    """Give the campaign's images that another campaign refers to (found them too, in
    image_hits, or has a duplicate row pointing at their bytes) to the lowest such campaign.

    Hits go first: an image handed over that way may be a duplicate pointing at another of
    ours, which the second statement then sees as referred to. Stored images are never
    duplicates themselves, so two steps reach every chain."""
    finder = (
        select(func.min(ImageHit.campaign_id))
        .where(ImageHit.image_id == Image.id, ImageHit.campaign_id != campaign_id)
        .correlate(Image)
        .scalar_subquery()
    )
    copy = aliased(Image)
    copier = (
        select(func.min(copy.campaign_id))
        .where(copy.duplicate_of == Image.id, copy.campaign_id != campaign_id)
        .correlate(Image)
        .scalar_subquery()
    )
    handed = 0
    for other in (finder, copier):
        result = await connection.execute(
            update(Image)
            .where(Image.campaign_id == campaign_id, other.is_not(None))
            .values(campaign_id=other)
        )
        handed += result.rowcount
    return handed


async def referenced_paths(engine: AsyncEngine, paths: Collection[str]) -> set[str]:
    """Those of the paths that some image row still names (its file must stay)."""
    wanted = sorted(set(paths))
    named: set[str] = set()
    async with read_connection(engine) as connection:
        for start in range(0, len(wanted), CHUNK):
            rows = await connection.execute(
                select(Image.path).where(Image.path.in_(wanted[start : start + CHUNK]))
            )
            named.update(path for (path,) in rows if path)
    return named

"""Campaigns: a named harvest and the settings its images are processed with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from harvester.db.clock import utcnow
from harvester.db.models import Campaign, Image, ImageState, Task
from harvester.db.queue import Queue
from harvester.db.session import insert_for, read_connection, transaction
from harvester.db.storable import json_value
from harvester.errors import InputError


async def ensure_campaign(
    engine: AsyncEngine,
    name: str,
    provider: str,
    settings: Mapping[str, Any],
    *,
    update_settings: bool = False,
    unchecked: frozenset[str] = frozenset(),
    submit_id: str | None = None,
) -> int:
    """Create the campaign, or return the existing one: re-submitting resumes, never forks.

    A re-submit whose settings differ is refused with the difference, unless `update_settings`
    (then the new settings replace the old). Keys in `unchecked` are inputs that may differ
    between submits of one campaign (a second URL list, "today" as the upload limit); the
    stored value of those is kept. `submit_id` names the submit (`commands.submitting`): the
    campaign it makes is marked as its own until another submit joins (`_made_or_joined`).
    """
    if not name.strip():
        raise InputError("a campaign needs a non-empty --campaign name")
    # Compared as stored, or a setting holding a lone surrogate would differ from itself.
    settings = json_value(settings)
    async with transaction(engine) as connection:
        made = _made_or_joined(connection, name, provider, settings, submit_id)
        row = (await connection.execute(made)).one()
        if row.provider != provider:
            raise InputError(
                f"campaign {name!r} already exists for provider {row.provider!r}; "
                f"choose another name for a {provider!r} campaign"
            )
        stored = dict(row.settings)
        changes = settings_changes(stored, settings, unchecked)
        if changes and not update_settings:
            raise InputError(
                f"campaign {name!r} exists with other settings ({'; '.join(changes)}); "
                "resubmit with --update to change them"
            )
        if changes:
            kept = {key: stored[key] for key in unchecked if key in stored}
            await connection.execute(
                update(Campaign).where(Campaign.id == row.id).values(settings={**settings, **kept})
            )
    return int(row.id)


def _made_or_joined(
    connection: AsyncConnection,
    name: str,
    provider: str,
    settings: Mapping[str, Any],
    submit_id: str | None,
) -> Any:
    """The campaign's row, inserted as this submit's, or the existing one, joined: another
    submit's mark (it is still making the campaign, or was killed doing so) is cleared, so
    that submit's undo (`deletion.undo_submit`) leaves what this one adds. One upsert, not a
    look then a write: on PostgreSQL one that meets an undo's delete waits for it and then
    inserts; on SQLite BEGIN IMMEDIATE orders them."""
    insert = insert_for(connection, Campaign).values(
        name=name,
        provider=provider,
        settings=settings,
        created_at=utcnow(),
        creating_submit=submit_id,
    )
    own = Campaign.creating_submit == insert.excluded.creating_submit
    return insert.on_conflict_do_update(
        index_elements=["name"],
        set_={"creating_submit": case((own, Campaign.creating_submit), else_=None)},
    ).returning(Campaign.id, Campaign.provider, Campaign.settings)


async def finish_submit(engine: AsyncEngine, name: str, submit_id: str) -> None:
    """The submit that made the campaign is done: no undo of it can come any more."""
    async with transaction(engine) as connection:
        await connection.execute(
            update(Campaign)
            .where(Campaign.name == name, Campaign.creating_submit == submit_id)
            .values(creating_submit=None)
        )


def settings_changes(
    stored: Mapping[str, Any], wanted: Mapping[str, Any], unchecked: frozenset[str] = frozenset()
) -> list[str]:
    """`key: old -> new` for every setting that differs, in key order."""
    keys = sorted((set(stored) | set(wanted)) - unchecked)
    return [
        f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}"
        for key in keys
        if stored.get(key) != wanted.get(key)
    ]


async def campaign_settings(engine: AsyncEngine) -> dict[int, dict[str, Any]]:
    async with read_connection(engine) as connection:
        rows = await connection.execute(select(Campaign.id, Campaign.settings))
        return {row.id: dict(row.settings) for row in rows}


async def campaign_id_of(engine: AsyncEngine, name: str) -> int:
    async with read_connection(engine) as connection:
        found = await connection.execute(select(Campaign.id).where(Campaign.name == name))
        campaign_id = found.scalar()
    if campaign_id is None:
        raise InputError(f"no campaign named {name!r}; `harvester status` lists them")
    return int(campaign_id)


async def campaign_names(engine: AsyncEngine) -> dict[int, str]:
    async with read_connection(engine) as connection:
        rows = await connection.execute(select(Campaign.id, Campaign.name))
        return {row.id: row.name for row in rows}


OPERATOR_PAUSE = "paused"


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    provider: str
    settings: dict[str, Any]
    created_at: datetime
    paused_at: datetime | None
    paused_reason: str | None
    paused_message: str | None


async def list_campaigns(engine: AsyncEngine) -> list[CampaignInfo]:
    async with read_connection(engine) as connection:
        rows = await connection.execute(_info().order_by(Campaign.name))
        return [_as_info(row) for row in rows]


async def campaign_exists(engine: AsyncEngine, name: str) -> bool:
    async with read_connection(engine) as connection:
        found = await connection.execute(select(Campaign.id).where(Campaign.name == name))
        return found.first() is not None


async def campaign_named(engine: AsyncEngine, name: str) -> CampaignInfo:
    async with read_connection(engine) as connection:
        row = (await connection.execute(_info().where(Campaign.name == name))).first()
    if row is None:
        raise InputError(f"no campaign named {name!r}; `harvester campaigns list` lists them")
    return _as_info(row)


async def task_results(engine: AsyncEngine, campaign_id: int, kind: str) -> list[dict[str, Any]]:
    """What a campaign's finished tasks of one kind recorded (how a region was tiled, say)."""
    async with read_connection(engine) as connection:
        rows = await connection.execute(
            select(Task.result).where(
                Task.campaign_id == campaign_id, Task.kind == kind, Task.result.is_not(None)
            )
        )
        return [dict(result) for (result,) in rows]


def _info() -> Any:
    return select(
        Campaign.id,
        Campaign.name,
        Campaign.provider,
        Campaign.settings,
        Campaign.created_at,
        Campaign.paused_at,
        Campaign.paused_reason,
        Campaign.paused_message,
    )


def _as_info(row: Any) -> CampaignInfo:
    return CampaignInfo(
        int(row.id),
        row.name,
        row.provider,
        dict(row.settings),
        row.created_at,
        row.paused_at,
        row.paused_reason,
        row.paused_message,
    )


async def pause_campaigns(
    engine: AsyncEngine,
    campaign_ids: Sequence[int],
    *,
    reason: str = OPERATOR_PAUSE,
    message: str | None = None,
) -> list[str]:
    """Stop daemons claiming these campaigns' rows (nothing is cancelled; rows in flight
    finish). Returns the names newly paused; a campaign paused already keeps its reason."""
    if not campaign_ids:
        return []
    async with transaction(engine) as connection:
        result = await connection.execute(
            update(Campaign)
            .where(Campaign.id.in_(campaign_ids), Campaign.paused_at.is_(None))
            .values(paused_at=utcnow(), paused_reason=reason, paused_message=message)
            .returning(Campaign.name)
        )
        return sorted(result.scalars().all())


async def pause_campaigns_sharing_key(
    engine: AsyncEngine, campaign_id: int, *, reason: str, message: str
) -> list[str]:
    """Pause every campaign that uses the same provider key as this one (the key or token
    is per provider): a key the API refused will be refused for each of them."""
    async with read_connection(engine) as connection:
        provider = (
            await connection.execute(select(Campaign.provider).where(Campaign.id == campaign_id))
        ).scalar_one_or_none()
        if provider is None:
            return []
        ids = (
            (await connection.execute(select(Campaign.id).where(Campaign.provider == provider)))
            .scalars()
            .all()
        )
    return await pause_campaigns(engine, ids, reason=reason, message=message)


@dataclass(frozen=True)
class Blocked:
    """A paused campaign with work it cannot do until someone acts."""

    name: str
    reason: str
    message: str | None


async def blocked_campaigns(engine: AsyncEngine) -> list[Blocked]:
    """Paused campaigns with rows waiting, or rows failed for the reason they were paused."""
    blocked = []
    async with read_connection(engine) as connection:
        paused = await connection.execute(
            select(Campaign.id, Campaign.name, Campaign.paused_reason, Campaign.paused_message)
            .where(Campaign.paused_at.is_not(None))
            .order_by(Campaign.name)
        )
        for campaign in paused.all():
            for model in (Task, Image):
                waiting = or_(
                    model.state == ImageState.QUEUED,
                    and_(model.state == ImageState.FAILED, model.reason == campaign.paused_reason),
                )
                found = await connection.execute(
                    select(model.id).where(model.campaign_id == campaign.id, waiting).limit(1)
                )
                if found.first() is not None:
                    reason = campaign.paused_reason or OPERATOR_PAUSE
                    blocked.append(Blocked(campaign.name, reason, campaign.paused_message))
                    break
    return blocked


async def pause_campaign(engine: AsyncEngine, name: str, message: str | None = None) -> bool:
    """An operator's pause; False if the campaign was paused already."""
    campaign = await campaign_named(engine, name)
    return bool(await pause_campaigns(engine, [campaign.id], message=message))


async def resume_campaign(engine: AsyncEngine, name: str) -> Counter[str | None]:
    """Let daemons claim its rows again. Rows that failed because of what paused it (a
    rejected key) go again too; returns their count by reason code."""
    campaign = await campaign_named(engine, name)
    async with transaction(engine) as connection:
        await connection.execute(
            update(Campaign)
            .where(Campaign.id == campaign.id)
            .values(paused_at=None, paused_reason=None, paused_message=None)
        )
    requeued: Counter[str | None] = Counter()
    if campaign.paused_reason and campaign.paused_reason != OPERATOR_PAUSE:
        for model in (Task, Image):
            requeued += await Queue(engine, model).requeue(
                campaign_id=campaign.id, in_states=["failed"], reasons=[campaign.paused_reason]
            )
    return requeued

"""Jobs of a campaign the daemon does not know yet share one read of the campaigns' settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import ensure_campaign
from harvester.errors import DatabaseUnavailable
from harvester.worker import context
from harvester.worker.context import open_context


async def test_jobs_of_a_new_campaign_share_one_settings_read_and_a_failed_one_is_retried(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    quick_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
):
    campaign = await ensure_campaign(sqlite_engine, "c1", "urls", {"max_side": 800})
    reads: list[int] = []
    real = context.campaign_settings

    async def counted(engine: AsyncEngine) -> Any:
        reads.append(1)
        await asyncio.sleep(0.01)  # others ask while it runs
        if len(reads) == 1:
            raise DatabaseUnavailable("down for a moment")
        return await real(engine)

    monkeypatch.setattr(context, "campaign_settings", counted)
    async with open_context(quick_settings(sqlite_url, processes=1), sqlite_engine) as ctx:
        failed = await asyncio.gather(
            *(ctx.campaign(campaign) for _ in range(8)), return_exceptions=True
        )
        assert len(reads) == 1 and all(isinstance(f, DatabaseUnavailable) for f in failed)
        settings = await asyncio.gather(*(ctx.campaign(campaign) for _ in range(8)))
        assert len(reads) == 2 and all(s["max_side"] == 800 for s in settings)
        await ctx.campaign(campaign)  # known now: no read
        assert len(reads) == 2


async def test_a_campaign_made_after_the_shared_read_began_is_read_again_not_left_unknown(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    quick_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
):
    first = await ensure_campaign(sqlite_engine, "c1", "urls", {"max_side": 800})
    made, release = asyncio.Event(), asyncio.Event()
    real = context.campaign_settings
    later: list[int] = []

    async def read_then_a_campaign_is_made(engine: AsyncEngine) -> Any:
        found = await real(engine)
        if not later:  # the first read has its rows; now an operator submits another campaign
            later.append(await ensure_campaign(engine, "c2", "urls", {"max_side": 640}))
            made.set()
            await release.wait()
        return found

    monkeypatch.setattr(context, "campaign_settings", read_then_a_campaign_is_made)
    async with open_context(quick_settings(sqlite_url, processes=1), sqlite_engine) as ctx:
        asked_first = asyncio.ensure_future(ctx.campaign(first))
        await made.wait()
        asked_later = asyncio.ensure_future(ctx.campaign(later[0]))  # joins the read under way
        await asyncio.sleep(0)
        release.set()
        assert (await asked_first)["max_side"] == 800
        assert (await asked_later).get("max_side") == 640

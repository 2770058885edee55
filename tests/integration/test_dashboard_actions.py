"""The dashboard's buttons: absent without a token; with one, they act only for whoever types
it, and the page never contains it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from defaults import MAX_ATTEMPTS
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import list_campaigns
from harvester.db.models import Image
from harvester.sources.urls import UrlCampaign, submit_urls
from harvester.web.dashboard import add_dashboard_routes

TOKEN = "open-sesame-4f9a1c"


async def _serve(engine: AsyncEngine, token: SecretStr | None) -> tuple[web.AppRunner, str]:
    app = web.Application()
    add_dashboard_routes(app, engine, 120.0, token=token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def campaign(sqlite_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    listing = tmp_path / "list.csv"
    listing.write_text("url,id\nhttp://127.0.0.1:9/a.jpg,a\nhttp://127.0.0.1:9/b.jpg,b\n")
    await submit_urls(sqlite_engine, UrlCampaign("harbour", listing), max_attempts=MAX_ATTEMPTS)
    async with sqlite_engine.begin() as connection:  # one transient failure, one permanent
        await connection.execute(
            update(Image).values(state="failed", reason="timeout", retryable=True)
            .where(Image.provider_id.like("%:a"))
        )  # fmt: skip
        await connection.execute(
            update(Image).values(state="failed", reason="http_404", retryable=False)
            .where(Image.provider_id.like("%:b"))
        )  # fmt: skip
    yield sqlite_engine


async def _paused(engine: AsyncEngine) -> bool:
    return bool((await list_campaigns(engine))[0].paused_at)


async def test_without_a_token_the_dashboard_is_read_only(campaign: AsyncEngine):
    runner, base = await _serve(campaign, SecretStr(""))  # an empty compose variable
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as response:
                page = await response.text()
            async with http.post(base + "/actions", data={"action": "pause",
                                 "campaign": "harbour", "token": ""}) as response:  # fmt: skip
                refused = response.status
    finally:
        await runner.cleanup()
    assert "harbour" in page and "read-only" in page and "<form" not in page
    assert refused in (404, 405) and not await _paused(campaign)


async def test_buttons_act_only_with_the_token_which_the_page_never_shows(
    campaign: AsyncEngine,
):
    runner, base = await _serve(campaign, SecretStr(TOKEN))
    try:
        async with aiohttp.ClientSession() as http:

            async def act(action: str, token: str) -> tuple[int, str]:
                form = {"action": action, "campaign": "harbour", "token": token}
                async with http.post(base + "/actions", data=form) as response:
                    return response.status, await response.text()

            async with http.get(base + "/") as response:
                page = await response.text()
            wrong = await act("pause", "guess")
            assert not await _paused(campaign)
            paused_status, paused_page = await act("pause", TOKEN)
            assert await _paused(campaign)
            _, resumed_page = await act("resume", TOKEN)
            assert not await _paused(campaign)
            _, retried_page = await act("retry", TOKEN)
    finally:
        await runner.cleanup()
    assert "<form" in page and "name=token" in page and TOKEN not in page
    assert wrong[0] == 403
    assert paused_status == 200 and "paused harbour" in paused_page  # after the redirect
    assert "resume</button>" not in resumed_page and "resumed harbour" in resumed_page
    assert "queued again 1 transient failures (1 timeout)" in retried_page
    assert TOKEN not in paused_page + resumed_page + retried_page

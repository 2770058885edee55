"""The dashboard's buttons: pause, resume, retry a campaign, for whoever types the token.

Without a token configured none of this exists and the dashboard is read-only. The token is
never written into the page: the operator types it into the form, and it is compared in
constant time.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.campaigns import campaign_named, pause_campaign, resume_campaign
from harvester.db.jobs import retry_jobs
from harvester.errors import InputError

ACTIONS = ("pause", "resume", "retry")
Action = Callable[[AsyncEngine, str], Awaitable[str]]


def usable(token: SecretStr | None) -> SecretStr | None:
    """An empty token (an unset compose variable) means read-only, not an empty password."""
    return token if token is not None and token.get_secret_value() else None


async def _pause(engine: AsyncEngine, name: str) -> str:
    paused = await pause_campaign(engine, name, message="paused from the dashboard")
    return f"paused {name}" if paused else f"{name} was paused already"


async def _resume(engine: AsyncEngine, name: str) -> str:
    requeued = await resume_campaign(engine, name)
    again = sum(requeued.values())
    return f"resumed {name}" + (
        f", {again} rows blocked by its pause queued again" if again else ""
    )


async def _retry(engine: AsyncEngine, name: str) -> str:
    campaign = await campaign_named(engine, name)
    by_reason: Counter[str | None] = Counter()
    for counts in (await retry_jobs(engine, campaign_id=campaign.id)).values():
        by_reason.update(counts)
    listed = ", ".join(f"{n} {reason or 'no reason'}" for reason, n in by_reason.most_common())
    return f"{name}: queued again {sum(by_reason.values())} transient failures" + (
        f" ({listed})" if listed else ""
    )


HANDLERS: dict[str, Action] = {"pause": _pause, "resume": _resume, "retry": _retry}


def add_action_routes(app: web.Application, engine: AsyncEngine, token: SecretStr) -> None:
    expected = token.get_secret_value().encode()

    async def act(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("token", "")).encode()
        if not hmac.compare_digest(given, expected):
            raise web.HTTPForbidden(text="wrong or missing action token\n")
        action, name = str(form.get("action", "")), str(form.get("campaign", ""))
        if action not in HANDLERS:
            raise web.HTTPBadRequest(text=f"unknown action {action!r}\n")
        try:
            done = await HANDLERS[action](engine, name)
        except InputError as exc:
            done = str(exc)
        raise web.HTTPSeeOther(location="/?" + urlencode({"done": done}))

    app.router.add_post("/actions", act)

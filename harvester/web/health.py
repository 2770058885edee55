"""/livez and /readyz: is the event loop answering, and does the database answer in time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from harvester.db.session import database_problem
from harvester.log import redactor

READY_TIMEOUT_S = 2.0

Snapshot = Callable[[], dict[str, Any]]


def add_health_routes(app: web.Application, engine: AsyncEngine, snapshot: Snapshot) -> None:
    """`engine` should be the health check's own (one connection), so a busy pool is not
    mistaken for a database that does not answer."""

    async def livez(_request: web.Request) -> web.Response:
        # Answering at all is the proof: this handler runs on the daemon's event loop.
        return web.json_response({"status": "ok", **snapshot()})

    async def readyz(_request: web.Request) -> web.Response:
        problem = await database_problem(engine, READY_TIMEOUT_S)
        if problem is not None:
            reason = redactor.redact(problem)[:300]
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        return web.json_response({"status": "ok"})

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", readyz)

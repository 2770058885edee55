"""/healthz for orchestrators and /metrics (Prometheus text) for dashboards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

Snapshot = Callable[[], dict[str, Any]]


def create_app(snapshot: Snapshot) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **snapshot()})

    async def metrics(_request: web.Request) -> web.Response:
        lines = []
        for name, value in snapshot().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                lines.append(f"# TYPE harvester_{name} gauge")
                lines.append(f"harvester_{name} {value}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(snapshot: Snapshot, bind: str) -> web.AppRunner:
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--http wants HOST:PORT, got {bind!r}")
    runner = web.AppRunner(create_app(snapshot), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    return runner

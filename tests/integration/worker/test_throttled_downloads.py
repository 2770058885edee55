"""A CDN that throttles (429 with a long Retry-After) defers an image, never fails it: a
throttled try is the server asking for time, not one of the row's max_attempts."""

from __future__ import annotations

from collections import Counter

from aiohttp import web
from local_server import serving
from worker_harness import Harvest

from harvester.worker.daemon import run_daemon

THROTTLES = 4  # more than max_attempts: before, the third 429 failed the image


async def test_a_cdn_throttling_past_max_attempts_defers_the_image_until_it_is_stored(
    harvest: Harvest,
) -> None:
    rows = [r for r in harvest.rows(12) if r["expected"] == "stored"][:2]
    asked: Counter[str] = Counter()

    async def cdn(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asked[name] += 1
        if asked[name] <= THROTTLES:
            return web.Response(status=429, headers={"Retry-After": "120"})
        raise web.HTTPFound(next(r["url"] for r in rows if r["id"] == name))

    app = web.Application()
    app.router.add_get("/throttled/{name}", cdn)
    async with serving(app) as base:
        throttled = [{"url": f"{base}/throttled/{r['id']}", "id": r["id"]} for r in rows]
        await harvest.submit(throttled, "throttled", max_attempts=3)
        # Retry-After capped to milliseconds: the queue's wait, not the test's, is the point.
        settings = harvest.settings(max_attempts=3, max_retry_after_seconds=0.01)
        await run_daemon(settings, until_idle=True)

    images = await harvest.images()
    assert [(i.state, i.reason) for i in images] == [("stored", None)] * len(rows)
    assert all(i.throttles == THROTTLES and i.attempts == 1 for i in images)
    assert set(asked.values()) == {THROTTLES + 1}

"""Fault injection and per-key rate enforcement, as one aiohttp middleware.

Every API or CDN request is counted, then may be delayed, refused (429 with
Retry-After, 5xx, Flickr's code 105), cut off (connection reset) or truncated
(Content-Length promises more than is sent). Decisions come from a seeded
generator, so a single client sees the same faults run after run.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from harvester.emulator import flickr_api
from harvester.emulator.config import API, CDN, Faults
from harvester.emulator.stats import Stats, key_label

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """What a request is, for accounting: scope, service, endpoint and caller's key."""

    scope: str
    service: str  # "flickr", "mapillary" or "cdn"
    endpoint: str
    key: str | None


def classify(request: web.Request) -> Route | None:
    """None for the emulator's own admin endpoints, which are never faulted."""
    path = request.path
    if path.startswith("/services/rest"):
        method = request.query.get("method", "")
        return Route(API, "flickr", method or "flickr.unknown", request.query.get("api_key"))
    if path.startswith("/mapillary"):
        return Route(API, "mapillary", _mapillary_endpoint(path), mapillary_token(request))
    if path.startswith("/cdn/"):
        parts = path.split("/")
        return Route(CDN, "cdn", f"cdn.{parts[2] if len(parts) > 2 else ''}", None)
    return None


def _mapillary_endpoint(path: str) -> str:
    rest = path[len("/mapillary") :].strip("/")
    if rest in ("images", "image_ids"):
        return f"mapillary.{rest}"
    return "mapillary.ids" if not rest else "mapillary.entity"


def mapillary_token(request: web.Request) -> str | None:
    """`Authorization: OAuth <token>` (or Bearer), else the `access_token` parameter."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("oauth", "bearer") and token.strip():
        return token.strip()
    return request.query.get("access_token") or None


class TokenBuckets:
    """Per-key request rate enforcement: one second of burst, then `rate` per second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """None if allowed, else the seconds until the next request would be."""
        now = self._clock()
        tokens, last = self._state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now)
            return None
        self._state[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


class FaultInjector:
    """Draws one fault decision per request from a per-scope seeded generator."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rngs = {API: random.Random(seed * 101 + 1), CDN: random.Random(seed * 101 + 2)}

    def decide(self, scope: str) -> str | None:
        f = self.faults
        if scope not in f.scope:
            return None
        u = self._rngs[scope].random()
        for name, rate in (
            ("429", f.rate_429),
            ("5xx", f.error_5xx_rate),
            ("reset", f.reset_rate),
            ("truncate", f.truncate_rate),
        ):
            if u < rate:
                return name
            u -= rate
        return None

    def coin(self, scope: str) -> float:
        return self._rngs[scope].random()


def too_many(retry_after: float) -> web.Response:
    """429 with Retry-After in whole seconds (the header has no fractions); 0 is allowed."""
    seconds = max(0, math.ceil(retry_after))
    return web.Response(
        status=429,
        headers={"Retry-After": str(seconds)},
        text=json.dumps({"error": "rate limit exceeded", "retry_after": seconds}),
        content_type="application/json",
    )


async def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset before any byte of the answer."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # Nothing may be written any more; cancelling the handler makes aiohttp drop it quietly.
    raise asyncio.CancelledError


async def send_truncated(
    request: web.Request, resp: web.Response, coin: float
) -> web.StreamResponse:
    """Headers promising the whole body, a part of it, then the connection closes."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers=resp.headers)
    out.content_length = len(body) + (0 if body else 1024)
    await out.prepare(request)
    await out.write(body[: int(len(body) * (0.2 + 0.6 * coin))])
    if request.transport is not None:
        request.transport.close()
    return out


@dataclass
class Enforcer:
    """Per-service limiters (None: unlimited)."""

    flickr: TokenBuckets | None = None
    mapillary: TokenBuckets | None = None

    def check(self, route: Route) -> float | None:
        buckets = {"flickr": self.flickr, "mapillary": self.mapillary}.get(route.service)
        if buckets is None:
            return None
        return buckets.take(key_label(route.key))


def middleware(stats: Stats, injector: FaultInjector, enforcer: Enforcer) -> Middleware:
    """The request pipeline every emulated endpoint goes through."""

    @web.middleware
    async def emulate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = classify(request)
        if route is None:
            return await handler(request)
        label = key_label(route.key)
        stats.hit(label, route.endpoint)
        faults = injector.faults
        if faults.latency_ms > 0 and route.scope in faults.scope:
            await asyncio.sleep(faults.latency_ms / 1000)
        wait = enforcer.check(route)
        if wait is not None:
            stats.note(label, route.endpoint, "status_429")
            return too_many(max(1.0, wait))
        decision = injector.decide(route.scope)
        if decision == "429":
            stats.note(label, route.endpoint, "status_429")
            return too_many(faults.retry_after_s)
        if decision == "5xx":
            return _server_error(request, stats, injector, route, label)
        if decision == "reset":
            stats.note(label, route.endpoint, "resets")
            await reset_connection(request)
        resp = await handler(request)
        if decision == "truncate" and isinstance(resp, web.Response):
            stats.note(label, route.endpoint, "truncated")
            return await send_truncated(request, resp, injector.coin(route.scope))
        return resp

    return emulate


def _server_error(
    request: web.Request, stats: Stats, injector: FaultInjector, route: Route, label: str
) -> web.Response:
    coin = injector.coin(route.scope)
    if route.service == "flickr" and coin < 0.5:
        # Flickr reports an outage as HTTP 200 with stat=fail, code 105.
        stats.note(label, route.endpoint, "flickr_105")
        return flickr_api.render(
            request.query, flickr_api.fail_payload(105, "Service currently unavailable")
        )
    stats.note(label, route.endpoint, "status_5xx")
    status = (500, 502, 503)[int(coin * 3) % 3]
    return web.Response(status=status, text=f"{status} upstream error", content_type="text/plain")

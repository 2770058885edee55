"""Fault injection, outages and per-key rate enforcement, as one aiohttp middleware.

Every API or CDN request is counted, then may be delayed, refused (429 with
Retry-After, 5xx, Flickr's code 105, a Graph rate-limit code in a 4xx body), cut off
(connection reset), truncated (Content-Length promises more than is sent, then the
connection closes), stalled (the same short body, the connection then held open), partial
(a 206 with part of the body, no Range asked for), a gzip stream cut short or with a
wrong CRC (its Content-Length true), or an HTML page in the API's place. Random
decisions come from a seeded generator, so a single client sees the same faults run
after run; outages follow the emulator's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import math
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

from aiohttp import web
from aiohttp.typedefs import Middleware

from harvester.emulator import flickr_api
from harvester.emulator.clock import EmulatorClock
from harvester.emulator.config import API, CDN, Faults, Outage, Warts
from harvester.emulator.stats import OUTCOME_KEY, Counter, Stats, key_label

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

    def decide(self, scope: str, service: str = "") -> str | None:
        f = self.faults
        if scope not in f.scope:
            return None
        u = self._rngs[scope].random()
        body_rate = f.body_rate_limit_rate if service == "mapillary" else 0.0
        for name, rate in (
            ("429", f.rate_429),
            ("body_rate_limit", body_rate),
            ("5xx", f.error_5xx_rate),
            ("reset", f.reset_rate),
            ("truncate", f.truncate_rate),
            ("stall", f.stall_rate),
            ("partial", f.partial_rate),
            ("html_page", f.html_page_rate if scope == API else 0.0),
            ("bad_gzip", f.bad_gzip_rate),
        ):
            if u < rate:
                return name
            u -= rate
        return None

    def coin(self, scope: str) -> float:
        return self._rngs[scope].random()


def too_many(retry_after: float, *, html: bool = False, now: float | None = None) -> web.Response:
    """429 with Retry-After in whole seconds (the header has no fractions); 0 is allowed.
    Given `now` (unix seconds), the same wait as an HTTP-date, the header's other form.

    Flickr's is an HTML page (`html`), whatever format the call asked for.
    """
    seconds = max(0, math.ceil(retry_after))
    when = str(seconds) if now is None else formatdate(math.ceil(now) + seconds, usegmt=True)
    headers = {"Retry-After": when}
    if html:
        return web.Response(status=429, headers=headers, text=_HTML_429, content_type="text/html")
    return web.Response(
        status=429,
        headers=headers,
        text=json.dumps({"error": "rate limit exceeded", "retry_after": seconds}),
        content_type="application/json",
    )


_HTML_429 = (
    "<!DOCTYPE html>\n<html><head><title>Flickr: Too Many Requests</title></head><body>"
    "<h1>Too Many Requests</h1><p>You have made too many requests. Please try again "
    "later.</p></body></html>\n"
)
FLICKR_SORRY = "Sorry, the Flickr API service is not currently available."
_HTML_503 = (
    "<!DOCTYPE html>\n<html><head><title>Flickr: Service Unavailable</title></head><body>"
    "<h1>Flickr is having a massage</h1><p>Please try again soon.</p></body></html>\n"
)
# What Graph says with its throttling codes; any other code says the last.
GRAPH_LIMIT_MESSAGES = {
    4: "Application request limit reached",
    341: "Application limit reached",
    368: "Temporarily blocked for policies violations",
}
GRAPH_LIMIT_MESSAGE = "Calls have exceeded the rate limit"


def graph_body_error(
    status: int, code: int, message: str, kind: str, *, transient: bool = False
) -> web.Response:
    """A Graph-style error: the meaning is in the body's code, the status only says 4xx/5xx."""
    error: dict[str, object] = {"message": message, "type": kind, "code": code}
    if transient:
        error["is_transient"] = True
    body = {"error": {**error, "fbtrace_id": "emulator"}}
    return web.json_response(body, status=status)


def graph_rate_limited(coin: float, faults: Faults) -> web.Response:
    """A Graph rate limit, one of `faults.body_rate_limit_codes` by the coin, sent as a 400
    or a 403 (half each), as Graph APIs do."""
    codes = faults.body_rate_limit_codes
    drawn = int(coin * 2 * len(codes))
    code = codes[drawn % len(codes)]
    status = 403 if drawn >= len(codes) else 400
    message = GRAPH_LIMIT_MESSAGES.get(code, GRAPH_LIMIT_MESSAGE)
    transient = faults.body_rate_limit_transient
    return graph_body_error(status, code, message, "OAuthException", transient=transient)


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
    out = await _send_part(request, resp, coin)
    if request.transport is not None:
        request.transport.close()
    return out


async def send_stalled(request: web.Request, resp: web.Response, coin: float) -> None:
    """Headers promising the whole body, a part of it, then silence on an open connection
    (no FIN) until the client hangs up, as CDN edges do: the client's own timers must end
    it. Held without limit, so no client is spared by an idle timeout of the server's."""
    await _send_part(request, resp, coin)
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
        await asyncio.sleep(_HANG_UP_POLL_S)
    # Nothing may be written any more; cancelling the handler makes aiohttp drop it quietly.
    raise asyncio.CancelledError


# How often a held connection looks whether its client hung up: a poll (ASYNC110) because
# aiohttp gives a handler no event for its connection closing (but handler_cancellation,
# which would change how every other answer ends too).
_HANG_UP_POLL_S = 0.05


async def _send_part(request: web.Request, resp: web.Response, coin: float) -> web.StreamResponse:
    """Sends the head of ``resp`` with its whole length declared, and 20-80% of its body."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    out = web.StreamResponse(status=resp.status, headers=resp.headers)
    out.content_length = len(body) + (0 if body else 1024)
    await out.prepare(request)
    await out.write(body[: int(len(body) * (0.2 + 0.6 * coin))])
    return out


def send_partial(resp: web.Response, coin: float) -> web.Response:
    """A 206 with the first part of the body, its Content-Range true to what is sent."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    part = body[: max(1, int(len(body) * (0.2 + 0.6 * coin)))]
    headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
    headers["Content-Range"] = f"bytes 0-{len(part) - 1}/{len(body)}"
    return web.Response(status=206, body=part, headers=headers)


def send_bad_gzip(resp: web.Response, coin: float) -> web.Response:
    """The body gzipped, then cut short anywhere past the gzip header (half the coin's
    range) or with its CRC trailer wrong, under a Content-Length true to what is sent."""
    body = resp.body if isinstance(resp.body, bytes) else b""
    stream = gzip.compress(body, mtime=0)
    if coin < 0.5:
        stream = stream[: 10 + int((len(stream) - 10) * coin * 2)]
    else:
        stream = stream[:-8] + bytes([stream[-8] ^ 0xFF]) + stream[-7:]
    drop = ("content-length", "content-encoding")
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in drop}
    headers["Content-Encoding"] = "gzip"
    return web.Response(status=resp.status, body=stream, headers=headers)


class OutageSchedule:
    """Which services are down now: windows counted from each service's first request."""

    def __init__(self, outages: tuple[Outage, ...], clock: EmulatorClock) -> None:
        self.outages = outages
        self.clock = clock
        self._first: dict[str, float] = {}

    def down(self, service: str) -> bool:
        if not self.outages:
            return False
        now = self.clock.now()
        since = now - self._first.setdefault(service, now)
        return any(
            o.service == service and o.start_s <= since < o.start_s + o.duration_s
            for o in self.outages
        )


_HTML_PORTAL = (
    "<!DOCTYPE html>\n<html><head><title>Network login</title></head><body>"
    "<p>Please sign in to continue.</p></body></html>\n"
)


def flickr_down(request: web.Request, codes: tuple[int, ...], coin: float) -> web.Response:
    """Flickr's stat=fail for "down", one of `codes` by the coin: 105 (documented) as an
    HTTP 200, 201 as an HTTP 400 and 0 as a 200, as clients meet them."""
    code = codes[int(coin * len(codes)) % len(codes)]
    message = "Service currently unavailable" if code == 105 else FLICKR_SORRY
    response = flickr_api.render(request.query, flickr_api.fail_payload(code, message))
    if code == 201:
        response.set_status(400)
    return response


def outage_answer(
    request: web.Request, service: str, coin: float, codes: tuple[int, ...] = (105,)
) -> web.Response:
    """What a service says while it is down."""
    if service == "flickr":
        if coin < 0.5:
            return flickr_down(request, codes, coin * 2)
        return web.Response(status=503, text=_HTML_503, content_type="text/html")
    if service == "mapillary":
        status = 500 if coin < 0.5 else 503
        return graph_body_error(status, 2, "Service temporarily unavailable", "OAuthException")
    return web.Response(status=503, text="503 Service Unavailable", content_type="text/plain")


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


async def delay(faults: Faults, counter: Counter, arrivals: asyncio.Condition) -> None:
    """Wait `latency_ms`, or (given `overlap`) until the request's endpoint has had that
    many requests in flight at once; each arrival wakes the waiters to look again."""
    seconds = faults.latency_ms / 1000
    if not faults.overlap:
        await asyncio.sleep(seconds)
        return
    async with arrivals:
        arrivals.notify_all()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await arrivals.wait_for(lambda: counter.max_in_flight >= faults.overlap)


def middleware(  # noqa: C901 - one request pipeline, read top to bottom
    stats: Stats,
    injector: FaultInjector,
    enforcer: Enforcer,
    warts: Warts,
    outages: OutageSchedule,
) -> Middleware:
    """The request pipeline every emulated endpoint goes through."""

    def refused(route: Route, retry_after: float) -> web.Response:
        if route.service == "mapillary" and warts.mapillary_limit_in_body:
            return graph_body_error(
                400, 613, "Calls to this api have exceeded the rate limit", "OAuthException"
            )
        now = outages.clock.now() if injector.faults.retry_after_date else None
        html = route.service == "flickr" and warts.flickr_429_html
        return too_many(retry_after, html=html, now=now)

    def instead(
        decision: str | None, request: web.Request, route: Route, label: str
    ) -> web.Response | None:
        """The answer a fault sends in the handler's place; None to call the handler."""
        if decision == "429":
            stats.note(label, route.endpoint, "status_429")
            return refused(route, injector.faults.retry_after_s)
        if decision == "body_rate_limit":
            stats.note(label, route.endpoint, "body_rate_limit")
            return graph_rate_limited(injector.coin(route.scope), injector.faults)
        if decision == "html_page":
            stats.note(label, route.endpoint, "html_page")
            return web.Response(status=200, text=_HTML_PORTAL, content_type="text/html")
        if decision == "5xx":
            codes = warts.flickr_down_codes
            return _server_error(request, stats, injector, route, label, codes)
        return None

    arrivals = asyncio.Condition()

    @web.middleware
    async def emulate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = classify(request)
        if route is None:
            return await handler(request)
        label = key_label(route.key)
        stats.hit(label, route.endpoint)
        if route.service == "mapillary" and "access_token" in request.query:
            stats.note(label, route.endpoint, "token_in_url")
        with stats.flying(label, route.endpoint) as counter:
            return await serve(request, handler, route, label, counter)

    async def serve(
        request: web.Request, handler: Handler, route: Route, label: str, counter: Counter
    ) -> web.StreamResponse:
        faults = injector.faults
        if faults.latency_ms > 0 and route.scope in faults.scope:
            await delay(faults, counter, arrivals)
        if outages.down(route.service):
            stats.note(label, route.endpoint, "outage")
            coin = injector.coin(route.scope)
            return outage_answer(request, route.service, coin, warts.flickr_down_codes)
        wait = enforcer.check(route)
        if wait is not None:
            stats.note(label, route.endpoint, "status_429")
            return refused(route, max(1.0, wait))
        decision = injector.decide(route.scope, route.service)
        answer = instead(decision, request, route, label)
        if answer is not None:
            return answer
        if decision == "reset":
            stats.note(label, route.endpoint, "resets")
            await reset_connection(request)
        resp = await handler(request)
        outcome = request.get(OUTCOME_KEY)
        if outcome is not None:
            stats.note(label, route.endpoint, outcome)
        if decision == "truncate" and isinstance(resp, web.Response):
            stats.note(label, route.endpoint, "truncated")
            return await send_truncated(request, resp, injector.coin(route.scope))
        if decision == "stall" and isinstance(resp, web.Response):
            stats.note(label, route.endpoint, "stalled")
            await send_stalled(request, resp, injector.coin(route.scope))  # ends by raising
        if decision == "bad_gzip" and isinstance(resp, web.Response):
            stats.note(label, route.endpoint, "bad_gzip")
            return send_bad_gzip(resp, injector.coin(route.scope))
        if decision == "partial" and isinstance(resp, web.Response) and resp.status == 200:
            stats.note(label, route.endpoint, "partial")
            return send_partial(resp, injector.coin(route.scope))
        return resp

    return emulate


def _server_error(
    request: web.Request,
    stats: Stats,
    injector: FaultInjector,
    route: Route,
    label: str,
    codes: tuple[int, ...] = (105,),
) -> web.Response:
    coin = injector.coin(route.scope)
    if route.service == "flickr" and coin < 0.5:
        # Flickr reports an outage as stat=fail, code 105 (or 201, 0), mostly with HTTP 200.
        stats.note(label, route.endpoint, "flickr_105")
        return flickr_down(request, codes, coin * 2)
    stats.note(label, route.endpoint, "status_5xx")
    status = (500, 502, 503)[int(coin * 3) % 3]
    return web.Response(status=status, text=f"{status} upstream error", content_type="text/plain")

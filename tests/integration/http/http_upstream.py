"""A misbehaving upstream server on loopback, and fakes for the HTTP client tests.

The server counts every request it sees, so tests can prove that retries rode out each
fault with no request lost and no extra one made.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise

from aiohttp import web

from harvester.emulator.images import ImageRecipe, render
from harvester.http import HttpSettings

KEY = "f1ckr-k3y-0123456789abcdef"
TOKEN = "MLY|4242|s3cr3t-t0k3n"
JPEG = render(ImageRecipe(seed=3, width=64, height=48))


class Upstream:
    """An aiohttp app with one route per fault; ``seen`` counts requests per key."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.ok: Counter[str] = Counter()
        self.inflight = 0
        self.peak_inflight = 0
        self.stop = asyncio.Event()
        self.auth_seen: list[str | None] = []
        self.arrivals: list[float] = []  # when /json was asked, on `clock` (default: the loop's)
        self.clock: Callable[[], float] | None = None
        self.base = ""
        self.other_base = ""  # same app, another port: another origin
        self.redirect_to = ""  # where /redirect-to points (a test sets it)
        app = web.Application()
        for path, handler in [
            ("/json", self.json),
            ("/flaky/{k}", self.flaky),
            ("/limited/{k}", self.limited),
            ("/reset/{k}", self.reset),
            ("/truncated/{k}", self.truncated),
            ("/encoded/{k}", self.encoded),
            ("/big", self.big),
            ("/stall-big", self.stall_big),
            ("/redirect/{n}", self.redirect),
            ("/slow/{k}", self.slow),
            ("/html", self.html),
            ("/status/{code}", self.status),
            ("/echo-auth", self.echo_auth),
            ("/hop-away", self.hop_away),
            ("/redirect-to", self.redirect_anywhere),
            ("/echo-key-redirect", self.echo_key_redirect),
            ("/hold", self.hold),
            ("/jsonp", self.jsonp),
            ("/repeat", self.repeat),
        ]:
            app.router.add_get(path, handler)
        self.app = app

    def _count(self, request: web.Request) -> int:
        """How many times this key was requested, this request included."""
        key = request.path
        self.seen[key] += 1
        return self.seen[key]

    def _fails(self, request: web.Request) -> bool:
        return self._count(request) <= int(request.query.get("fail", "1000000"))

    def _done(self, request: web.Request, **extra: object) -> web.Response:
        self.ok[request.path] += 1
        return web.json_response({"path": request.path, **request.query, **extra})

    async def json(self, request: web.Request) -> web.Response:
        self._count(request)
        self.arrivals.append((self.clock or asyncio.get_running_loop().time)())
        return self._done(request)

    async def flaky(self, request: web.Request) -> web.Response:
        if self._fails(request):
            return web.Response(status=503, text="try later")
        return self._done(request)

    async def limited(self, request: web.Request) -> web.Response:
        if self._fails(request):
            retry_after = request.query.get("retry_after", "2")
            if retry_after == "date":
                when = datetime.now(UTC) + timedelta(seconds=20)
                retry_after = format_datetime(when, usegmt=True)
            # ?body= sends that text as the 429's body: an API's error object, say.
            body = request.query.get("body")
            return web.Response(status=429, headers={"Retry-After": retry_after}, text=body)
        return self._done(request)

    async def reset(self, request: web.Request) -> web.Response:
        if self._fails(request):
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0)
        return self._done(request)

    async def truncated(self, request: web.Request) -> web.StreamResponse:
        if not self._fails(request):
            return self._done(request)
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 400)
        assert request.transport is not None
        request.transport.close()
        return response

    async def encoded(self, request: web.Request) -> web.Response:
        """The JSON answer (or ?zeros=N zero bytes, or with ?jpeg=1 a JPEG) in ?encoding=
        (gzip; a comma list is applied in its order), spoiled by ?spoil= on the first ?fail=
        requests (default: all), with a Content-Length true to the bytes sent: nothing at the
        HTTP level is amiss, only the encoded stream may be. ?label= is the Content-Encoding
        sent (default: the encodings'), ?members= how many gzip-members (2)."""
        count = self._count(request)
        zeros = request.query.get("zeros")
        if zeros is not None:
            body = bytes(int(zeros))
        elif request.query.get("jpeg"):
            body = JPEG
        else:
            offered = request.headers.get("Accept-Encoding")
            body = json.dumps({"path": request.path, "offered": offered}).encode()
        codings = request.query.get("encoding", "gzip").split(",")
        members = int(request.query.get("members", "2"))
        stream = body
        for coding in codings:
            stream = encode(stream, coding, members)
        if count <= int(request.query.get("fail", "1000000")):
            stream = spoil(stream, request.query.get("spoil", ""))
        else:
            self.ok[request.path] += 1
        labels = ", ".join(_LABELS.get(coding, coding) for coding in codings)
        header = request.query.get("label", labels)
        return web.Response(
            body=stream, content_type="application/json", headers={"Content-Encoding": header}
        )

    async def big(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        size = int(request.query["size"])
        response = web.StreamResponse()
        if request.query.get("cl") == "1":
            response.content_length = size
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, size, 256):
            await response.write(b"y" * min(256, size - start))
        await response.write_eof()
        return response

    async def stall_big(self, request: web.Request) -> web.StreamResponse:
        """Declares 10 MB, sends 1 KB, then stalls: only a client that trusts the
        declared length and stops at once gets its answer quickly."""
        self._count(request)
        response = web.StreamResponse()
        response.content_length = 10 * 1024 * 1024
        await response.prepare(request)
        await response.write(b"z" * 1024)
        await self.stop.wait()
        return response

    async def redirect(self, request: web.Request) -> web.Response:
        self._count(request)
        n = int(request.match_info["n"])
        if n == 0:
            return self._done(request)
        raise web.HTTPFound(f"/redirect/{n - 1}")

    async def slow(self, request: web.Request) -> web.Response:
        if self._fails(request):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=2.0)
        return self._done(request)

    async def html(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(text=f"<html>error for key {KEY}</html>", content_type="text/html")

    async def repeat(self, request: web.Request) -> web.Response:
        """`text` sent `times` times over as JSON: a number or a nesting past any parser's."""
        self._count(request)
        body = request.query["text"] * int(request.query.get("times", "1"))
        return web.Response(text=body, content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def echo_auth(self, request: web.Request) -> web.Response:
        self._count(request)
        self.auth_seen.append(request.headers.get("Authorization"))
        return self._done(request)

    async def hop_away(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPFound(f"{self.other_base}/echo-auth")

    async def redirect_anywhere(self, request: web.Request) -> web.Response:
        self._count(request)
        raise web.HTTPFound(self.redirect_to)

    async def echo_key_redirect(self, request: web.Request) -> web.Response:
        """A hostile server putting the caller's key into a path and looping."""
        self._count(request)
        raise web.HTTPFound(f"/echo-key-redirect/{request.query.get('api_key', '')}")

    async def hold(self, request: web.Request) -> web.Response:
        self._count(request)
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.inflight -= 1
        return self._done(request)

    async def jsonp(self, request: web.Request) -> web.Response:
        self._count(request)
        body = 'jsonFlickrApi({"stat": "ok", "title": "Café"})'.encode("latin-1")
        return web.Response(body=body, content_type="text/javascript", charset="iso-8859-1")


_LABELS = {"raw-deflate": "deflate", "gzip-members": "gzip"}


def encode(body: bytes, encoding: str, members: int = 2) -> bytes:
    """``body`` as a server sends it in ``encoding``; raw-deflate is the headerless
    deflate some servers send as "deflate", gzip-members ``members`` parts of it gzipped
    one after another (RFC 1952 2.2: a gzip file is a series of members)."""
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(body, mtime=0)
    if encoding == "gzip-members":
        cuts = [len(body) * i // members for i in range(members + 1)]
        return b"".join(gzip.compress(body[a:b], mtime=0) for a, b in pairwise(cuts))
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "raw-deflate":
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return raw.compress(body) + raw.flush()
    return body  # an encoding no client offers to read: sent as it is


def spoil(stream: bytes, how: str) -> bytes:
    """A gzip stream made wrong: its trailer cut off (the data decodes whole), cut in half,
    its CRC or length trailer wrong, or followed by bytes that belong to nothing."""
    if how == "no_trailer":
        return stream[:-8]
    if how == "half":
        return stream[: len(stream) // 2]
    if how == "crc":
        return stream[:-8] + bytes([stream[-8] ^ 0xFF]) + stream[-7:]
    if how == "size":
        return stream[:-1] + bytes([stream[-1] ^ 0xFF])
    if how == "trailing":
        return stream + b"\0\0\0\0"
    return stream


def make_settings(**overrides: object) -> HttpSettings:
    """Test defaults: generous timeouts, five attempts, short back-off."""
    base: dict[str, object] = {
        "max_attempts": 5,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 8.0,
        "sock_read_timeout_s": 5.0,
        "total_timeout_s": 10.0,
    }
    base.update(overrides)
    return HttpSettings(**base)  # type: ignore[arg-type]


class CountingLimiter:
    """A RateLimiter that records what the client tells it."""

    def __init__(self) -> None:
        self.acquired = 0
        self.throttles: list[float | None] = []
        self.successes = 0

    async def acquire(self) -> None:
        self.acquired += 1

    def throttled(self, retry_after: float | None = None) -> None:
        self.throttles.append(retry_after)

    def succeeded(self) -> None:
        self.successes += 1


def assert_no_secret(error: BaseException) -> None:
    printed = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), getattr(error, "url", ""), printed):
        assert KEY not in text
        assert TOKEN not in text
        assert "s3cr3t" not in text

"""The one HTTP client of a daemon: pooled session, limits, retries, capped bodies.

Each call is: validate the URL, then up to ``max_attempts`` attempts, each of which takes
a limiter token, follows redirects itself (so every hop is capped, counted and redacted),
classifies the outcome once into the error tree and streams the body under a byte cap.
Transient errors are retried with jittered exponential back-off that honours
Retry-After; a Retry-After too long to wait inline is raised for the queue to schedule.
A call may name a circuit breaker (it waits out an outage instead of failing) and a
reader of errors carried in bodies (Flickr's `stat: fail`, Graph error objects), which
then classifies the answer before its status does.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Self

import aiohttp
import structlog
import yarl
from aiohttp.abc import AbstractResolver
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from harvester.backoff import EQUAL_JITTER, Backoff
from harvester.http.breaker import CircuitBreaker
from harvester.http.classify import (
    NETWORK_ERRORS,
    classify_exception,
    classify_status,
    sanitize_chain,
)
from harvester.http.destinations import (
    Destinations,
    FilteringResolver,
    HostNotAllowedError,
    strip_userinfo,
)
from harvester.http.encoding import OFFERED, applied, decode
from harvester.http.errors import (
    HttpError,
    InvalidCredentials,
    PermanentHttpError,
    RateLimitedError,
    ServiceUnavailableError,
    SlowTransferError,
    TooLargeError,
    TooSlowError,
    TransientHttpError,
    TruncatedBodyError,
    parse_retry_after,
)
from harvester.http.limiter import Clock, HostSlots, RateLimiter, SystemClock
from harvester.http.provider_errors import MAX_ERROR_BODY, BodyErrors
from harvester.http.stats import HttpStats
from harvester.redact import credential_values, redact_text, redact_url

log = structlog.get_logger("harvester.http")

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Credentials must not follow a redirect to another origin (a Mapillary token sent
# to a CDN, say).
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HttpSettings:
    """Session-wide limits. Timeouts in seconds; ``max_bytes`` caps any one body."""

    connect_timeout_s: float = 10
    sock_read_timeout_s: float = 30
    total_timeout_s: float = 120
    pool_limit: int = 100
    per_host_limit: int = 16
    max_redirects: int = 5
    max_bytes: int = 50 * 1024 * 1024
    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30
    max_inline_retry_after_s: float = 60
    user_agent: str = "harvester/0.1 (+research dataset harvester)"
    dns_cache_ttl_s: int = 300
    # Slow-loris: a body must arrive at min_bytes_per_s on average after a grace period, and
    # one fetch (all its tries and back-off) ends within budget_s.
    min_bytes_per_s: float = 1024
    min_rate_grace_s: float = 10
    budget_s: float = 300

    def __post_init__(self) -> None:
        positive = {
            "connect_timeout_s": self.connect_timeout_s,
            "sock_read_timeout_s": self.sock_read_timeout_s,
            "total_timeout_s": self.total_timeout_s,
            "pool_limit": self.pool_limit,
            "per_host_limit": self.per_host_limit,
            "max_bytes": self.max_bytes,
            "max_attempts": self.max_attempts,
            "backoff_initial_s": self.backoff_initial_s,
            "backoff_max_s": self.backoff_max_s,
            "min_bytes_per_s": self.min_bytes_per_s,
            "budget_s": self.budget_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"HttpSettings.{name} must be positive, got {value!r}")
        if self.max_redirects < 0 or self.max_inline_retry_after_s < 0:
            raise ValueError("HttpSettings.max_redirects and max_inline_retry_after_s >= 0")


@dataclass(frozen=True)
class Body:
    """A fully read response body; ``url`` is the final URL after redirects, redacted.

    ``end_checked``: the server said where the body ends and all of it came (see
    `_end_checked`). False, it ended as the connection closed, which a dropped connection
    does too: content found cut short in it may have been cut on the way.
    """

    data: bytes
    content_type: str | None
    url: str
    end_checked: bool


@dataclass(frozen=True)
class _Reply:
    body: Body
    charset: str | None


@dataclass
class _Wire:
    """Whether a call's request was with the server when its budget cut it."""

    busy: bool = False


@dataclass(frozen=True)
class _Call:
    """One logical call: what every attempt and every redirect hop needs."""

    url: yarl.URL
    headers: Mapping[str, str]
    limiter: RateLimiter | None
    host_slots: HostSlots | None
    max_bytes: int
    secrets: tuple[str, ...]
    breaker: CircuitBreaker | None = None
    body_errors: BodyErrors | None = None
    api: str = "api"  # the metrics label: flickr, mapillary, images
    destinations: Destinations | None = None
    wire: _Wire = field(default_factory=_Wire, compare=False)
    outage_attempts: int | None = None  # see HttpClient.get_json

    def show(self, url: yarl.URL | str) -> str:
        """The URL as it may appear in an error or a log line."""
        return redact_text(redact_url(url), self.secrets)


class HttpClient:
    """One per daemon; owns the aiohttp session and its connection pool."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver`` looks names up for the filtered sessions (default: the system's)."""
        self._settings = settings or HttpSettings()
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._backoff = Backoff(
            self._settings.backoff_initial_s, self._settings.backoff_max_s, EQUAL_JITTER
        )
        self._resolver = resolver
        # One session per destination policy: each policy's resolver filters the addresses
        # its connections are made to (None: the operator's own API endpoints, unfiltered).
        # Rate-limited calls get sessions of their own: a call that has spent its token must
        # not then queue for a pooled connection behind image downloads to the same host,
        # or calls paced apart would leave together.
        self._sessions: dict[tuple[Destinations | None, bool], aiohttp.ClientSession] = {}
        self._closed = False
        self.stats = HttpStats()

    @property
    def settings(self) -> HttpSettings:
        return self._settings

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        secrets: Sequence[str] = (),
        breaker: CircuitBreaker | None = None,
        body_errors: BodyErrors | None = None,
        api: str = "api",
        outage_attempts: int | None = None,
    ) -> Any:
        """GET and parse JSON; a body that is not JSON raises a transient ``bad_response``.

        ``outage_attempts``: an outage answer (a 5xx, a "down" code: ServiceUnavailableError
        with a status) ends the call after this many attempts while the breaker is shut, for
        a caller with a better move than asking again (a smaller box)."""
        reply = await self._get(
            url, params, headers, limiter, secrets, breaker, body_errors, api, outage_attempts
        )
        try:
            return json.loads(reply.body.data)
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            raise self._not_json(reply, reason) from exc
        except UnicodeDecodeError as exc:
            raise self._not_json(reply, f"undecodable text ({exc.reason})") from None
        except (ValueError, RecursionError):  # a 4,300-digit number, a nesting past the stack
            raise self._not_json(reply, "beyond what the parser can hold") from None

    async def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        limiter: RateLimiter | None,
        secrets: Sequence[str],
        breaker: CircuitBreaker | None,
        body_errors: BodyErrors | None,
        api: str,
        outage_attempts: int | None = None,
    ) -> _Reply:
        """An API call's reply, retried: what JSON and text bodies share."""
        call = self._call(
            url,
            params,
            headers,
            limiter,
            None,
            None,
            secrets,
            breaker=breaker,
            body_errors=body_errors,
            api=api,
            outage_attempts=outage_attempts,
        )
        return await self._with_retries(call)

    async def get_text(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        secrets: Sequence[str] = (),
        breaker: CircuitBreaker | None = None,
        body_errors: BodyErrors | None = None,
        api: str = "api",
    ) -> str:
        """GET a text body, decoded by its declared charset (UTF-8 if none)."""
        reply = await self._get(url, params, headers, limiter, secrets, breaker, body_errors, api)
        try:
            return reply.body.data.decode(reply.charset or "utf-8", errors="replace")
        except LookupError:
            return reply.body.data.decode("utf-8", errors="replace")

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        host_slots: HostSlots | None = None,
        max_bytes: int | None = None,
        secrets: Sequence[str] = (),
        breaker: CircuitBreaker | None = None,
        api: str = "images",
        destinations: Destinations | None = None,
    ) -> Body:
        """GET a (binary) body, streamed under a byte cap, holding a host slot per hop.

        With ``destinations``, every hop's host and connected address must be allowed by it;
        a refused one raises ``HostNotAllowedError`` at once (permanent, never retried).
        """
        call = self._call(
            url,
            None,
            headers,
            limiter,
            host_slots,
            max_bytes,
            secrets,
            destinations=destinations,
            breaker=breaker,
            api=api,
        )
        budget = self._settings.budget_s
        try:
            async with asyncio.timeout(budget):
                reply = await self._with_retries(call)
        except TimeoutError:
            shown = call.show(call.url)
            message = f"no image within the {budget:g} s budget from {shown}"
            # Cut while the server had the request: its slowness, final. Cut while queued
            # for a host slot or token: ours, so the queue may try the row again.
            if call.wire.busy:
                raise TooSlowError(message, url=shown) from None
            raise SlowTransferError(message, url=shown) from None
        except SlowTransferError as exc:
            # Every try trickled in under the minimum rate: final, not another round of tries.
            raise TooSlowError(str(exc), url=exc.url) from None
        return reply.body

    # -- one logical call -----------------------------------------------------------

    def _call(
        self,
        url: str | yarl.URL,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        limiter: RateLimiter | None,
        host_slots: HostSlots | None,
        max_bytes: int | None,
        secrets: Sequence[str],
        *,
        destinations: Destinations | None = None,
        breaker: CircuitBreaker | None = None,
        body_errors: BodyErrors | None = None,
        api: str = "api",
        outage_attempts: int | None = None,
    ) -> _Call:
        headers = dict(headers or {})
        known = [*secrets, *_header_secrets(headers)]
        if params:
            known += credential_values(params.items())
        try:
            parsed = url if isinstance(url, yarl.URL) else yarl.URL(url)
            if params:
                parsed = parsed.extend_query(params)
        except (ValueError, TypeError):
            # Not chained: the parser's message may quote the URL, key and all.
            shown = redact_text(redact_url(str(url)), known)
            raise PermanentHttpError(
                f"unusable URL: {shown}", url=shown, reason="bad_url"
            ) from None
        known += credential_values(parsed.query.items())
        call = _Call(
            url=parsed,
            headers=headers,
            limiter=limiter,
            host_slots=host_slots,
            max_bytes=self._settings.max_bytes if max_bytes is None else max_bytes,
            secrets=tuple(dict.fromkeys(s for s in known if s)),
            breaker=breaker,
            body_errors=body_errors,
            api=api,
            destinations=destinations,
            outage_attempts=outage_attempts,
        )
        _check_target(call, parsed)
        return call

    async def _with_retries(self, call: _Call) -> _Reply:
        # The first attempt runs before tenacity's loop, which costs ~20 us of CPU a call
        # to set up and step through (an image fetch is a few hundred): nearly every call
        # succeeds at once. A failed first attempt is handed to the loop as its attempt 1,
        # so stop, wait and the retry log decide exactly as if it had run there; any other
        # error is one tenacity would re-raise at once (see _should_retry).
        # (Building the AsyncRetrying once instead would not help: building is ~2 us, and
        # one object iterated by concurrent tasks shares its per-thread iteration state.)
        try:
            return await self._attempt_once(call)
        except TransientHttpError as exc:
            first: TransientHttpError | None = exc
        breaker = call.breaker
        stop = stop_after_attempt(self._settings.max_attempts)
        outages = stop_after_attempt(call.outage_attempts or self._settings.max_attempts)

        def give_up(state: RetryCallState) -> bool:
            # While the API is down for everyone, attempts are not spent: wait it out.
            if breaker is not None and breaker.holding:
                return False
            return stop(state) or (_answered_outage(state) and outages(state))

        def wait(state: RetryCallState) -> float:
            return 0.0 if breaker is not None and breaker.holding else self._wait(state)

        retrying = AsyncRetrying(
            stop=give_up,
            wait=wait,
            retry=retry_if_exception(self._should_retry),
            sleep=self._clock.sleep,
            before_sleep=partial(_log_retry, self.stats, call.api),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    # Raised here, outside the handler that caught it: no new __context__.
                    failed, first = first, None
                    raise failed
                return await self._attempt_once(call)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt_once(self, call: _Call) -> _Reply:
        if call.breaker is None:
            return await self._attempt(call)
        return await self._attempt_through(call, call.breaker)

    async def _attempt_through(self, call: _Call, breaker: CircuitBreaker) -> _Reply:
        """One attempt once the breaker admits it, its outcome told to the breaker."""
        probe = await breaker.admit()
        try:
            reply = await self._attempt(call)
        except BaseException as exc:
            breaker.record(exc, probe=probe)
            raise
        breaker.record(None, probe=probe)
        return reply

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientHttpError):
            return False
        # A long Retry-After is not slept through here: the error goes up with its
        # retry_after so the queue can set not_before and free the worker.
        return exc.retry_after is None or exc.retry_after <= self._settings.max_inline_retry_after_s

    def _wait(self, state: RetryCallState) -> float:
        delay = self._backoff.delay(state.attempt_number, self._rng)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, TransientHttpError) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    # -- one attempt ----------------------------------------------------------------

    async def _attempt(self, call: _Call) -> _Reply:
        """One attempt: a limiter token, then the request and up to max_redirects hops."""
        if call.limiter is not None:
            asked = self._clock.monotonic()
            await call.limiter.acquire()
            self.stats.limiter_wait_s[call.api] += self._clock.monotonic() - asked
        current = call.url
        headers = dict(call.headers)
        for _hop in range(self._settings.max_redirects + 1):
            if call.host_slots is None:
                outcome = await self._on_wire(call, current, headers)
            else:
                async with call.host_slots.slot(current.host or ""):
                    outcome = await self._on_wire(call, current, headers)
            if isinstance(outcome, _Reply):
                for limiter in (call.limiter, _host_rate(call, current)):
                    if limiter is not None:
                        limiter.succeeded()
                return outcome
            if outcome.origin() != current.origin():
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            current = outcome
        shown = call.show(call.url)
        raise PermanentHttpError(
            f"more than {self._settings.max_redirects} redirects from {shown}",
            url=shown,
            reason="too_many_redirects",
        )

    async def _on_wire(
        self, call: _Call, url: yarl.URL, headers: Mapping[str, str]
    ) -> _Reply | yarl.URL:
        """One hop, marked busy for as long as it is with the server: a cut in its middle
        (the fetch's budget) leaves the mark."""
        call.wire.busy = True
        cut = False
        try:
            return await self._hop(call, url, headers)
        except asyncio.CancelledError:
            cut = True
            raise
        finally:
            call.wire.busy = cut

    async def _hop(
        self, call: _Call, url: yarl.URL, headers: Mapping[str, str]
    ) -> _Reply | yarl.URL:
        """One request: the reply, or the URL a redirect points to."""
        shown = call.show(url)
        answered = False  # a body cut off after the status line is still one call, not two
        try:
            session = self._ensure_session(call.destinations, paced=call.limiter is not None)
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                self.stats.call(call.api, resp.status)
                answered = True
                location = resp.headers.get("Location")
                if resp.status in _REDIRECT_STATUSES and location:
                    return _redirect_target(url, location, shown, resp.status, call)
                if call.body_errors is not None and not 200 <= resp.status < 300:
                    await self._raise_for_error_body(call, resp, shown, url)
                self._raise_for_status(call, resp, shown, url)
                codings = applied(resp.headers.getall("Content-Encoding", ()))
                data = await _read_capped(resp, call.max_bytes, shown, self._pace(), codings)
                if call.body_errors is not None:
                    self._raise_for(call, call.body_errors(resp.status, data, shown), url)
                content_type = resp.content_type if "Content-Type" in resp.headers else None
                body = Body(data, content_type, shown, _end_checked(resp, codings))
                return _Reply(body, resp.charset)
        except HostNotAllowedError as exc:
            # The resolver knows the name but not the URL (its error names none); a refused
            # redirect's error keeps the URL it refused (a source may know that place).
            raise HostNotAllowedError(f"{exc} (for {shown})", url=exc.url or shown) from None
        except NETWORK_ERRORS as exc:
            error = classify_exception(exc, url=shown)
            if not answered:
                self.stats.call(call.api, "error")
            if sanitize_chain(exc, call.secrets):
                raise error from exc
        # Only an original whose text could not be scrubbed gets here. It is dropped,
        # not chained: raised outside the except block, the error has no __context__.
        raise error

    def _raise_for_status(
        self, call: _Call, resp: aiohttp.ClientResponse, shown: str, url: yarl.URL
    ) -> None:
        if 200 <= resp.status < 300:
            if resp.status == 206:
                _refuse_partial(resp, shown)
            return  # every image fetched: no error to classify, no Retry-After, no reason to scrub
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), datetime.now(UTC))
        reason = redact_text(resp.reason, call.secrets) if resp.reason else None
        error = classify_status(resp.status, url=shown, retry_after=retry_after, reason=reason)
        self._raise_for(call, error, url)

    async def _raise_for_error_body(
        self, call: _Call, resp: aiohttp.ClientResponse, shown: str, url: yarl.URL
    ) -> None:
        """An error status whose body carries the error's meaning: the body decides, but
        on a 429 only a bad key outranks "slow down", which only the status tells the
        limiter (an outage or unknown code sent with it must not hide the cut)."""
        assert call.body_errors is not None
        try:
            data = await _read_capped(resp, MAX_ERROR_BODY, shown)
        except HttpError:
            return  # too big or cut short: not an error object, the status decides
        error = call.body_errors(resp.status, data, shown)
        if resp.status == 429 and not isinstance(error, InvalidCredentials):
            return
        if isinstance(error, TransientHttpError) and error.retry_after is None:
            error.retry_after = parse_retry_after(
                resp.headers.get("Retry-After"), datetime.now(UTC)
            )
        self._raise_for(call, error, url)

    def _raise_for(self, call: _Call, error: HttpError | None, url: yarl.URL) -> None:
        if error is None:
            return
        if isinstance(error, RateLimitedError):
            # The key's limit and the host's both slow down: a CDN's 429 is about the host.
            # A shared limiter pauses only for a wait a call may sit out inline: a longer
            # Retry-After is the row's to honour (not_before), never every row's on the host.
            pause = error.retry_after
            if pause is not None and pause > self._settings.max_inline_retry_after_s:
                pause = None
            for limiter in (call.limiter, _host_rate(call, url)):
                if limiter is not None:
                    limiter.throttled(pause)
        raise error

    def _pace(self) -> _Pace:
        s = self._settings
        return _Pace(asyncio.get_running_loop().time(), s.min_rate_grace_s, s.min_bytes_per_s)

    def _ensure_session(
        self, destinations: Destinations | None = None, *, paced: bool = False
    ) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("HttpClient is closed")
        session = self._sessions.get((destinations, paced))
        if session is None:
            s = self._settings
            resolver = (
                None if destinations is None else FilteringResolver(destinations, self._resolver)
            )
            connector = aiohttp.TCPConnector(
                limit=s.pool_limit,
                limit_per_host=s.per_host_limit,
                ttl_dns_cache=s.dns_cache_ttl_s,
                resolver=resolver,
            )
            # sock_connect, not connect: "connect" also counts time queued for a pooled
            # connection, which under load is not the remote end's fault.
            timeout = aiohttp.ClientTimeout(
                total=s.total_timeout_s,
                sock_connect=s.connect_timeout_s,
                sock_read=s.sock_read_timeout_s,
            )
            # _read_capped decodes, and checks the encoded stream is whole; aiohttp would not.
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"User-Agent": s.user_agent, "Accept-Encoding": OFFERED},
                raise_for_status=False,
                trust_env=False,
                auto_decompress=False,
            )
            self._sessions[(destinations, paced)] = session
        return session

    @staticmethod
    def _not_json(reply: _Reply, reason: str) -> TransientHttpError:
        """A 200 that is not JSON is a proxy's or an outage's page, not the API's answer:
        worth another try later (as Flickr's is), never a query's end."""
        body = reply.body
        return TransientHttpError(
            f"response is not JSON ({body.content_type or 'no content type'}, "
            f"{len(body.data)} bytes: {reason}) from {body.url}",
            url=body.url,
            status=200,
            reason="bad_response",
        )


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)


def _refuse_partial(resp: aiohttp.ClientResponse, shown: str) -> None:
    """A 206 answers a Range, and no call sends one: unless its Content-Range is the whole
    body, it holds a part of it (an edge cache's), as short as a body cut off."""
    whole = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if whole is not None and whole[1] == "0" and int(whole[2]) + 1 == int(whole[3]):
        return
    part = whole[0] if whole is not None else "no readable Content-Range"
    raise TruncatedBodyError(
        f"HTTP 206, a part of the body ({part}), from {shown}",
        url=shown,
        status=206,
    )


def _host_rate(call: _Call, url: yarl.URL) -> RateLimiter | None:
    return None if call.host_slots is None else call.host_slots.rate(url.host or "")


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Credential values carried in headers, whole and without their scheme word."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in _CREDENTIAL_HEADERS or "token" in name.lower() or "key" in name.lower():
            found.append(value)
            _scheme, _, credential = value.partition(" ")
            if credential.strip():
                found.append(credential.strip())
    return found


def _check_target(call: _Call, url: yarl.URL) -> None:
    shown = call.show(url)
    if url.scheme not in ("http", "https") or not url.host:
        raise PermanentHttpError(f"not an http(s) URL: {shown}", url=shown, reason="bad_url")
    if call.destinations is not None:
        call.destinations.check(url, shown)


def _redirect_target(
    current: yarl.URL, location: str, shown: str, status: int, call: _Call
) -> yarl.URL:
    try:
        pointed = yarl.URL(location)
        # Credentials never travel with a redirect: a relative one stays on this origin and
        # keeps them; user:password@ written into a Location header is dropped.
        target = current.join(pointed)
        if pointed.is_absolute():
            target = strip_userinfo(target)
    except ValueError:
        # The redirect was answered; the URL it points to is what fails, as one given would.
        raise PermanentHttpError(
            f"unusable redirect (HTTP {status}) from {shown}", url=shown, reason="bad_url"
        ) from None
    _check_target(call, target)
    return target


@dataclass
class _Pace:
    """The slowest a body may arrive: ``size`` bytes by ``deadline(size)`` (loop time).
    ``heard``: when its last bytes came (the start, before any)."""

    started: float
    grace_s: float
    min_bytes_per_s: float
    heard: float = field(init=False)

    def __post_init__(self) -> None:
        self.heard = self.started

    def deadline(self, size: int) -> float:
        return self.started + self.grace_s + size / self.min_bytes_per_s

    def stalled(self, size: int) -> bool:
        """Whether a body the pace cut had stopped rather than trickled: its ``size`` bytes
        came at the minimum rate, the grace unspent, so the grace then passed in silence."""
        return self.heard - self.started <= size / self.min_bytes_per_s

    def too_slow(self, size: int, shown: str) -> SlowTransferError:
        rate = f"{self.min_bytes_per_s:g} bytes/s"
        return SlowTransferError(f"body slower than {rate} ({size} bytes) from {shown}", url=shown)


async def _read_capped(
    resp: aiohttp.ClientResponse,
    max_bytes: int,
    shown: str,
    pace: _Pace | None = None,
    codings: tuple[str, ...] | None = None,
) -> bytes:
    """The body, refusing more than max_bytes (declared, actual or decoded), short bodies
    (their connection closed, or left silent: `_stalled`), encoded streams that are not
    whole and (with ``pace``) bodies that trickle in slower than its rate. The session does
    not decode: the bytes read are the bytes sent, so the declared length holds for an
    encoded body too."""
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise TooLargeError(
            f"body of {declared} bytes exceeds the cap of {max_bytes} from {shown}",
            url=shown,
            status=resp.status,
        )
    try:
        data = await _read_body(resp, max_bytes, shown, pace)
    except aiohttp.SocketTimeoutError:  # no byte for sock_read_timeout_s
        if declared is None:
            raise  # no length promised: the body may be whole and its server slow to close
        raise _stalled(resp, declared, shown) from None
    if declared is not None and len(data) < declared:
        raise TruncatedBodyError(
            f"body of {len(data)} bytes, {declared} declared, from {shown}",
            url=shown,
            status=resp.status,
        )
    if codings is None:  # `applied` of the answer's Content-Encoding, read once by its caller
        codings = applied(resp.headers.getall("Content-Encoding", ()))
    if not codings:
        return data  # images are sent as they are: no copy, no pass over the bytes
    return decode(data, codings, max_bytes, shown, resp.status)


async def _read_body(
    resp: aiohttp.ClientResponse, max_bytes: int, shown: str, pace: _Pace | None
) -> bytes:
    """The body as sent, under the cap and (with ``pace``) the minimum rate."""
    declared = resp.content_length
    if pace is None and declared is not None:
        return await resp.read()  # the size is known and allowed: one read, one buffer
    if pace is None:
        return await _read_chunks(resp, max_bytes, shown, exact=False)
    # One timer per body, moved on as bytes arrive: it fires the moment the bytes
    # received fall behind the pace, however the server stalls (no watchdog task).
    try:
        async with asyncio.timeout_at(pace.deadline(0)) as cut:
            exact = declared is not None
            return await _read_chunks(resp, max_bytes, shown, exact=exact, pace=pace, cut=cut)
    except TimeoutError:
        if not cut.expired():
            raise  # aiohttp's own socket timeout, not the pace
        size = resp.content.total_bytes
        if declared is not None and pace.stalled(size):
            raise _stalled(resp, declared, shown) from None
        raise pace.too_slow(size, shown) from None


def _stalled(resp: aiohttp.ClientResponse, declared: int, shown: str) -> TruncatedBodyError:
    """A body short of its Content-Length whose server then fell silent, the connection
    open: as cut short as one whose connection closed (retried, never final as too_slow
    is), and its connection is closed here, so no later request is handed it mid-body."""
    error = TruncatedBodyError(
        f"body of {resp.content.total_bytes} bytes, {declared} declared, then silence on "
        f"the open connection, from {shown}",
        url=shown,
        status=resp.status,
    )
    resp.close()
    return error


def _end_checked(resp: aiohttp.ClientResponse, codings: tuple[str, ...]) -> bool:
    """Whether a body read whole was as long as its server said: it had a Content-Length
    (`_read_capped` refuses fewer bytes), chunked framing (aiohttp refuses a body cut
    before its last chunk) or a compression in Content-Encoding (`decode` requires its
    stream's end). Otherwise nothing but the connection's close ended it (HTTP/1.0-style)."""
    framing = resp.headers.get("Transfer-Encoding", "").rsplit(",", 1)[-1]
    return (
        resp.content_length is not None
        or framing.strip(" \t").lower() == "chunked"  # aiohttp's test: the last coding
        or bool(codings)
    )


async def _read_chunks(
    resp: aiohttp.ClientResponse,
    max_bytes: int,
    shown: str,
    *,
    exact: bool,
    pace: _Pace | None = None,
    cut: asyncio.Timeout | None = None,
) -> bytes:
    """The body chunk by chunk, under the cap; with ``pace``, each chunk moves ``cut`` (the
    pace's timer) to the deadline of the bytes received so far. ``exact``: the body has its
    declared (allowed) length, so each read takes one piece as the parser handed it over
    (readchunk: readany would first join the pieces waiting, a copy of the body that the
    join below makes again)."""
    loop = asyncio.get_running_loop()
    content = resp.content
    chunks: list[bytes] = []
    size = 0
    while chunk := await (_next_piece(content) if exact else content.read(_CHUNK)):
        chunks.append(chunk)
        size += len(chunk)
        if pace is not None:
            deadline, pace.heard = pace.deadline(size), loop.time()
            if pace.heard > deadline:
                raise pace.too_slow(size, shown)
            if cut is not None:
                cut.reschedule(deadline)
        if size > max_bytes:
            raise TooLargeError(
                f"body exceeds the cap of {max_bytes} bytes from {shown}",
                url=shown,
                status=resp.status,
            )
    return b"".join(chunks)


async def _next_piece(content: aiohttp.StreamReader) -> bytes:
    """The next piece of the body as received, b"" at its end (an HTTP chunk boundary,
    which readchunk reports as an empty piece, is not the end)."""
    while True:
        piece, boundary = await content.readchunk()
        if piece or not boundary:
            return piece


def _answered_outage(state: RetryCallState) -> bool:
    """Whether the attempt ended with an outage answer (not a connection that failed)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    return isinstance(exc, ServiceUnavailableError) and exc.status is not None


def _log_retry(stats: HttpStats, api: str, state: RetryCallState) -> None:
    stats.retries[api] += 1
    exc = state.outcome.exception() if state.outcome is not None else None
    if not isinstance(exc, HttpError):
        return
    delay = state.next_action.sleep if state.next_action is not None else None
    log.info(
        "http_retry",
        url=exc.url,
        status=exc.status,
        error=type(exc).__name__,
        attempt=state.attempt_number,
        delay_s=delay,
    )


__all__ = ["Body", "HttpClient", "HttpSettings"]

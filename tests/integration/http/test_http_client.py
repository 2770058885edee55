"""HttpClient against a misbehaving server of our own on loopback (see http_upstream).

Back-off sleeps and rate limits go through a fake clock; only the timeout tests spend (a
fraction of a second of) real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket

import pytest
from clocks import FakeClock, SimClock, max_in_window
from http_upstream import (
    KEY,
    TOKEN,
    CountingLimiter,
    Upstream,
    assert_no_secret,
    make_settings,
)
from local_server import answering

from harvester.http import (
    BodyErrors,
    HostSlots,
    HttpClient,
    HttpError,
    InvalidCredentials,
    NotFoundError,
    PermanentHttpError,
    RateLimitedError,
    TokenBucket,
    TooLargeError,
    TransientHttpError,
    TruncatedBodyError,
    flickr_body_errors,
    graph_body_errors,
)


async def test_plain_json_call_merges_params_and_takes_one_token(
    upstream: Upstream, client: HttpClient
) -> None:
    limiter = CountingLimiter()
    data = await client.get_json(
        f"{upstream.base}/json?format=json", params={"page": "2"}, limiter=limiter
    )
    assert data == {"path": "/json", "format": "json", "page": "2"}
    assert (limiter.acquired, limiter.successes, limiter.throttles) == (1, 1, [])


class _OnTheWire:
    """A bucket's limiter that lists the calls it admitted until they are answered: what
    SimClock watches, so simulated time stands still while a request is on the wire."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.calls: list[asyncio.Task[object]] = []

    async def acquire(self) -> None:
        await self.bucket.acquire()
        task = asyncio.current_task()
        assert task is not None
        self.calls.append(task)

    def _answered(self) -> None:
        task = asyncio.current_task()
        if task in self.calls:
            self.calls.remove(task)  # type: ignore[arg-type]

    def throttled(self, retry_after: float | None = None) -> None:
        self._answered()
        self.bucket.throttled(retry_after)

    def succeeded(self) -> None:
        self._answered()
        self.bucket.succeeded()


async def test_bucket_holds_its_rate_as_seen_by_the_server(upstream: Upstream) -> None:
    """20 calls at once through a 40/s bucket with burst 2, over real HTTP on simulated time
    (it stands still while a request is on the wire, so machine load cannot move it): the
    server sees them spread over (20 - 2) / 40 s and never more than burst + 40 * 0.25 in
    any quarter second."""
    clock = SimClock()
    upstream.clock = clock.monotonic
    wire = _OnTheWire(TokenBucket(40.0, 2, clock=clock))
    async with HttpClient(make_settings(), clock=clock) as http:
        calls = [
            asyncio.create_task(http.get_json(f"{upstream.base}/json", limiter=wire))
            for _ in range(20)
        ]
        await clock.run_until(clock.now + 5.0, watch=wire.calls)
        await asyncio.gather(*calls)
    arrivals = sorted(upstream.arrivals)
    assert len(arrivals) == 20
    assert arrivals[-1] - arrivals[0] == pytest.approx((20 - 2) / 40.0)
    assert max_in_window(arrivals, 0.25) <= 2 + 0.25 * 40


async def test_503_twice_then_200_is_retried_with_every_attempt_through_the_limiter(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    limiter = CountingLimiter()
    data = await client.get_json(f"{upstream.base}/flaky/a", params={"fail": "2"}, limiter=limiter)
    assert data["path"] == "/flaky/a"
    assert upstream.seen["/flaky/a"] == 3
    assert limiter.acquired == 3 and limiter.successes == 1
    # equal-jitter exponential back-off: attempt n waits in [b/2, b], b = 0.5 * 2^(n-1)
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0


async def test_persistent_5xx_gives_up_after_max_attempts(
    upstream: Upstream, client: HttpClient
) -> None:
    with pytest.raises(TransientHttpError) as caught:
        await client.get_json(f"{upstream.base}/flaky/b")
    assert caught.value.status == 503
    assert upstream.seen["/flaky/b"] == 5


async def test_429_storm_with_retry_after_is_ridden_out_with_no_request_lost(
    upstream: Upstream, clock: FakeClock
) -> None:
    """Twenty callers share one key; each is refused twice with Retry-After: 2."""
    bucket = TokenBucket(50.0, 5, clock=clock)
    async with HttpClient(make_settings(), clock=clock, rng=random.Random(1)) as http:
        results = await asyncio.gather(
            *(
                http.get_json(f"{upstream.base}/limited/{i}", params={"fail": "2"}, limiter=bucket)
                for i in range(20)
            )
        )
    assert [r["path"] for r in results] == [f"/limited/{i}" for i in range(20)]
    assert all(upstream.seen[f"/limited/{i}"] == 3 for i in range(20))
    assert sum(upstream.ok.values()) == 20
    assert sum(1 for s in clock.sleeps if s >= 2.0) >= 40
    assert bucket.current_rate < 50.0


async def test_429_tells_the_limiter_and_the_retry_waits_at_least_retry_after(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    limiter = CountingLimiter()
    await client.get_json(
        f"{upstream.base}/limited/c", params={"fail": "1", "retry_after": "7"}, limiter=limiter
    )
    assert limiter.throttles == [7.0]
    assert clock.sleeps == [7.0]
    assert limiter.acquired == 2


@pytest.mark.parametrize(
    "reader, body",
    [
        # Graph "service temporarily unavailable" and "unknown error" sent with a 429
        (graph_body_errors, '{"error": {"code": 2, "type": "OAuthException"}}'),
        (graph_body_errors, '{"error": {"code": 1, "message": "An unknown error occurred"}}'),
        # Flickr's "not currently available", and a code nobody documents
        (flickr_body_errors([]), '{"stat": "fail", "code": 0, "message": "Sorry"}'),
        (flickr_body_errors([]), '{"stat": "fail", "code": 999, "message": "try later"}'),
    ],
)
async def test_a_429_is_slow_down_whatever_code_its_body_carries(
    upstream: Upstream, client: HttpClient, clock: FakeClock, reader: BodyErrors, body: str
) -> None:
    """Only the status tells the limiter to cut its rate: a body's outage or unknown code
    must not hide it."""
    limiter = CountingLimiter()
    await client.get_json(
        f"{upstream.base}/limited/body",
        params={"fail": "1", "retry_after": "7", "body": body},
        limiter=limiter,
        body_errors=reader,
    )
    assert limiter.throttles == [7.0]
    assert upstream.seen["/limited/body"] == 2


@pytest.mark.parametrize(
    "reader, body",
    [
        (graph_body_errors, '{"error": {"code": 190, "type": "OAuthException"}}'),
        (flickr_body_errors([]), '{"stat": "fail", "code": 100, "message": "Invalid API Key"}'),
    ],
)
async def test_a_429_that_says_bad_key_is_a_bad_key(
    upstream: Upstream, client: HttpClient, reader: BodyErrors, body: str
) -> None:
    """Retrying a dead key only burns calls: the body's "bad key" wins over the status."""
    limiter = CountingLimiter()
    with pytest.raises(InvalidCredentials):
        await client.get_json(
            f"{upstream.base}/limited/key",
            params={"fail": "1", "body": body},
            limiter=limiter,
            body_errors=reader,
        )
    assert upstream.seen["/limited/key"] == 1 and limiter.throttles == []


async def test_retry_after_as_an_http_date_is_honoured(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    await client.get_json(f"{upstream.base}/limited/d", params={"fail": "1", "retry_after": "date"})
    assert len(clock.sleeps) == 1
    assert 17.0 <= clock.sleeps[0] <= 20.0


async def test_retry_after_beyond_the_inline_limit_is_raised_for_the_queue(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await client.get_json(
            f"{upstream.base}/limited/e", params={"fail": "1", "retry_after": "3600"}
        )
    assert caught.value.retry_after == 3600.0
    assert upstream.seen["/limited/e"] == 1
    assert clock.sleeps == []


async def test_reset_connection_is_retried(upstream: Upstream, client: HttpClient) -> None:
    data = await client.get_json(f"{upstream.base}/reset/a", params={"fail": "2"})
    assert data["path"] == "/reset/a"
    assert upstream.seen["/reset/a"] == 3


async def test_truncated_body_is_retried_and_finally_reported_as_truncated(
    upstream: Upstream, client: HttpClient
) -> None:
    body = await client.fetch(f"{upstream.base}/truncated/a?fail=1")
    assert json.loads(body.data)["path"] == "/truncated/a"
    assert upstream.seen["/truncated/a"] == 2
    with pytest.raises(TruncatedBodyError):
        await client.fetch(f"{upstream.base}/truncated/b")
    assert upstream.seen["/truncated/b"] == 5


@pytest.mark.parametrize("declared", ["1", "0"])
async def test_body_at_the_cap_passes_and_one_byte_more_is_refused(
    upstream: Upstream, client: HttpClient, declared: str
) -> None:
    body = await client.fetch(f"{upstream.base}/big?size=4096&cl={declared}", max_bytes=4096)
    assert body.data == b"y" * 4096
    with pytest.raises(TooLargeError):
        await client.fetch(f"{upstream.base}/big?size=4097&cl={declared}", max_bytes=4096)
    assert upstream.seen["/big"] == 2  # too large is permanent: no retry


async def test_declared_oversize_is_refused_before_reading_the_body(
    upstream: Upstream, client: HttpClient
) -> None:
    async with asyncio.timeout(2):
        with pytest.raises(TooLargeError, match="10485760 bytes exceeds"):
            await client.fetch(f"{upstream.base}/stall-big", max_bytes=1024 * 1024)


async def test_session_default_cap_applies_to_json_calls(upstream: Upstream) -> None:
    async with HttpClient(make_settings(max_bytes=1000), clock=FakeClock()) as http:
        with pytest.raises(TooLargeError):
            await http.get_text(f"{upstream.base}/big?size=5000")


async def test_five_redirects_are_followed_and_a_sixth_fails(
    upstream: Upstream, client: HttpClient
) -> None:
    body = await client.fetch(f"{upstream.base}/redirect/5")
    assert body.url == f"{upstream.base}/redirect/0"
    with pytest.raises(PermanentHttpError, match="more than 5 redirects") as refused:
        await client.fetch(f"{upstream.base}/redirect/6")
    assert refused.value.reason == "too_many_redirects"  # a loop, not a server's refusal
    assert upstream.seen["/redirect/0"] == 1  # the sixth hop was never made


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    upstream: Upstream, client: HttpClient
) -> None:
    auth = {"Authorization": f"OAuth {TOKEN}"}
    await client.get_json(f"{upstream.base}/echo-auth", headers=auth)
    await client.get_json(f"{upstream.base}/hop-away", headers=auth)
    assert upstream.auth_seen == [f"OAuth {TOKEN}", None]


async def test_slow_response_times_out_as_transient_and_a_retry_succeeds(
    upstream: Upstream, clock: FakeClock
) -> None:
    settings = make_settings(sock_read_timeout_s=0.2, max_attempts=2)
    async with HttpClient(settings, clock=clock) as http:
        data = await http.get_json(f"{upstream.base}/slow/a", params={"fail": "1"})
        assert data["path"] == "/slow/a"
        with pytest.raises(TransientHttpError, match="timed out"):
            await http.get_json(f"{upstream.base}/slow/b")
    assert upstream.seen["/slow/a"] == 2 and upstream.seen["/slow/b"] == 2


async def test_non_json_body_is_a_clear_error_worth_another_try_later(
    upstream: Upstream, client: HttpClient
) -> None:
    with pytest.raises(TransientHttpError, match=r"not JSON \(text/html") as caught:
        await client.get_json(f"{upstream.base}/html")
    assert caught.value.reason == "bad_response"
    assert upstream.seen["/html"] == 1
    assert_no_secret(caught.value)


@pytest.mark.parametrize("text, times", [("9", 5000), ("[", 100_000), ('{"a":', 100_000)])
async def test_json_no_parser_can_hold_is_a_bad_response_too(
    upstream: Upstream, client: HttpClient, text: str, times: int
) -> None:
    """A number past Python's 4,300 digits or a nesting past its stack is as useless as a
    page: the same error, not a ValueError or RecursionError failing the task as a bug."""
    with pytest.raises(TransientHttpError, match="not JSON") as caught:
        await client.get_json(f"{upstream.base}/repeat", params={"text": text, "times": str(times)})
    assert caught.value.reason == "bad_response"


async def test_jsonp_text_is_decoded_by_its_declared_charset(
    upstream: Upstream, client: HttpClient
) -> None:
    text = await client.get_text(f"{upstream.base}/jsonp")
    assert text == 'jsonFlickrApi({"stat": "ok", "title": "Café"})'


async def test_missing_resource_is_not_found_without_retry(
    upstream: Upstream, client: HttpClient
) -> None:
    with pytest.raises(NotFoundError):
        await client.fetch(f"{upstream.base}/status/410")
    assert upstream.seen["/status/410"] == 1


async def test_host_slots_cap_requests_in_flight_to_one_host(
    upstream: Upstream, client: HttpClient
) -> None:
    slots = HostSlots(2)
    bodies = await asyncio.gather(
        *(client.fetch(f"{upstream.base}/hold?i={i}", host_slots=slots) for i in range(8))
    )
    assert len(bodies) == 8 and upstream.ok["/hold"] == 8
    assert upstream.peak_inflight <= 2


async def test_a_paced_call_does_not_queue_behind_downloads_for_a_connection(
    upstream: Upstream, clock: FakeClock
) -> None:
    """A call that has spent its token goes out at once, even while downloads from the same
    host hold every pooled connection; else calls paced apart would leave together."""
    settings = make_settings(per_host_limit=1, max_bytes=20 * 1024 * 1024)
    async with HttpClient(settings, clock=clock) as http:
        download = asyncio.create_task(http.fetch(f"{upstream.base}/stall-big"))
        async with asyncio.timeout(5):
            while not upstream.seen["/stall-big"]:  # noqa: ASYNC110 - the server's side
                await asyncio.sleep(0.01)
            data = await http.get_json(f"{upstream.base}/json", limiter=CountingLimiter())
        assert data["path"] == "/json"
        assert not download.done()  # it still holds the host's one connection
        download.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await download


async def test_refused_connection_is_transient(clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with HttpClient(make_settings(max_attempts=2), clock=clock) as http:
        with pytest.raises(TransientHttpError, match="connection failed"):
            await http.get_json(f"http://127.0.0.1:{port}/x", params={"api_key": KEY})
    assert len(clock.sleeps) == 1


async def test_unusable_urls_are_refused_before_any_request(client: HttpClient) -> None:
    for url in ("ftp://h.example/x", "/relative/path", f"http://[oops/?api_key={KEY}"):
        with pytest.raises(PermanentHttpError) as caught:
            await client.fetch(url)
        assert_no_secret(caught.value)


async def test_unusable_urls_carry_the_bad_url_reason(client: HttpClient) -> None:
    for url in ("http://h.example:1\\@h.example/x", "http://[oops/x"):
        with pytest.raises(PermanentHttpError) as caught:
            await client.fetch(url)
        assert caught.value.reason == "bad_url", (url, caught.value)


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/x.jpg", "http://[::1/x.jpg"])
async def test_a_redirect_to_an_unusable_url_is_bad_url_not_the_redirects_status(
    client: HttpClient, location: str
) -> None:
    """The server's 302 was no failure: the URL it pointed to is, as one given would be."""

    def answer(path: str) -> bytes:
        return f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()

    async with answering(answer) as base:
        with pytest.raises(PermanentHttpError) as caught:
            await client.fetch(f"{base}/photo.jpg")
    assert caught.value.reason == "bad_url", caught.value
    assert "unusable redirect" in str(caught.value)


@pytest.mark.parametrize(
    "head",
    [
        b"X-Big: " + b"a" * 100_000 + b"\r\n",  # one header line past aiohttp's limit
        b"Bad Header Line\r\n",
    ],
)
async def test_a_response_the_parser_refuses_is_bad_response_once_not_a_servers_http_400(
    client: HttpClient, head: bytes
) -> None:
    """aiohttp reports an unparsable head as a status 400 the server never sent."""
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(PermanentHttpError) as caught:
            await client.fetch(f"http://127.0.0.1:{port}/x.jpg")
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.reason == "bad_response" and caught.value.status is None
    assert "HTTP 400" not in str(caught.value)
    assert len(seen) == 1


async def test_errors_and_retry_logs_never_contain_the_key_or_the_token(
    upstream: Upstream, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every failure path, with the key in the query and the token in a header."""
    auth = {"Authorization": f"OAuth {TOKEN}"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(max_attempts=2, sock_read_timeout_s=0.2)
    b = upstream.base
    paths = [
        f"{b}/status/404",
        f"{b}/status/403",
        f"{b}/flaky/k",
        f"{b}/limited/k?retry_after=3600",
        f"{b}/reset/k",
        f"{b}/truncated/k",
        f"{b}/slow/k",
        f"{b}/redirect/9",
        f"{b}/echo-key-redirect",
        f"{b}/html",
        f"{b}/big?size=5000&cl=1",
        f"{b}/big?size=5000",
        f"{dead}/x",
    ]
    errors: list[HttpError] = []
    async with HttpClient(settings, clock=clock) as http:
        for url in paths:
            with pytest.raises(HttpError) as caught:
                if "big" in url:
                    await http.fetch(f"{url}&api_key={KEY}", headers=auth, max_bytes=1000)
                else:
                    await http.get_json(url, params={"api_key": KEY}, headers=auth)
            errors.append(caught.value)
    assert len(errors) == len(paths)
    for error in errors:
        assert "REDACTED" in error.url
        assert_no_secret(error)
    logged = capsys.readouterr()
    assert "http_retry" in logged.out
    assert KEY not in logged.out + logged.err and TOKEN not in logged.out + logged.err


async def test_a_secret_given_explicitly_is_scrubbed_from_the_url_path(
    upstream: Upstream, client: HttpClient
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.fetch(f"{upstream.base}/status/404?x=1#{KEY}", secrets=[KEY])
    assert_no_secret(caught.value)
    with pytest.raises(NotFoundError) as caught:
        await client.fetch(f"{upstream.base}/status/404/{TOKEN}", secrets=[TOKEN])
    assert_no_secret(caught.value)


async def test_a_short_signed_url_value_does_not_garble_the_error(
    upstream: Upstream, client: HttpClient
) -> None:
    """`code=4` is blanked where it stands, not as every 4 in the message."""
    with pytest.raises(NotFoundError) as caught:
        await client.fetch(f"{upstream.base}/status/404?code=4&oe=0")
    shown = f"{upstream.base}/status/404?code=REDACTED&oe=REDACTED"
    assert shown in str(caught.value) and caught.value.url == shown


async def test_a_download_429_tells_the_hosts_limiter_and_every_hop_takes_its_token(
    upstream: Upstream, client: HttpClient, clock: FakeClock
) -> None:
    per_host: dict[str, CountingLimiter] = {}
    slots = HostSlots(4, rate_for=lambda host: per_host.setdefault(host, CountingLimiter()))
    body = await client.fetch(f"{upstream.base}/limited/img?fail=1&retry_after=3", host_slots=slots)
    assert body.data
    host = per_host["127.0.0.1"]
    assert host.throttles == [3.0]
    assert (host.acquired, host.successes) == (2, 1)

# ruff: noqa: RUF001 - hostile spellings of addresses are what these tests are about
"""SSRF: fetches reach only allowed destinations, by every spelling and at every redirect.

An "internal" service listens on 127.0.0.2 and counts every connection it accepts; the
"public" server is the upstream on 127.0.0.1, allowed explicitly as tests must. Whatever a
URL or a redirect says, the internal service must see nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from clocks import FakeClock
from http_upstream import Upstream, make_settings

from harvester.http import Destinations, HostNotAllowedError, HttpClient

INTERNAL = "127.0.0.2"


class Internal:
    """A TCP listener that counts connections (even ones that never send a request)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, INTERNAL, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")
        await writer.drain()
        writer.close()


class FakeDns(AbstractResolver):
    """Names for the test: one resolving to the internal host, one to both hosts, a CDN
    name rebound to the upstream's loopback address, and localhost."""

    def __init__(self) -> None:
        self.names = {
            "internal.test": [INTERNAL],
            "mixed.test": [INTERNAL, "127.0.0.1"],
            "rebound.staticflickr.com": ["127.0.0.1"],
            "localhost": ["127.0.0.1"],
        }

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"no such name {host}")
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.names[host]
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    listener = Internal()
    await listener.start()
    yield listener
    assert listener.server is not None
    listener.server.close()


@pytest.fixture
async def guarded(clock: FakeClock) -> AsyncIterator[HttpClient]:
    async with HttpClient(make_settings(), clock=clock, resolver=FakeDns()) as http:
        yield http


def spellings(port: int) -> list[str]:
    """Ways to write the internal host that a careless normaliser lets through."""
    return [
        f"http://{INTERNAL}:{port}/",
        f"http://１２７．０．０．２:{port}/",  # fullwidth digits and full stops
        f"http://①②⑦.⓪.⓪.②:{port}/",  # circled digits
        f"http://127。0。0。2:{port}/",  # ideographic full stops
        f"http://127.0.0.2.:{port}/",  # trailing dot
        f"http://[::ffff:127.0.0.2]:{port}/",  # IPv4-mapped IPv6
        f"http://2130706434:{port}/",  # one decimal number
        f"http://0x7f000002:{port}/",
        f"http://127.2:{port}/",
        f"http://internal.test:{port}/",  # a name resolving to it
        f"http://INTERNAL.test:{port}/",
        f"http://user:pw@internal.test:{port}/",
    ]


async def test_every_spelling_of_a_private_address_is_refused_without_a_connection(
    internal: Internal, guarded: HttpClient, clock: FakeClock
) -> None:
    policy = Destinations.public(allow=["127.0.0.1"])
    for url in spellings(internal.port):
        with pytest.raises(HostNotAllowedError) as caught:
            await guarded.fetch(url, destinations=policy)
        assert caught.value.reason == "host_not_allowed", url
        assert "pw" not in str(caught.value)
    assert internal.connections == 0
    assert clock.sleeps == []  # refused at once: no retry, no back-off


async def test_every_redirect_to_a_private_address_is_refused_at_that_hop(
    internal: Internal, guarded: HttpClient, upstream: Upstream, clock: FakeClock
) -> None:
    policy = Destinations.public(allow=["127.0.0.1"])
    for target in spellings(internal.port):
        upstream.redirect_to = target
        with pytest.raises(HostNotAllowedError):
            await guarded.fetch(f"{upstream.base}/redirect-to", destinations=policy)
    assert upstream.seen["/redirect-to"] == len(spellings(internal.port))
    assert internal.connections == 0
    assert clock.sleeps == []


async def test_a_name_with_a_private_and_an_allowed_address_connects_only_to_the_allowed(
    internal: Internal, guarded: HttpClient, upstream: Upstream
) -> None:
    port = upstream.base.rsplit(":", 1)[1]
    policy = Destinations.public(allow=["127.0.0.1"])
    for _ in range(4):
        body = await guarded.fetch(f"http://mixed.test:{port}/json", destinations=policy)
        assert body.data.startswith(b"{")
    assert internal.connections == 0


async def test_loopback_is_refused_unless_allowed(upstream: Upstream, clock: FakeClock) -> None:
    async with HttpClient(make_settings(), clock=clock) as http:
        for policy in (Destinations.public(), Destinations.public(allow=["10.0.0.0/8"])):
            with pytest.raises(HostNotAllowedError):
                await http.fetch(f"{upstream.base}/json", destinations=policy)
            with pytest.raises(HostNotAllowedError):
                await http.fetch(
                    upstream.base.replace("127.0.0.1", "localhost") + "/json", destinations=policy
                )
        assert upstream.seen["/json"] == 0
        for allow in (["127.0.0.1"], ["127.0.0.0/8"], ["localhost", "127.0.0.1"]):
            body = await http.fetch(
                f"{upstream.base}/json", destinations=Destinations.public(allow)
            )
            assert body.data.startswith(b"{")
        localhost = upstream.base.replace("127.0.0.1", "localhost") + "/json"
        body = await http.fetch(localhost, destinations=Destinations.public(["localhost"]))
        assert body.data.startswith(b"{")
    assert clock.sleeps == []


async def test_provider_images_come_only_from_cdn_patterns_or_the_configured_api_host(
    internal: Internal, guarded: HttpClient, upstream: Upstream
) -> None:
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], f"{upstream.base}/api")
    body = await guarded.fetch(f"{upstream.base}/json", destinations=policy)
    assert body.data.startswith(b"{")
    with pytest.raises(HostNotAllowedError):
        await guarded.fetch(f"http://internal.test:{internal.port}/", destinations=policy)
    upstream.redirect_to = f"http://{INTERNAL}:{internal.port}/"
    with pytest.raises(HostNotAllowedError):
        await guarded.fetch(f"{upstream.base}/redirect-to", destinations=policy)
    with pytest.raises(HostNotAllowedError, match="flickr image hosts"):
        await guarded.fetch("http://evil.test/x.jpg", destinations=policy)
    assert policy.name_allowed("live.staticflickr.com")
    assert policy.name_allowed("ＬＩＶＥ.staticflickr.com.")
    assert not policy.name_allowed("staticflickr.com.evil.test")
    assert internal.connections == 0


async def test_a_loopback_api_host_takes_images_on_any_port_as_localhost_or_127_0_0_1(
    upstream: Upstream, clock: FakeClock
) -> None:
    """An emulator with its API on one loopback port and its CDN on another: the CDN's
    images are fetched, under either name, whichever name the API URL used."""
    localhost = upstream.base.replace("127.0.0.1", "localhost")
    other_localhost = upstream.other_base.replace("127.0.0.1", "localhost")
    async with HttpClient(make_settings(), clock=clock) as http:
        for api, images in [
            (upstream.base, [upstream.other_base, other_localhost, localhost]),
            (localhost, [upstream.other_base, other_localhost, upstream.base]),
        ]:
            policy = Destinations.provider("flickr", ["*.staticflickr.com"], f"{api}/api")
            for base in images:
                body = await http.fetch(f"{base}/json", destinations=policy)
                assert body.data.startswith(b"{"), (api, base)
    assert upstream.seen["/json"] == 6
    assert clock.sleeps == []


async def test_a_redirect_from_the_api_hosts_other_port_to_another_internal_address_is_refused(
    internal: Internal, guarded: HttpClient, upstream: Upstream, clock: FakeClock
) -> None:
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], f"{upstream.base}/api")
    for target in [*spellings(internal.port), "http://169.254.169.254/", "http://10.0.0.1/"]:
        upstream.redirect_to = target
        with pytest.raises(HostNotAllowedError, match="host_not_allowed"):
            await guarded.fetch(f"{upstream.other_base}/redirect-to", destinations=policy)
    assert upstream.seen["/redirect-to"] == len(spellings(internal.port)) + 2  # hop 1 served
    assert internal.connections == 0
    assert clock.sleeps == []


async def test_a_cdn_name_resolving_to_loopback_gains_nothing_from_a_loopback_api_host(
    guarded: HttpClient, upstream: Upstream
) -> None:
    """Trust goes with the name in the URL: the API's loopback names connect, a CDN name
    the DNS answers with the same loopback address (rebinding) does not."""
    port = upstream.other_base.rsplit(":", 1)[1]
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], f"{upstream.base}/api")
    body = await guarded.fetch(f"http://localhost:{port}/json", destinations=policy)
    assert body.data.startswith(b"{")
    with pytest.raises(HostNotAllowedError, match="resolves only to non-public"):
        await guarded.fetch(f"http://rebound.staticflickr.com:{port}/json", destinations=policy)
    assert upstream.seen["/json"] == 1


async def test_a_redirect_carries_no_credentials_to_another_host(
    guarded: HttpClient, upstream: Upstream
) -> None:
    policy = Destinations.public(allow=["127.0.0.1"])
    other = upstream.other_base.replace("http://", "http://admin:hunter2@")
    upstream.redirect_to = f"{other}/echo-auth"
    await guarded.fetch(f"{upstream.base}/redirect-to", destinations=policy)
    with_userinfo = upstream.base.replace("http://", "http://u:p@")
    upstream.redirect_to = f"{upstream.other_base}/echo-auth"
    await guarded.fetch(f"{with_userinfo}/redirect-to", destinations=policy)
    assert upstream.auth_seen == [None, None]

"""What the host of a configured API URL vouches for: its images on any port, a loopback
host under all its loopback names, and nothing more for the real, public API hosts."""

from __future__ import annotations

import pytest
import yarl
from aiohttp.abc import ResolveResult

from harvester.config import Settings
from harvester.http import Destinations, HostNotAllowedError
from harvester.http.destinations import FilteringResolver

EMULATOR = "http://127.0.0.1:8900/services/rest/"


class Answers:
    """A resolver answering each name with the addresses given for it."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=0, proto=0, flags=0)
            for a in self.names[host]
        ]

    async def close(self) -> None:
        return None


def refuses(policy: Destinations, url: str) -> bool:
    try:
        policy.check(yarl.URL(url), url)
    except HostNotAllowedError:
        return True
    return False


async def kept(policy: Destinations, names: dict[str, list[str]], host: str, port: int) -> set[str]:
    resolver = FilteringResolver(policy, Answers(names))  # type: ignore[arg-type]
    try:
        return {r["host"] for r in await resolver.resolve(host, port)}
    except HostNotAllowedError:
        return set()


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("FLICKR", "MAPILLARY"):
        for setting in ("API_URL", "IMAGE_HOSTS"):
            monkeypatch.delenv(f"HARVESTER_{name}_{setting}", raising=False)
    monkeypatch.delenv("HARVESTER_ALLOW_NETWORKS", raising=False)
    return Settings()


async def test_the_real_api_urls_vouch_for_no_loopback_or_private_address(
    defaults: Settings,
) -> None:
    for policy, api_host in [
        (
            Destinations.provider("flickr", defaults.flickr_image_hosts, defaults.flickr_api_url),
            "api.flickr.com",
        ),
        (
            Destinations.provider(
                "mapillary", defaults.mapillary_image_hosts, defaults.mapillary_api_url
            ),
            "graph.mapillary.com",
        ),
    ]:
        for url in [
            "http://127.0.0.1/x.jpg",
            "http://127.0.0.1:8900/x.jpg",
            "https://localhost:443/x.jpg",
            "http://[::1]:8900/x.jpg",
            "http://10.0.0.1/x.jpg",
        ]:
            assert refuses(policy, url), (api_host, url)
        assert not refuses(policy, f"https://{api_host}:8443/x.jpg")  # public, as before
        private = {api_host: ["10.0.0.7"], "localhost": ["127.0.0.1"]}
        assert await kept(policy, private, api_host, 443) == {"10.0.0.7"}  # its own origin
        assert await kept(policy, private, api_host, 8443) == set()  # no other port
        assert await kept(policy, private, api_host, 80) == set()
        assert await kept(policy, private, "localhost", 443) == set()


@pytest.mark.parametrize("api", [EMULATOR, "http://localhost:8900/", "https://[::1]/graph"])
async def test_a_loopback_api_host_vouches_for_its_loopback_names_on_any_port(api: str) -> None:
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], api)
    for url in [
        "http://127.0.0.1:8900/cdn/x.jpg",
        "http://127.0.0.1:8901/cdn/x.jpg",
        "https://127.0.0.1/cdn/x.jpg",
        "http://localhost:8901/cdn/x.jpg",
        "http://LOCALHOST.:9/cdn/x.jpg",
        "http://[::1]:8901/cdn/x.jpg",
    ]:
        assert not refuses(policy, url), url
    for url in [
        "http://127.0.0.2:8901/x.jpg",  # another loopback address: another service
        "http://127.1:8901/x.jpg",
        "http://[::ffff:127.0.0.1]:8901/x.jpg",
        "http://10.0.0.1:8901/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://evil.test:8901/x.jpg",
    ]:
        assert refuses(policy, url), url


async def test_a_loopback_api_host_vouches_for_loopback_addresses_by_name_only() -> None:
    """At connect time: localhost connects to loopback only; a CDN name (or any other)
    answered with a loopback address gains nothing from the loopback API host."""
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], EMULATOR)
    names = {
        "localhost": ["127.0.0.1", "::1", "10.0.0.1"],
        "live.staticflickr.com": ["127.0.0.1"],
        "mixed.staticflickr.com": ["127.0.0.1", "8.8.8.8"],
    }
    assert await kept(policy, names, "localhost", 8901) == {"127.0.0.1", "::1"}
    assert await kept(policy, names, "live.staticflickr.com", 8900) == set()
    assert await kept(policy, names, "mixed.staticflickr.com", 8900) == {"8.8.8.8"}


async def test_an_api_host_given_as_a_private_address_is_trusted_at_it_on_any_port() -> None:
    policy = Destinations.provider("mapillary", ["*.fbcdn.net"], "http://10.1.2.3:8900/graph")
    assert not refuses(policy, "http://10.1.2.3:8901/cdn/x.jpg")
    assert not refuses(policy, "https://10.1.2.3/cdn/x.jpg")
    assert refuses(policy, "http://10.1.2.4:8900/cdn/x.jpg")
    assert refuses(policy, "http://localhost:8900/cdn/x.jpg")
    names = {"cdn.fbcdn.net": ["10.1.2.3"]}
    assert await kept(policy, names, "cdn.fbcdn.net", 8900) == set()


async def test_an_api_host_name_keeps_private_addresses_to_the_api_port() -> None:
    """A mirror reached by name (compose's `emulator`) on a private network: its own origin
    as before; a second port takes only public addresses, unless allowed by name."""
    policy = Destinations.provider("flickr", ["*.staticflickr.com"], "http://emulator:8000/")
    names = {"emulator": ["172.18.0.5"]}
    assert await kept(policy, names, "emulator", 8000) == {"172.18.0.5"}
    assert await kept(policy, names, "emulator", 8001) == set()
    assert refuses(policy, "http://127.0.0.1:8000/x.jpg")
    allowed = Destinations.provider(
        "flickr", ["*.staticflickr.com"], "http://emulator:8000/", ["emulator"]
    )
    assert await kept(allowed, names, "emulator", 8001) == {"172.18.0.5"}
